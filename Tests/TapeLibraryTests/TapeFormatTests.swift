import Testing

@testable import TapeLibrary

/// The pure parts of the tape format: the header and group header codecs.
@Suite struct TapeFormatTests {
    private func sampleHeader() -> TapeHeader {
        var header = TapeHeader(barcode: "TAPE01", geometry: TapeGeometry(capacity: 64 << 20), worm: true)
        header.sequence = 7
        header.files = [.init(firstRecord: 0, length: 100_000), .init(firstRecord: 2, length: 0)]
        header.openFirstRecord = 2
        header.openLength = 70_000
        header.headFile = 1
        return header
    }

    @Test func headersRoundTrip() throws {
        let header = sampleHeader()
        let bytes = header.encoded()
        #expect(bytes.count == TapeHeader.fixedSize + 2 * 16)
        #expect(try TapeHeader(decoding: bytes + [UInt8](repeating: 0, count: 100)) == header)
    }

    @Test func aDamagedHeaderIsRejected() {
        var bytes = sampleHeader().encoded()
        bytes[40] ^= 0x01
        #expect(throws: TapeFormatError.self) { try TapeHeader(decoding: bytes) }
        #expect(throws: TapeFormatError.self) { try TapeHeader(decoding: [UInt8](repeating: 0, count: 4096)) }
        #expect(throws: TapeFormatError.self) { try TapeHeader(decoding: Array(sampleHeader().encoded().prefix(50))) }
    }

    @Test func groupHeadersRoundTripAndCheckTheirGroup() throws {
        var group = GroupHeader(group: 3, records: 16, sequence: 9)
        group.entries[5] = .init(file: 2, length: 65536, crc: 0xDEAD_BEEF, markers: [.record, .filemark])
        let bytes = group.encoded()
        #expect(bytes.count == TapeGeometry.groupHeaderCopySize)
        #expect(try GroupHeader(decoding: bytes, group: 3, records: 16) == group)
        #expect(throws: TapeFormatError.self) { try GroupHeader(decoding: bytes, group: 4, records: 16) }
        var damaged = bytes
        damaged[24 + 5 * 16 + 8] ^= 0x80
        #expect(throws: TapeFormatError.self) { try GroupHeader(decoding: damaged, group: 3, records: 16) }
        let blank = try GroupHeader(decoding: [UInt8](repeating: 0, count: 2048), group: 9, records: 16)
        #expect(blank.entries.allSatisfy { $0 == .unused } && blank.sequence == 0)
    }

    /// Of a group's two copies, the valid one of the highest sequence not above the tape
    /// header's is in force: a torn copy, or one a crash left newer than the header, is not.
    @Test func theGroupHeaderCopyInForceIsTheNewestValidCommittedOne() throws {
        var older = GroupHeader(group: 2, records: 16, sequence: 4)
        older.entries[0] = .init(file: 0, length: 100, crc: 1, markers: [.record])
        var newer = older
        newer.sequence = 5
        newer.entries[1] = .init(file: 0, length: 200, crc: 2, markers: [.record])
        let copies = [older.encoded(), newer.encoded()]
        #expect(try GroupHeader.inForce(copies: copies, group: 2, records: 16, committed: 5) == (newer, 1))
        #expect(try GroupHeader.inForce(copies: copies, group: 2, records: 16, committed: 4) == (older, 0))
        var torn = copies
        torn[1].replaceSubrange(512..<1024, with: [UInt8](repeating: 0, count: 512))
        torn[1][30] ^= 0xFF
        #expect(try GroupHeader.inForce(copies: torn, group: 2, records: 16, committed: 5) == (older, 0))
        #expect(throws: TapeFormatError.self) {
            try GroupHeader.inForce(copies: [torn[1], torn[1]], group: 2, records: 16, committed: 5)
        }
    }

    /// A format 1 group header (one copy, no sequence) is read as the copy in force.
    @Test func aFormatOneGroupHeaderIsReadAsSequenceZero() throws {
        var writer = ByteWriter()
        writer.append(Array("BGTAPEG1".utf8))
        writer.append(UInt64(1))
        for record in 0..<4 {
            writer.append(UInt32(0))
            writer.append(UInt32(record == 0 ? 4096 : 0))
            writer.append(UInt32(record == 0 ? 77 : 0))
            writer.append(UInt32(record == 0 ? 1 : 0))
        }
        writer.appendChecksum()
        let copy = writer.bytes + [UInt8](repeating: 0, count: 2048 - writer.bytes.count)
        let (header, index) = try GroupHeader.inForce(
            copies: [copy, [UInt8](repeating: 0, count: 2048)], group: 1, records: 4, committed: 3)
        #expect(index == 0 && header.sequence == 0 && header.entries[0].crc == 77)
    }

    @Test func geometryPlacesRecordsAfterTheirGroupHeader() {
        let geometry = TapeGeometry(capacity: 10 << 20, recordSize: 64 << 10, groupRecords: 16)
        #expect(geometry.records == 160)
        #expect(geometry.groups == 10)
        #expect(geometry.recordOffset(0) == TapeGeometry.dataStart + 4096)
        #expect(geometry.recordOffset(16) == geometry.groupOffset(1) + 4096)
        #expect(geometry.recordOffset(17) == geometry.groupOffset(1) + 4096 + 65536)
        #expect(geometry.containerSize == TapeGeometry.dataStart + 10 * (4096 + 16 * 65536))
    }
}
