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
}
