/// A failure of one operation on a block device; the device and the connection stay usable.
public struct BlockDeviceError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What kind of failure it is; a protocol front end maps this to its error codes.
    public enum Kind: Sendable, Equatable {
        /// Reading or writing the backing store failed, or data failed its check.
        case io
        /// The data read failed its check: it is damaged where it is kept (an I/O error to a
        /// client, but never a passing one: reading again finds the same damage).
        case damaged
        /// No space left (backing store full, or past the end of a medium).
        case noSpace
        /// The request is not valid for this device.
        case invalid
        /// The device is read-only or the range may not be written.
        case notPermitted
        /// A fast operation was asked for and is not possible.
        case notSupported
        /// The device is going away.
        case shutdown
    }

    /// The kind of failure.
    public let kind: Kind
    /// A message for logs and for protocol error replies.
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
