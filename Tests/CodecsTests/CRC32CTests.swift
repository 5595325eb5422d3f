import Testing

@testable import Codecs

/// CRC-32C against published vectors.
@Suite struct CRC32CTests {
    /// RFC 3720 appendix B.4 and the common check value of "123456789".
    @Test func crc32cMatchesPublishedVectors() {
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func crc32cContinuesAcrossPieces() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 31) }
        let first = CRC32C.checksum(bytes[..<333])
        let whole = Array(bytes[333...]).withUnsafeBytes { CRC32C.checksum($0, continuing: first) }
        #expect(whole == CRC32C.checksum(bytes))
    }

    /// Two checksums combined are the checksum of the bytes one after the other, checked against
    /// ISA-L over the joined bytes: lengths from none to more than a chunk, and any split.
    @Test func combinedChecksumsMatchTheChecksumOfTheJoinedBytes() {
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<(2 << 20) + 7).map { _ in UInt8.random(in: 0...255, using: &random) }
        let splits =
            [0, 1, 3, 4, 5, 64, 4095, 4096, 65_537, 1 << 20, bytes.count - 1, bytes.count]
            + (0..<20).map { _ in Int.random(in: 0...bytes.count, using: &random) }
        let whole = CRC32C.checksum(bytes)
        for split in splits {
            let first = CRC32C.checksum(bytes[..<split])
            let second = CRC32C.checksum(bytes[split...])
            #expect(CRC32C.combine(first, second, secondLength: bytes.count - split) == whole, "split at \(split)")
        }
        // The published check value, from its two halves.
        let check = Array("123456789".utf8)
        #expect(
            CRC32C.combine(CRC32C.checksum(check[..<4]), CRC32C.checksum(check[4...]), secondLength: 5) == 0xE306_9283)
        // Nothing after: the first checksum as it was.
        #expect(CRC32C.combine(0x1234_5678, 0, secondLength: 0) == 0x1234_5678)
    }
}
