import BlockDevice
import NBDProtocol

extension NBDErrno {
    /// The one mapping from device failures to wire errors. ENOTSUP goes out only for a
    /// FAST_ZERO request, as the protocol allows it nowhere else.
    init(_ error: BlockDeviceError, flags: NBDCommandFlags) {
        switch error.kind {
        case .io, .damaged: self = .io
        case .noSpace: self = .noSpace
        case .invalid: self = .invalid
        case .notPermitted: self = .perm
        case .notSupported: self = flags.contains(.fastZero) ? .notSupported : .invalid
        case .shutdown: self = .shutdown
        }
    }

    /// Maps any error a device future failed with.
    init(anyError error: any Error, flags: NBDCommandFlags) {
        if let deviceError = error as? BlockDeviceError {
            self.init(deviceError, flags: flags)
        } else {
            self = .io
        }
    }
}
