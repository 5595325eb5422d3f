import NIOCore

extension UnsafeRawBufferPointer {
    /// Whether every byte is zero: checked eight bytes at a time, stopping at the first non-zero
    /// word, so that ordinary data costs a few loads.
    public var isAllZero: Bool {
        var index = 0
        while index + 8 <= count {
            if loadUnaligned(fromByteOffset: index, as: UInt64.self) != 0 { return false }
            index += 8
        }
        while index < count {
            if self[index] != 0 { return false }
            index += 1
        }
        return true
    }
}

extension ByteBuffer {
    /// Whether every readable byte is zero.
    public var isAllZero: Bool { withUnsafeReadableBytes { $0.isAllZero } }
}
