import BlockDevice
import Foundation
import Logging
import NIOCore
import Testing
import VolumeTestSupport

@testable import TapeLibrary

/// The crash-state explorer for tapes: seeded workloads of appending writes, flushes, filemarks
/// and (when the tape is full) erasing, on a tape whose container sits on a volume, and at
/// intervals a power cut (any subset of the unsynced page writes, some torn). After each cut the
/// tape is mounted again: every sealed file reads back exactly, the file the cut interrupted is
/// sealed at its last flush, and nothing fails its CRC. `BLOCKGATE_CRASH_STATES` sets the
/// budget as for volumes.
@Suite struct TapePowerLossTests {
    static let geometry = TapeGeometry(capacity: 16 << 20, recordSize: 64 << 10, groupRecords: 4)
    static let seeds: [UInt64] = [31, 32]
    static let budget = ProcessInfo.processInfo.environment["BLOCKGATE_CRASH_STATES"].flatMap(Int.init) ?? 96
    static let interval = 25

    @Test(arguments: seeds)
    func sealedAndFlushedDataSurvivePowerLoss(_ seed: UInt64) async throws {
        let (fixture, powerLoss) = try await VolumeFixture.withPowerLoss(size: Self.geometry.containerSize)
        let logger = Logger(label: "test")
        var tape = try await Tape.format(
            container: fixture.volume, barcode: "CRASH1", geometry: Self.geometry, worm: false, on: fixture.loop,
            logger: logger)
        var random = SplitMix(seed: seed)
        var sealed: [[UInt8]] = []
        var open: [UInt8] = []
        var durable = 0
        var problems: [String] = []
        var cuts: [PowerLossFileIO.Outcome] = []
        let cutsWanted = max(1, Self.budget / (2 * Self.seeds.count))
        for step in 1...(cutsWanted * Self.interval) {
            let used = (sealed + [open]).reduce(0) { $0 + (($1.count + 65535) / 65536) * 65536 }
            switch random.next() % 8 {
            case 0...5 where used + 200_000 < Int(Self.geometry.capacity):
                let data = (0..<(1 + Int(random.next() % 40_000))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                try await tape.write(offset: UInt64(open.count), data: ByteBuffer(bytes: data))
                open += data
            case 0...5:
                // The tape is full: rewind and erase it, so that long runs keep writing.
                try await tape.position(toFile: 0)
                try await tape.erase()
                sealed = []
                open = []
                durable = 0
            case 6:
                try await tape.flush()
                durable = open.count
            default:
                if try await tape.sealOpenFile() { sealed.append(open) }
                open = []
                durable = 0
            }
            guard step % Self.interval == 0 else { continue }
            cuts.append(try powerLoss.powerLoss(path: fixture.path, using: &random))
            try await fixture.reopen()
            try powerLoss.settle(path: fixture.path)
            tape = try await Tape.load(container: fixture.volume, on: fixture.loop, logger: logger)
            if durable > 0 { sealed.append(Array(open.prefix(durable))) }
            open = []
            durable = 0
            let status = await tape.status
            let expected = sealed.map { UInt64($0.count) }
            if status.files != expected || status.openLength != 0 || !status.atEndOfData {
                problems.append(
                    "seed \(seed), cut at step \(step): files \(status.files) open \(status.openLength), expected \(sealed.map(\.count))"
                )
                break
            }
            for (number, file) in sealed.enumerated() {
                do {
                    let back = try await tape.read(file: number, offset: 0, length: file.count)
                    if back != file { problems.append("seed \(seed), cut at step \(step): file \(number) differs") }
                } catch {
                    problems.append("seed \(seed), cut at step \(step): file \(number): \(error)")
                }
            }
        }
        print(
            "crash-state explorer: tape, seed \(seed): \(cuts.count) crash states, \(cuts.reduce(0) { $0 + $1.pages }) unsynced pages "
                + "(\(cuts.reduce(0) { $0 + $1.lost }) lost, \(cuts.reduce(0) { $0 + $1.torn }) torn), \(problems.count) violations"
        )
        #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n"))")
        await fixture.close()
    }
}
