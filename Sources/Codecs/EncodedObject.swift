import NIOCore

/// An object ready to be sent: its bytes in pieces, one after another, and their CRC32C when
/// encoding it gave that for little more (nil: whoever needs it computes it).
public struct EncodedObject: Sendable {
    public let pieces: [ByteBuffer]
    public let crc32c: UInt32?

    /// The object's size in bytes.
    public var size: Int { pieces.reduce(0) { $0 + $1.readableBytes } }
}
