import BlockDevice
import Logging
import NIOCore
import Testing
import VolumeTestSupport

@testable import TapeLibrary

/// A drive used as a no-rewind tape device (what rmt clients see): reads that stop at a
/// filemark once, filemarks written at end of data, spacing by files and records, and the
/// status a program reads.
@Suite struct TapeDeviceTests {
    static let geometry = TapeGeometry(capacity: 4 << 20, recordSize: 64 << 10, groupRecords: 4)

    private func device(readOnly: Bool = false) async throws -> (VolumeFixture, Tape, TapeDevice) {
        let fixture = try await VolumeFixture(size: Self.geometry.containerSize, chunkSize: 65536)
        let tape = try await Tape.format(
            container: fixture.volume, barcode: "DEV001", geometry: Self.geometry, worm: false, on: fixture.loop,
            logger: Logger(label: "test"))
        let device = TapeDevice(
            drive: "0", barcode: "DEV001", tape: tape, readOnly: readOnly, head: TapeDevice.Head(file: 0, offset: 0))
        return (fixture, tape, device)
    }

    private func bytes(_ count: Int, _ seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 / 7) &+ seed }
    }

    /// Writes a file of `count` bytes in 10 KiB records and seals it with a filemark.
    private func writeFile(_ device: TapeDevice, _ data: [UInt8]) async throws {
        var offset = 0
        while offset < data.count {
            let end = min(offset + 10240, data.count)
            try await device.write(ByteBuffer(bytes: data[offset..<end]))
            offset = end
        }
        try await device.writeFilemarks(1)
    }

    /// Reads the file at the head to its filemark, in 10 KiB reads.
    private func readFile(_ device: TapeDevice) async throws -> [UInt8] {
        var data: [UInt8] = []
        while true {
            let piece = try await device.read(count: 10240)
            if piece.isEmpty { return data }
            data += piece
        }
    }

    @Test func readsStopAtEachFilemarkOnceAndGoOnInTheNextFile() async throws {
        let (fixture, tape, device) = try await device()
        let files = [bytes(25_000, 1), bytes(10_240, 2), bytes(70_000, 3)]
        for file in files { try await writeFile(device, file) }
        #expect(await tape.status.files == files.map { UInt64($0.count) })
        var status = await device.status()
        #expect(status.file == 3 && status.endOfData && status.afterFilemark && !status.beginningOfTape)

        try await device.rewind()
        #expect(await device.status().beginningOfTape)
        for file in files { #expect(try await readFile(device) == file) }
        #expect(try await device.read(count: 10240).isEmpty)
        #expect(await device.status().file == 3)
        #expect(tape.position.headFile == 3)

        // Spacing: back over two filemarks lands at the end of file 1; reading there meets
        // its filemark at once, then file 2 follows.
        try await device.backFiles(2)
        status = await device.status()
        #expect(status.file == 1 && status.block == 1 && !status.afterFilemark)
        #expect(try await device.read(count: 10240).isEmpty)
        #expect(try await readFile(device) == files[2])
        try await device.backFilesToMark(2)
        #expect(await device.status().file == 2 && tape.position.headFile == 2)
        try await device.forwardFilesToMark(1)
        #expect(await device.status().file == 2)
        #expect(try await device.read(count: 10240).isEmpty)
        try await device.rewind()
        try await device.forwardFiles(2)
        #expect(try await device.read(count: 5000) == Array(files[2][0..<5000]))
        try await device.forwardRecords(2)
        #expect(try await device.read(count: 5000) == Array(files[2][15000..<20000]))
        try await device.backRecords(4)
        #expect(try await device.read(count: 5000) == Array(files[2][0..<5000]))
        await #expect(throws: TapeDevice.Failure(.io, "the start of the file was met")) {
            try await device.backRecords(2)
        }
        await #expect(throws: TapeDevice.Failure.self) { try await device.forwardFiles(5) }
        #expect(await device.status().endOfData)
        await #expect(throws: TapeDevice.Failure.self) { try await device.backFiles(9) }
        #expect(await device.status().beginningOfTape)
        await fixture.close()
    }

    @Test func writesAndFilemarksGoOnlyToEndOfData() async throws {
        let (fixture, tape, device) = try await device()
        try await writeFile(device, bytes(30_000, 4))
        try await device.rewind()
        await #expect(throws: TapeDevice.Failure.self) { try await device.write(ByteBuffer(bytes: [1, 2])) }
        await #expect(throws: TapeDevice.Failure.self) { try await device.writeFilemarks(1) }
        try await device.endOfData()
        try await device.write(ByteBuffer(bytes: bytes(5000, 5)))
        // Moving away from what was written seals it first, as a drive writes a filemark there.
        try await device.rewind()
        #expect(await tape.status.files == [30_000, 5000])
        try await device.endOfData()
        try await device.writeFilemarks(2)
        #expect(await tape.status.files == [30_000, 5000, 0, 0])
        try await device.write(ByteBuffer(bytes: bytes(100, 6)))
        try await device.finish()
        #expect(await tape.status.files == [30_000, 5000, 0, 0, 100])
        #expect(await device.status().file == 5)
        // Erasing starts at the start of a file.
        try await device.rewind()
        try await device.forwardFiles(1)
        _ = try await device.read(count: 10)
        await #expect(throws: TapeDevice.Failure.self) { try await device.erase() }
        try await device.backFilesToMark(1)
        try await device.erase()
        #expect(await tape.status.files == [30_000])
        await fixture.close()
    }

    @Test func aReadOnlyTapeRefusesWritesAndSaysSoInItsStatus() async throws {
        let (fixture, _, device) = try await device(readOnly: true)
        await #expect(throws: TapeDevice.Failure.self) { try await device.write(ByteBuffer(bytes: [1])) }
        await #expect(throws: TapeDevice.Failure.self) { try await device.writeFilemarks(1) }
        #expect(await device.status().writeProtected)
        await fixture.close()
    }
}
