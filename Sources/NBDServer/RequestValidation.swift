import BlockDevice
import NBDProtocol

/// Checks a request against the protocol and the export once, so that devices receive only
/// requests they can serve (the role of nbdkit's backend checks).
struct RequestValidator {
    let size: UInt64
    let capabilities: BlockDeviceCapabilities
    let options: NBDSessionOptions

    /// The error to answer with, or nil when the request may go to the device.
    func validate(_ header: NBDRequestHeader) -> NBDErrno? {
        let flags = header.flags
        guard flags.isSubset(of: allowedFlags(for: header.command)) else { return .invalid }
        if flags.contains(.fua) && !capabilities.canFUA { return .invalid }
        switch header.command {
        case .read:
            if header.length > capabilities.maximumRequest { return .invalid }
            return rangeError(header, pastEnd: .invalid)
        case .write:
            // With extended headers a WRITE must say its payload length (doc/proto.md).
            if options.extendedHeaders && !flags.contains(.payloadLength) { return .invalid }
            if capabilities.readOnly { return .perm }
            if header.length > capabilities.maximumRequest { return .invalid }
            return rangeError(header, pastEnd: .noSpace)
        case .writeZeroes:
            if capabilities.readOnly { return .perm }
            if !capabilities.canZero { return .invalid }
            if flags.contains(.fastZero) && !capabilities.canFastZero { return .invalid }
            return rangeError(header, pastEnd: .noSpace)
        case .trim:
            if capabilities.readOnly { return .perm }
            if !capabilities.canTrim { return .invalid }
            return rangeError(header, pastEnd: .invalid)
        case .flush:
            return capabilities.canFlush ? nil : .invalid
        case .cache:
            if !capabilities.canCache { return .invalid }
            return rangeError(header, pastEnd: .invalid)
        case .blockStatus:
            if options.allocationContextID == nil || header.length == 0 { return .invalid }
            return rangeError(header, pastEnd: .invalid)
        case .disconnect:
            return nil
        case .resize, .unknown:
            return .invalid
        }
    }

    private func allowedFlags(for command: NBDCommand) -> NBDCommandFlags {
        let payload: NBDCommandFlags = options.extendedHeaders ? [.payloadLength] : []
        switch command {
        case .read: return options.usesChunks ? [.fua, .dontFragment] : [.fua]
        case .write: return NBDCommandFlags.fua.union(payload)
        case .writeZeroes: return [.fua, .noHole, .fastZero]
        case .trim, .flush, .cache: return [.fua]
        case .blockStatus: return [.fua, .reqOne]
        case .disconnect, .resize, .unknown: return []
        }
    }

    private func rangeError(_ header: NBDRequestHeader, pastEnd: NBDErrno) -> NBDErrno? {
        let (end, overflow) = header.offset.addingReportingOverflow(header.length)
        return overflow || end > size ? pastEnd : nil
    }
}
