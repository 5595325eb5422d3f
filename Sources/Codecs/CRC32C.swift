import CISAL

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, as in iSCSI), the checksum of every tape
/// record and header and of every unencrypted object frame: Intel's ISA-L `crc32_iscsi` (Debian's
/// libisal), which uses the processor's CRC and carry-less multiply instructions where it has
/// them and a table otherwise.
public enum CRC32C {
    /// The checksum of `bytes`, continuing from `crc` (the checksum of what came before them).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        // ISA-L takes and returns the register without the final inversion, and an Int32 length.
        var register = ~crc
        var rest = bytes
        while !rest.isEmpty {
            let piece = min(rest.count, 1 << 30)
            register = crc32_iscsi(
                UnsafeMutablePointer(mutating: rest.baseAddress!.assumingMemoryBound(to: UInt8.self)), Int32(piece),
                register)
            rest = UnsafeRawBufferPointer(rebasing: rest[piece...])
        }
        return ~register
    }

    /// The checksum of a byte sequence.
    public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        Array(bytes).withUnsafeBytes { checksum($0) }
    }
}
