import NIOConcurrencyHelpers
import NIOCore
import ObjectStore

/// An object store that also keeps, in memory, what it holds as of its completed requests and
/// which PUTs and DELETEs are in flight, each change recorded through a `CrashRecorder`. A
/// capture of it is written out as a store a power loss could leave: every completed request
/// done, each request in flight done or not. It starts empty, as the store it wraps must. It
/// can also fail PUTs on purpose, before or after the store acts.
public final class RecordingObjectStore: ObjectStore {
    /// A PUT or DELETE.
    public enum Mutation: Sendable {
        case put(ObjectKey, ByteBuffer)
        case delete(ObjectKey)
    }

    /// The store as one instant left it.
    public struct Capture: Sendable {
        let objects: [ObjectKey: ByteBuffer]
        let inFlight: [Mutation]
        /// Requests that were in flight.
        public var requestsInFlight: Int { inFlight.count }
    }

    /// A PUT failed on purpose: before the store acts, or after it stored the object (as when
    /// the answer is lost).
    private enum Fault {
        case before, after
    }

    private struct State {
        var objects: [ObjectKey: ByteBuffer] = [:]
        var inFlight: [Int: Mutation] = [:]
        var lastRequest = 0
        var faults: (odds: UInt64, random: SplitMix)?
        var failedPuts = 0

        mutating func fault(for mutation: Mutation) -> Fault? {
            guard case .put = mutation, let (odds, random) = faults else { return nil }
            var generator = random
            defer { faults = (odds, generator) }
            guard generator.next() % odds == 0 else { return nil }
            failedPuts += 1
            return generator.next() % 2 == 0 ? .before : .after
        }
    }

    private let base: any ObjectStore
    private let recorder: CrashRecorder
    private let state = NIOLockedValueBox(State())

    public init(wrapping base: any ObjectStore, recorder: CrashRecorder) {
        self.base = base
        self.recorder = recorder
    }

    public func prepare() async throws { try await base.prepare() }

    /// Fails one PUT in `odds` from now on, chosen with a generator seeded by `seed`.
    public func failPuts(oneIn odds: UInt64, seed: UInt64) {
        state.withLockedValue { $0.faults = (odds, SplitMix(seed: seed)) }
    }

    /// PUTs failed on purpose so far.
    public var failedPuts: Int { state.withLockedValue { $0.failedPuts } }

    public func put(_ key: ObjectKey, data: ByteBuffer) async throws {
        try await mutate(.put(key, data)) { try await base.put(key, data: data) }
    }

    public func get(_ key: ObjectKey, range: Range<UInt64>?) async throws -> ByteBuffer {
        try await base.get(key, range: range)
    }

    public func head(_ key: ObjectKey) async throws -> ObjectInfo? { try await base.head(key) }

    public func delete(_ key: ObjectKey) async throws {
        try await mutate(.delete(key)) { try await base.delete(key) }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] { try await base.list(prefix: prefix) }

    /// What the store holds and which requests are in flight (call it from a `CrashRecorder`
    /// observer).
    public func capture() -> Capture {
        state.withLockedValue {
            Capture(objects: $0.objects, inFlight: $0.inFlight.sorted { $0.key < $1.key }.map(\.value))
        }
    }

    /// Writes `capture` into the empty store `target`, each request in flight done or not as
    /// `random` chooses, and each PUT not done into `late` (it may still land: see
    /// `LatePutStore`); returns how many were done.
    public static func materialize(
        _ capture: Capture, into target: any ObjectStore, late: any ObjectStore,
        using random: inout some RandomNumberGenerator
    ) async throws -> Int {
        var objects = capture.objects
        var done = 0
        for mutation in capture.inFlight {
            let isDone = random.next() % 2 == 0
            if isDone { done += 1 }
            switch (mutation, isDone) {
            case (.put(let key, let data), true): objects[key] = data
            case (.delete(let key), true): objects[key] = nil
            case (.put(let key, let data), false): try await late.put(key, data: data)
            case (.delete, false): break
            }
        }
        for (key, data) in objects { try await target.put(key, data: data) }
        return done
    }

    private func mutate(_ mutation: Mutation, _ request: () async throws -> Void) async throws {
        let (id, fault) = recorder.record(.storeRequestSent) {
            state.withLockedValue { state in
                state.lastRequest += 1
                state.inFlight[state.lastRequest] = mutation
                return (state.lastRequest, state.fault(for: mutation))
            }
        }
        let injected = ObjectStoreError(.unavailable, "injected fault")
        do {
            if fault == .before { throw injected }
            try await request()
        } catch {
            // A failed request is taken as not done (the stores under test fail before acting).
            recorder.record(.storeRequestDone) { _ = state.withLockedValue { $0.inFlight.removeValue(forKey: id) } }
            throw error
        }
        recorder.record(.storeRequestDone) {
            state.withLockedValue { state in
                state.inFlight[id] = nil
                switch mutation {
                case .put(let key, let data): state.objects[key] = data
                case .delete(let key): state.objects[key] = nil
                }
            }
        }
        if fault == .after { throw injected }
    }
}
