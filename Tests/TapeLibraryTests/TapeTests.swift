import BlockDevice
import Logging
import NIOCore
import Testing
import VolumeTestSupport

@testable import TapeLibrary

/// Tapes on a real thin volume: files written, sealed, positioned and read back; CRC checks;
/// what a crash leaves; erase and WORM.
@Suite struct TapeTests {
    static let geometry = TapeGeometry(capacity: 4 << 20, recordSize: 64 << 10, groupRecords: 4)

    private func mounted(worm: Bool = false) async throws -> (VolumeFixture, Tape) {
        let fixture = try await VolumeFixture(size: Self.geometry.containerSize, chunkSize: 65536)
        let tape = try await Tape.format(
            container: fixture.volume, barcode: "ABC123", geometry: Self.geometry, worm: worm, on: fixture.loop,
            logger: Logger(label: "test"))
        return (fixture, tape)
    }

    private func pattern(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ seed &* 101 &+ $0 >> 9) }
    }

    /// Writes `bytes` at `start` of the open file in pieces of `piece` bytes, as tar through a
    /// block device does.
    private func write(_ tape: Tape, _ bytes: [UInt8], at start: Int = 0, piece: Int = 10240) async throws {
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + piece)
            try await tape.write(offset: UInt64(start + offset), data: ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
        }
    }

    private func reload(_ fixture: VolumeFixture) async throws -> Tape {
        try await Tape.load(container: fixture.volume, on: fixture.loop, logger: Logger(label: "test"))
    }

    @Test func filesAreSealedAppendedAndReadBackAfterPositioning() async throws {
        let (fixture, tape) = try await mounted()
        let first = pattern(300_000, seed: 1)
        let second = pattern(70_000, seed: 2)
        try await write(tape, first)
        #expect(try await tape.sealOpenFile())
        try await write(tape, second, piece: 4096)
        #expect(try await tape.sealOpenFile())
        #expect(try await tape.sealOpenFile() == false)
        var status = await tape.status
        #expect(status.files == [300_000, 70_000])
        #expect(status.headFile == 2 && status.atEndOfData)
        #expect(tape.position.spaceFromHead == Self.geometry.capacity - 7 * 65536)

        try await tape.position(toFile: 0)
        #expect(try await tape.read(file: 0, offset: 0, length: 300_000) == first)
        let tail = try await tape.read(file: 0, offset: 299_000, length: 5000)
        #expect(Array(tail.prefix(1000)) == Array(first.suffix(1000)) && tail.dropFirst(1000).allSatisfy { $0 == 0 })
        await #expect(throws: BlockDeviceError.self) {
            try await tape.write(offset: 0, data: ByteBuffer(bytes: [1, 2, 3]))
        }
        try await tape.position(toFile: 1)
        #expect(try await tape.read(file: 1, offset: 0, length: 70_000) == second)
        await #expect(throws: BlockDeviceError.self) { try await tape.position(toFile: 3) }

        let again = try await reload(fixture)
        status = await again.status
        #expect(status.files == [300_000, 70_000] && status.headFile == 1)
        #expect(try await again.read(file: 0, offset: 1000, length: 200_000) == Array(first[1000..<201_000]))
        await fixture.close()
    }

    @Test func thePositionShowsTheOpenFileAndWhereSealingLeavesTheHead() async throws {
        let (fixture, tape) = try await mounted()
        try await write(tape, pattern(70_000, seed: 8))
        let position = tape.position
        #expect(position.openLength == 70_000 && position.headFile == 0 && position.files == 0)
        let predicted = position.afterSealing
        try await tape.sealOpenFile()
        #expect(tape.position == predicted)
        await fixture.close()
    }

    @Test func writesPastTheCapacityFailWithNoSpace() async throws {
        let (fixture, tape) = try await mounted()
        let capacity = Self.geometry.capacity
        try await tape.write(offset: capacity - 4096, data: ByteBuffer(bytes: [UInt8](repeating: 7, count: 4096)))
        do {
            try await tape.write(offset: capacity - 4096, data: ByteBuffer(bytes: [UInt8](repeating: 7, count: 8192)))
            Issue.record("a write past the end of the tape succeeded")
        } catch let error as BlockDeviceError {
            #expect(error.kind == .noSpace)
        }
        await fixture.close()
    }

    /// A crash keeps the sealed files, and the file it cut short up to its last flush: that file
    /// is sealed there when the tape is mounted again, so the next write starts a new file
    /// instead of overwriting it.
    @Test func aCrashKeepsSealedFilesAndSealsTheFileItCutShort() async throws {
        let (fixture, tape) = try await mounted()
        let sealed = pattern(200_000, seed: 3)
        try await write(tape, sealed)
        try await tape.sealOpenFile()
        let open = pattern(150_000, seed: 4)
        try await write(tape, Array(open[..<100_000]))
        try await tape.flush()
        try await write(tape, Array(open[100_000...]), at: 100_000)
        try await fixture.reopen()
        let recovered = try await reload(fixture)
        let status = await recovered.status
        #expect(status.files == [200_000, 100_000])
        #expect(status.openLength == 0)
        #expect(status.headFile == 2 && status.atEndOfData)
        let next = pattern(30_000, seed: 6)
        try await write(recovered, next)
        #expect(try await recovered.sealOpenFile())
        #expect(try await recovered.read(file: 0, offset: 0, length: 200_000) == sealed)
        #expect(try await recovered.read(file: 1, offset: 0, length: 100_000) == Array(open[..<100_000]))
        #expect(try await recovered.read(file: 1, offset: 100_000, length: 50_000).allSatisfy { $0 == 0 })
        #expect(try await recovered.read(file: 2, offset: 0, length: 30_000) == next)
        let again = try await reload(fixture)
        #expect(await again.status.files == [200_000, 100_000, 30_000])
        await fixture.close()
    }

    /// FLUSH while a write to the same record is still in flight: after a crash the flushed bytes
    /// of that record read back, without a CRC error.
    @Test func flushedBytesOfARecordWithAWriteInFlightSurviveACrash() async throws {
        let fixture = try await VolumeFixture(size: Self.geometry.containerSize, chunkSize: 65536)
        let held = HeldWritesDevice(wrapping: fixture.volume)
        let tape = try await Tape.format(
            container: held, barcode: "ABC123", geometry: Self.geometry, worm: false, on: fixture.loop,
            logger: Logger(label: "test"))
        let first = pattern(32768, seed: 7)
        try await write(tape, first)
        held.holdWrites(from: Self.geometry.recordOffset(0) + 32768)
        let inFlight = Task { try await tape.write(offset: 32768, data: ByteBuffer(bytes: pattern(16384, seed: 8))) }
        while held.heldCount == 0 { try await Task.sleep(for: .milliseconds(5)) }
        try await tape.flush()
        try await fixture.reopen()  // the crash: the held write never lands
        let recovered = try await reload(fixture)
        #expect(await recovered.status.files == [32768])
        #expect(try await recovered.read(file: 0, offset: 0, length: 32768) == first)
        inFlight.cancel()
        await fixture.close()
    }

    /// A crash in the middle of a commit that tears the group header it was writing leaves the
    /// previous commit whole: the sealed file in that group reads back. (Groups of 64 records,
    /// so that a group header spans several sectors.)
    @Test func aCommitTornByAPowerLossLeavesThePreviousCommitWhole() async throws {
        let geometry = TapeGeometry(capacity: 1 << 20, recordSize: 4096, groupRecords: 64)
        let (fixture, world) = try await VolumeFixture.exploring(size: geometry.containerSize)
        let failing = HeldWritesDevice(wrapping: fixture.volume)
        let tape = try await Tape.format(
            container: failing, barcode: "ABC123", geometry: geometry, worm: false, on: fixture.loop,
            logger: Logger(label: "test"))
        let sealed = pattern(140_000, seed: 9)
        try await write(tape, sealed)
        try await tape.sealOpenFile()  // file 0: records 0 to 34 of group 0
        // File 1: records 35 to 39, group 0 too, whose entries lie in another sector of the group
        // header than its start and its CRC.
        try await write(tape, pattern(20_000, seed: 10))
        failing.failFlushes(after: 1)  // the commit writes group 0's header, then cannot go on
        await #expect(throws: BlockDeviceError.self) { try await tape.flush() }
        var random = SplitMix(seed: 3)
        let outcome = try world.powerLoss.powerLoss(path: fixture.path, using: &random, choice: .tearLast)
        #expect(outcome.torn > 0)
        try await fixture.reopen()
        let recovered = try await reload(fixture)
        #expect(await recovered.status.files == [140_000])
        #expect(try await recovered.read(file: 0, offset: 0, length: 140_000) == sealed)
        #expect(await recovered.status.badRecords.isEmpty)
        await fixture.close()
    }

    @Test func aFlippedByteFailsTheReadAndIsReported() async throws {
        let (fixture, tape) = try await mounted()
        let data = pattern(200_000, seed: 5)
        try await write(tape, data)
        try await tape.sealOpenFile()
        let physical = Self.geometry.recordOffset(2) + 777
        var byte = try await fixture.read(physical, 1)
        byte[0] ^= 0x20
        try await fixture.write(physical, byte)
        let fresh = try await reload(fixture)
        do {
            _ = try await fresh.read(file: 0, offset: 0, length: 200_000)
            Issue.record("a damaged record was read without an error")
        } catch let error as BlockDeviceError {
            #expect(error.kind == .io)
        }
        #expect(await fresh.status.badRecords == [2])
        #expect(try await fresh.read(file: 0, offset: 0, length: 131_072) == Array(data[..<131_072]))
        await fixture.close()
    }

    @Test func eraseDropsFilesFromTheHeadOnAndWORMRefusesIt() async throws {
        let (fixture, tape) = try await mounted()
        for seed in 0..<3 {
            try await write(tape, pattern(100_000, seed: seed))
            try await tape.sealOpenFile()
        }
        try await tape.position(toFile: 1)
        try await tape.erase()
        var status = await tape.status
        #expect(status.files == [100_000] && status.atEndOfData)
        let extents = try await fixture.volume.blockStatus(
            offset: Self.geometry.recordOffset(3), length: 65536, on: fixture.loop
        ).get()
        #expect(extents.allSatisfy { $0.isHole })
        try await write(tape, pattern(5000, seed: 9))
        try await tape.writeFilemark()
        try await tape.writeFilemark()
        status = await tape.status
        #expect(status.files == [100_000, 5000, 0])
        #expect(try await tape.read(file: 1, offset: 0, length: 5000) == pattern(5000, seed: 9))
        await fixture.close()

        let (wormFixture, worm) = try await mounted(worm: true)
        try await write(worm, pattern(1000, seed: 1))
        try await worm.sealOpenFile()
        try await worm.position(toFile: 0)
        await #expect(throws: BlockDeviceError.self) { try await worm.erase() }
        #expect(await worm.status.files == [1000])
        await wormFixture.close()
    }
}
