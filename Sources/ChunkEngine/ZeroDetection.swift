import NIOCore

extension ByteBuffer {
    /// Whether every readable byte is zero: checked eight bytes at a time, stopping at the first
    /// non-zero word, so that ordinary data costs a few loads.
    var isAllZero: Bool {
        withUnsafeReadableBytes { bytes in
            let count = bytes.count
            var index = 0
            while index + 8 <= count {
                if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) != 0 { return false }
                index += 8
            }
            while index < count {
                if bytes[index] != 0 { return false }
                index += 1
            }
            return true
        }
    }
}
