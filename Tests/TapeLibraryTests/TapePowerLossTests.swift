import BlockDevice
import Foundation
import Logging
import NIOCore
import Testing
import VolumeTestSupport

@testable import TapeLibrary

/// The crash-state explorer for tapes: seeded workloads of appending writes, flushes, filemarks
/// and (when the tape is full) rewinding and erasing, on a tape whose container sits on a
/// volume. Crash states come two ways: captured at recorded events while the tape runs (every
/// sync sent and done, and points between; see `CrashStates`), each opened and mounted on its
/// own; and at intervals a power cut of the running tape, which is mounted again and goes on
/// from what the cut left. After each, every sealed file reads back exactly, the file the crash
/// interrupted is sealed at its last flush, the head is at end of data, and nothing fails its
/// CRC; a commit under way at the crash may have landed or not. `BLOCKGATE_CRASH_STATES` sets
/// the budget as for volumes (half of it for tapes).
@Suite struct TapePowerLossTests {
    static let geometry = TapeGeometry(capacity: 16 << 20, recordSize: 64 << 10, groupRecords: 4)
    static let seeds: [UInt64] = [31, 32]
    static let budget = ProcessInfo.processInfo.environment["BLOCKGATE_CRASH_STATES"].flatMap(Int.init) ?? 96
    static let interval = 25

    /// What a crash may leave of the tape's files.
    struct TapeModel: Sendable {
        /// A commit under way, which a crash may or may not let land.
        enum Commit: Sendable {
            case flush, seal
            /// Rewinding to file 0 (a commit of the head, and of the open file) and erasing.
            case rewindAndErase
        }

        var sealed: [[UInt8]] = []
        var open: [UInt8] = []
        var durable = 0
        var commit: Commit?

        /// The file lists a crash may leave: the interrupted file sealed at its last flush, or
        /// what the commit under way makes of it.
        var outcomes: [[[UInt8]]] {
            let now = sealed + (durable > 0 ? [Array(open.prefix(durable))] : [])
            let wholeOpen = sealed + (open.isEmpty ? [] : [open])
            switch commit {
            case nil: return [now]
            case .flush, .seal: return [now, wholeOpen]
            case .rewindAndErase: return [now, wholeOpen, []]
            }
        }
    }

    @Test(arguments: seeds)
    func sealedAndFlushedDataSurvivePowerLoss(_ seed: UInt64) async throws {
        let (fixture, world) = try await VolumeFixture.exploring(size: Self.geometry.containerSize)
        let logger = Logger(label: "test")
        var tape = try await Tape.format(
            container: fixture.volume, barcode: "CRASH1", geometry: Self.geometry, worm: false, on: fixture.loop,
            logger: logger)
        let statesWanted = max(2, Self.budget / (2 * Self.seeds.count))
        let states = try CrashStates(world: world, model: TapeModel(), seed: seed, wanted: statesWanted)
        states.capturing(true)
        var random = SplitMix(seed: seed)
        var problems: [String] = []
        var cuts: [PowerLossFileIO.Outcome] = []
        var tally = CrashStates<TapeModel>.Tally()
        var step = 0
        while cuts.isEmpty || cuts.count + states.captured < statesWanted {
            step += 1
            let model = states.update { $0 }
            let used = (model.sealed + [model.open]).reduce(0) { $0 + (($1.count + 65535) / 65536) * 65536 }
            switch random.next() % 8 {
            case 0...5 where used + 200_000 < Int(Self.geometry.capacity):
                let data = (0..<(1 + Int(random.next() % 40_000))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                try await tape.write(offset: UInt64(model.open.count), data: ByteBuffer(bytes: data))
                states.update { $0.open += data }
            case 0...5:
                // The tape is full: rewind and erase it, so that long runs keep writing.
                states.update { $0.commit = .rewindAndErase }
                try await tape.position(toFile: 0)
                try await tape.erase()
                states.update { $0 = TapeModel() }
            case 6:
                states.update { $0.commit = .flush }
                try await tape.flush()
                states.update {
                    $0.durable = $0.open.count
                    $0.commit = nil
                }
            default:
                states.update { $0.commit = .seal }
                let sealedOne = try await tape.sealOpenFile()
                states.update {
                    if sealedOne { $0.sealed.append($0.open) }
                    $0.open = []
                    $0.durable = 0
                    $0.commit = nil
                }
            }
            problems += await checkCaptured(states, tally: &tally, logger: logger)
            guard step % Self.interval == 0 else { continue }
            // A power cut of the running tape, which then goes on from what the cut left.
            states.capturing(false)
            cuts.append(try world.powerLoss.powerLoss(path: fixture.path, using: &random))
            try await fixture.reopen()
            try world.powerLoss.settle(path: fixture.path)
            tape = try await Tape.load(container: fixture.volume, on: fixture.loop, logger: logger)
            let outcomes = states.update { $0.outcomes }
            problems += await Self.problems(of: tape, outcomes: outcomes, atEndOfData: true).map {
                "seed \(seed), cut at step \(step): \($0)"
            }
            states.update { $0 = TapeModel(sealed: outcomes[0]) }
            states.capturing(true)
        }
        states.capturing(false)
        problems += await checkCaptured(states, tally: &tally, logger: logger)
        states.finish()
        print(
            "crash-state explorer: tape, seed \(seed), \(step) operations: \(cuts.count + tally.checked) crash states: "
                + "\(cuts.count) power cut(s) of the running tape (\(cuts.reduce(0) { $0 + $1.pages }) unsynced pages, "
                + "\(cuts.reduce(0) { $0 + $1.lost }) lost, \(cuts.reduce(0) { $0 + $1.torn }) torn); "
                + "\(tally.description), \(states.skipped) events passed over while states waited; \(problems.count) violations"
        )
        #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n"))")
        await fixture.close()
    }

    /// Writes out, mounts and checks the states captured since the last call.
    private func checkCaptured(
        _ states: CrashStates<TapeModel>, tally: inout CrashStates<TapeModel>.Tally, logger: Logger
    ) async -> [String] {
        await states.checkCaptured(tally: &tally) { captured in
            try await VolumeFixture.opening(existing: captured.state.directory) { fixture in
                let tape = try await Tape.load(container: fixture.volume, on: fixture.loop, logger: logger)
                // A rewind may have landed before its erase: the head is then at file 0.
                return await Self.problems(
                    of: tape, outcomes: captured.model.outcomes,
                    atEndOfData: captured.model.commit != .rewindAndErase)
            }
        }
    }

    /// What is wrong with a tape mounted after a crash, which must hold one of `outcomes`.
    private static func problems(of tape: Tape, outcomes: [[[UInt8]]], atEndOfData: Bool) async -> [String] {
        let status = await tape.status
        var problems: [String] = []
        if status.openLength != 0 || (atEndOfData && !status.atEndOfData) {
            problems.append("the head is at file \(status.headFile) with \(status.openLength) open byte(s)")
        }
        let lengths = status.files.map { Int($0) }
        let candidates = outcomes.filter { $0.map(\.count) == lengths }
        guard !candidates.isEmpty else {
            return problems + ["files \(lengths), expected one of \(outcomes.map { $0.map(\.count) })"]
        }
        var files: [[UInt8]] = []
        for (number, length) in lengths.enumerated() {
            do {
                files.append(try await tape.read(file: number, offset: 0, length: length))
            } catch {
                return problems + ["file \(number): \(error)"]
            }
        }
        if !candidates.contains(files) { problems.append("a sealed file differs from what was written") }
        if !status.badRecords.isEmpty { problems.append("records \(status.badRecords) failed their CRC") }
        return problems
    }
}
