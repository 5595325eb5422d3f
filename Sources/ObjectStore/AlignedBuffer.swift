import NIOCore

extension ByteBuffer {
    /// Where a downloaded body starts in its memory: at a multiple of 4 KiB, so that a caller
    /// can write it to disk with direct I/O as it is.
    static let bodyAlignment = 4096

    /// An empty buffer with room for `capacity` bytes whose first byte written will sit at a
    /// `bodyAlignment` boundary.
    public static func aligned(capacity: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(capacity + bodyAlignment - 1)
        let start = buffer.withVeryUnsafeMutableBytes { Int(bitPattern: $0.baseAddress) }
        let padding = (bodyAlignment - start % bodyAlignment) % bodyAlignment
        buffer.moveWriterIndex(forwardBy: padding)
        buffer.moveReaderIndex(forwardBy: padding)
        return buffer
    }
}
