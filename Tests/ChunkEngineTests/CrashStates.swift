import Foundation
import Metadata
import NIOConcurrencyHelpers
import NIOPosix
import ObjectStore
import VolumeTestSupport

@testable import ChunkEngine

/// The explorer's side of a recorded volume: it owns the sector model (which the workload
/// updates), and at recorded events it captures crash states of the running volume (each sync,
/// object-store request sent and done with odds of 1 in 3; each file change 1 in 24, a point
/// between boundaries), each with the model as of that instant, to be checked one by one.
final class CrashStates: Sendable {
    /// A captured state waiting to be checked.
    struct Captured: Sendable {
        let index: Int
        let event: CrashRecorder.Event
        let state: CrashWorld.State
        let model: SectorModel
    }

    /// How the checked states were spread.
    struct Tally: Sendable {
        var byEvent: [CrashRecorder.Event: Int] = [:]
        var unsyncedPages = 0
        var requestsInFlight = 0
        var requestsDone = 0
        var checked: Int { byEvent.values.reduce(0, +) }
    }

    private struct State {
        var model: SectorModel
        var random: SplitMix
        var capturing = false
        var captured = 0
        var queue: [Captured] = []
        var failures: [String] = []
    }

    private let state: NIOLockedValueBox<State>
    private let world: CrashWorld
    private let scratch: String
    private let wanted: Int
    private let seed: UInt64
    /// Captures waiting at most: the workload pauses for checks, background work does not.
    private static let queueLimit = 4

    init(world: CrashWorld, size: Int, seed: UInt64, wanted: Int) throws {
        self.world = world
        self.seed = seed
        self.wanted = wanted
        scratch = NSTemporaryDirectory() + "blockgate-crash-states-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        state = NIOLockedValueBox(State(model: SectorModel(size: size), random: SplitMix(seed: seed)))
        world.recorder.observe { [self] event in consider(event) }
    }

    /// Changes the model.
    func update(_ change: (inout SectorModel) -> Void) { state.withLockedValue { change(&$0.model) } }

    /// The model (to check a live power cut against).
    func check(_ read: [UInt8]) -> [String] { state.withLockedValue { $0.model.check(read) } }

    /// Starts or stops capturing (stopped while the running volume itself is cut and reopened).
    func capturing(_ on: Bool) { state.withLockedValue { $0.capturing = on } }

    /// States captured so far.
    var captured: Int { state.withLockedValue { $0.captured } }

    var capturedAll: Bool { captured >= wanted }

    /// The model's present content.
    var current: [UInt8] { state.withLockedValue { $0.model.current } }

    /// Checks the states captured since the last call; returns the violations, and the
    /// failures to capture.
    func checkCaptured(kind: Volume.Kind, record: VolumeRecord, settings: RemoteSettings, tally: inout Tally)
        async -> [String]
    {
        let (queue, failures) = state.withLockedValue { state in
            defer {
                state.queue = []
                state.failures = []
            }
            return (state.queue, state.failures)
        }
        var problems = failures
        for captured in queue {
            problems += await check(captured, kind: kind, record: record, settings: settings, tally: &tally)
        }
        return problems
    }

    func finish() {
        world.recorder.observe(nil)
        try? FileManager.default.removeItem(atPath: scratch)
    }

    private func consider(_ event: CrashRecorder.Event) {
        state.withLockedValue { state in
            guard state.capturing, state.captured < wanted, state.queue.count < Self.queueLimit,
                state.random.next() % (event == .fileChanged ? 24 : 3) == 0
            else { return }
            state.captured += 1
            do {
                let captured = try world.capture(into: "\(scratch)/state-\(state.captured)")
                state.queue.append(Captured(index: state.captured, event: event, state: captured, model: state.model))
            } catch {
                state.failures.append("seed \(seed): state \(state.captured) could not be captured: \(error)")
            }
        }
    }

    /// Writes out a captured state and checks it: for a cached volume, a store-only recover
    /// first (from the store as the crash left it: no older than the last flush --wait-upload);
    /// then the volume opened from it reads every sector as of its last flush or later, every
    /// record names an object that exists, and the uploader converges to a store that reads the
    /// same. A failed state's directory is kept and named.
    private func check(
        _ captured: Captured, kind: Volume.Kind, record: VolumeRecord, settings: RemoteSettings, tally: inout Tally
    )
        async -> [String]
    {
        let directory = captured.state.directory
        let label =
            "seed \(seed), state \(captured.index) (at a \(captured.event.rawValue); "
            + "\(captured.state.unsyncedOperations) unsynced operation(s), "
            + "\(captured.state.requestsInFlight) store request(s) in flight)"
        var random = SplitMix(seed: seed &* 1_000_003 &+ UInt64(captured.index))
        var problems: [String] = []
        do {
            let written = try await CrashWorld.writeOut(captured.state, using: &random)
            tally.byEvent[captured.event, default: 0] += 1
            tally.unsyncedPages += written.file.pages
            tally.requestsInFlight += captured.state.requestsInFlight
            tally.requestsDone += written.requestsDone
            if kind == .cached {
                problems += try await storeOnlyRecoverProblems(
                    directory: directory, record: record, model: captured.model)
            }
            let fixture = try await VolumeFixture(existing: directory, settings: settings)
            let read = try await fixture.read(0, Int(record.size))
            problems += captured.model.violations(read)
            if kind == .cached {
                problems += try await missingObjects(fixture)
                if problems.isEmpty {
                    fixture.volume.startUploader()
                    try await fixture.waitUntilUploaded(within: 60)
                    try await fixture.volume.dropCache()
                    if try await fixture.read(0, Int(record.size)) != read {
                        problems.append("the store the uploader converged to reads differently from the cache")
                    }
                }
            }
            await fixture.close(removing: false)
        } catch {
            problems.append("\(error)")
        }
        if problems.isEmpty {
            try? FileManager.default.removeItem(atPath: directory)
            return []
        }
        let kept = directory + "-failed"
        try? FileManager.default.moveItem(atPath: directory, toPath: kept)
        return problems.map { "\(label): \($0) (the state is kept in \(kept))" }
    }

    private func storeOnlyRecoverProblems(directory: String, record: VolumeRecord, model: SectorModel) async throws
        -> [String]
    {
        let objects = FileObjectStore(root: "\(directory)/objects", pool: NIOThreadPool.singleton)
        let geometry = ChunkGeometry(volumeSize: record.size, chunkSize: Int(record.chunkSize))
        let (chunks, next) = try await Volume.chunksInStore(uuid: record.uuid, geometry: geometry, store: objects)
        _ = try MetadataStore(path: "\(directory)/recovered.db").createVolume(
            name: record.name, kind: record.kind, size: record.size, chunkSize: record.chunkSize, createdAt: 0,
            uuid: record.uuid, chunks: chunks, nextGeneration: next)
        let recovered = try await VolumeFixture(existing: directory, database: "recovered.db", file: "recovered.img")
        let read = try await recovered.read(0, Int(record.size))
        await recovered.close(removing: false)
        return model.violations(read, fromStore: true).map { "store-only recover: \($0)" }
    }

    private func missingObjects(_ fixture: VolumeFixture) async throws -> [String] {
        let uuid = fixture.record.uuid
        let stored = Set(
            try await fixture.objects!.list(prefix: RemoteBacking.chunkPrefix(uuid: uuid)).compactMap {
                RemoteBacking.parseChunkKey($0.key, uuid: uuid).map { "\($0.index)-\($0.generation)" }
            })
        return try fixture.store.chunks(volumeID: fixture.record.id).filter {
            $0.remoteGeneration > 0 && !stored.contains("\($0.index)-\($0.remoteGeneration)")
        }.map { "chunk \($0.index) names generation \($0.remoteGeneration), which the store does not hold" }
    }
}
