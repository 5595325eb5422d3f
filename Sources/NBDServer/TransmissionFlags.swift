import BlockDevice
import NBDProtocol

extension NBDTransmissionFlags {
    /// The flags an export advertises: derived from its capabilities alone, so that nothing is
    /// advertised that the device cannot do.
    /// - Parameters:
    ///   - capabilities: what the device offers.
    ///   - structuredReplies: whether structured replies (or extended headers) are in use, which
    ///     DF requires.
    public init(capabilities: BlockDeviceCapabilities, structuredReplies: Bool) {
        var flags: NBDTransmissionFlags = [.hasFlags]
        if capabilities.readOnly {
            flags.insert(.readOnly)
        } else {
            if capabilities.canFUA { flags.insert(.sendFUA) }
            if capabilities.canTrim { flags.insert(.sendTrim) }
            if capabilities.canZero {
                flags.insert(.sendWriteZeroes)
                if capabilities.canFastZero { flags.insert(.sendFastZero) }
            }
        }
        if capabilities.canFlush { flags.insert(.sendFlush) }
        if capabilities.canMultiConn { flags.insert(.canMultiConn) }
        if capabilities.canCache { flags.insert(.sendCache) }
        if capabilities.rotational { flags.insert(.rotational) }
        if structuredReplies { flags.insert(.sendDF) }
        self = flags
    }
}
