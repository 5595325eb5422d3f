import Foundation
import Gateway
import TapeLibrary
import Testing

/// Tape drives as NBD exports through libnbd against a real gateway: files sealed on
/// disconnect, positioning, one client at a time, read-only and WORM rules, CRC checks of data
/// damaged on the shelf.
@Suite struct TapeDriveTests {
    static let capacity: UInt64 = 32 << 20

    private func bytes(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 >> 3) &* 31 &+ seed &* 7 &+ $0) }
    }

    /// Connects to a drive, retrying for a moment while the previous client's disconnect (sent,
    /// but processed by the server asynchronously) still holds the drive.
    private func connect(_ fixture: GatewayFixture, drive: String) async throws -> LibNBD {
        for _ in 0..<100 {
            if let client = try? await LibNBD.connect(fixture.uri("drive/\(drive)")) { return client }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try await LibNBD.connect(fixture.uri("drive/\(drive)"))
    }

    /// Writes `data` from the start of the drive's file in 10 KiB pieces (a tar blocking factor
    /// of 20) and disconnects.
    private func writeFile(_ fixture: GatewayFixture, drive: String, _ data: [UInt8]) async throws {
        let client = try await connect(fixture, drive: drive)
        var offset = 0
        while offset < data.count {
            let end = min(data.count, offset + 10240)
            try await client.write(UInt64(offset), Array(data[offset..<end]))
            offset = end
        }
        try await client.shutdown()
    }

    private func readFile(_ fixture: GatewayFixture, drive: String, length: Int) async throws -> [UInt8] {
        let client = try await connect(fixture, drive: drive)
        defer { Task { try? await client.shutdown() } }
        return try await client.read(0, length)
    }

    private func failure(_ body: () async throws -> Void) async -> LibNBD.Failure? {
        do {
            try await body()
            return nil
        } catch {
            return error as? LibNBD.Failure
        }
    }

    @Test func filesAreSealedOnDisconnectAndReadBackAfterPositioning() async throws {
        let fixture = try await GatewayFixture()
        let library = fixture.gateway.library
        try await library.create(barcode: "TAPE0001", size: Self.capacity, worm: false)
        try await library.load(barcode: "TAPE0001", drive: "0")
        let files = [bytes(250_000, seed: 1), bytes(64 << 10, seed: 2), bytes(1_000_003, seed: 3)]
        var expectedSize = Self.capacity
        for file in files {
            let probe = try await connect(fixture, drive: "0")
            #expect(probe.size == expectedSize)
            #expect(!probe.canMultiConn)
            let second = await failure { _ = try await LibNBD.connect(fixture.uri("drive/0")) }
            #expect(second?.description.contains("policy") == true)
            let refused = await #expect(throws: TapeLibraryError.self) { try await library.rewind(drive: "0") }
            #expect(refused?.message.contains("client attached") == true)
            try await probe.shutdown()
            try await writeFile(fixture, drive: "0", file)
            expectedSize -= UInt64((file.count + 65535) / 65536 * 65536)
        }
        try await library.endOfData(drive: "0")
        let info = try await library.info(barcode: "TAPE0001")
        #expect(info.files == files.map { UInt64($0.count) })

        try await library.rewind(drive: "0")
        for (index, file) in files.enumerated() {
            let client = try await connect(fixture, drive: "0")
            let back = try await client.read(0, file.count + 20_000)
            #expect(Array(back.prefix(file.count)) == file, "file \(index)")
            #expect(back.dropFirst(file.count).allSatisfy { $0 == 0 }, "past the end of file \(index)")
            let sealed = await failure { try await client.write(0, [1, 2, 3]) }
            #expect(sealed?.errno == EPERM)
            try await client.shutdown()
            try await library.forwardFiles(drive: "0", count: 1)
        }
        await #expect(throws: TapeLibraryError.self) { try await library.forwardFiles(drive: "0", count: 1) }
        try await library.backFiles(drive: "0", count: 2)
        #expect(try await readFile(fixture, drive: "0", length: files[1].count) == files[1])

        try await library.endOfData(drive: "0")
        let full = try await connect(fixture, drive: "0")
        let noSpace = await failure { try await full.write(full.size - 100, [UInt8](repeating: 9, count: 200)) }
        #expect(noSpace?.errno == ENOSPC)
        try await full.shutdown()

        let empty = await failure { _ = try await LibNBD.connect(fixture.uri("drive/1")) }
        #expect(empty?.description.contains("policy") == true)
        await fixture.stop()
    }

    @Test func aFlippedByteOnTheShelfFailsTheReadAndTapeInfoReportsIt() async throws {
        let fixture = try await GatewayFixture(shelf: { "file://\($0)/shelf" })
        let library = fixture.gateway.library
        try await library.create(barcode: "DAMAGED1", size: Self.capacity, worm: true)
        try await library.load(barcode: "DAMAGED1", drive: "0")
        let data = bytes(400_000, seed: 9)
        try await writeFile(fixture, drive: "0", data)
        try await library.eject(drive: "0")
        try await library.export(barcode: "DAMAGED1")
        #expect(try await library.info(barcode: "DAMAGED1", readHeader: false).location == "shelf")

        // The tape's objects are on the shelf, none in the object store. Record 3 sits in the
        // container's first 1 MiB chunk: flip a byte of it there, in the 64 KiB frame of the
        // chunk's object (docs/object-format.md: a 64-byte header, then each frame followed by
        // its CRC) that holds the end of record 3 and the start of record 4, not record 2.
        let geometry = TapeGeometry(capacity: Self.capacity)
        let logical = Int(geometry.recordOffset(3)) + 62_000
        let offset = 64 + logical / 65536 * (65536 + 4) + logical % 65536
        let stored = { (directory: String) in
            ((try? FileManager.default.subpathsOfDirectory(atPath: fixture.directory + directory)) ?? [])
                .filter { $0.contains("/chunks/") }
        }
        #expect(stored("/objects").isEmpty)
        let objects = stored("/shelf").filter { $0.contains("/chunks/0-") }
        #expect(objects.count == 1)
        let object = fixture.directory + "/shelf/" + (try #require(objects.first))
        var chunk = try Data(contentsOf: URL(fileURLWithPath: object))
        chunk[offset] ^= 0x10
        try chunk.write(to: URL(fileURLWithPath: object))

        #expect(try await library.retrieve(barcode: "DAMAGED1") == nil)
        try await library.load(barcode: "DAMAGED1", drive: "1")
        try await library.rewind(drive: "1")
        let client = try await connect(fixture, drive: "1")
        #expect(client.isReadOnly)
        #expect(try await client.read(0, 3 * 65536) == Array(data.prefix(3 * 65536)))
        let damaged = await failure { _ = try await client.read(3 * 65536, 65536) }
        #expect(damaged?.errno == EIO)
        try await client.shutdown()
        #expect(try await library.info(barcode: "DAMAGED1").badRecords == [3])
        await #expect(throws: TapeLibraryError.self) { try await library.erase(drive: "1") }
        await #expect(throws: TapeLibraryError.self) { try await library.delete(barcode: "DAMAGED1", force: true) }
        await fixture.stop()
    }
}
