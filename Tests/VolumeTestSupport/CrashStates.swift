import Foundation
import NIOConcurrencyHelpers

/// The explorer's side of a recorded fixture: it owns the model of what a crash may leave
/// (which the workload updates, a change before it is sent and a flush once it completes), and
/// at recorded events it captures crash states of the running fixture (every boundary: each
/// sync and each object-store request, sent and done; and one file change in 24, a point
/// between boundaries), each with the model as of that instant, for the test to check one by
/// one (`checkCaptured`). Capturing stops after `wanted` states.
public final class CrashStates<Model: Sendable>: Sendable {
    /// A captured state waiting to be checked.
    public struct Captured: Sendable {
        public let index: Int
        public let event: CrashRecorder.Event
        public let state: CrashWorld.State
        public let model: Model
        /// Names the state in a failure.
        public var label: String {
            "state \(index) (at a \(event.rawValue); \(state.unsyncedOperations) unsynced operation(s), "
                + "\(state.requestsInFlight) store request(s) in flight)"
        }
    }

    /// How the checked states were spread.
    public struct Tally: Sendable {
        public var byEvent: [CrashRecorder.Event: Int] = [:]
        public var unsyncedPages = 0
        public var requestsInFlight = 0
        public var requestsDone = 0
        public var checked: Int { byEvent.values.reduce(0, +) }
        public init() {}

        /// Counts a state as written out.
        public mutating func add(_ captured: Captured, _ written: CrashWorld.Written) {
            byEvent[captured.event, default: 0] += 1
            unsyncedPages += written.file.pages
            requestsInFlight += captured.state.requestsInFlight
            requestsDone += written.requestsDone
        }

        public var description: String {
            let events = CrashRecorder.Event.allCases.map { "\(byEvent[$0] ?? 0) at a \($0.rawValue)" }
            return "\(checked) captured (\(events.joined(separator: ", "))), \(unsyncedPages) unsynced pages, "
                + "\(requestsInFlight) store requests in flight (\(requestsDone) taken as done)"
        }
    }

    private struct State {
        var model: Model
        var random: SplitMix
        var capturing = false
        var captured = 0
        var queue: [Captured] = []
        var failures: [String] = []
        var skipped = 0
    }

    private let state: NIOLockedValueBox<State>
    private let world: CrashWorld
    private let scratch: String
    private let wanted: Int
    private let seed: UInt64
    /// Captures waiting at most: the workload pauses for checks, background work does not.
    private var queueLimit: Int { 8 }

    /// Captures up to `wanted` states of `world`, with `model` as the model to begin with.
    public init(world: CrashWorld, model: Model, seed: UInt64, wanted: Int) throws {
        self.world = world
        self.seed = seed
        self.wanted = wanted
        scratch = NSTemporaryDirectory() + "blockgate-crash-states-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        state = NIOLockedValueBox(State(model: model, random: SplitMix(seed: seed)))
        world.recorder.observe { [self] event in consider(event) }
    }

    /// Reads or changes the model.
    @discardableResult
    public func update<T>(_ change: (inout Model) -> T) -> T { state.withLockedValue { change(&$0.model) } }

    /// Starts or stops capturing (stopped while the running fixture itself is cut and reopened).
    public func capturing(_ on: Bool) { state.withLockedValue { $0.capturing = on && $0.captured < wanted } }

    /// States captured so far.
    public var captured: Int { state.withLockedValue { $0.captured } }

    /// Events passed over because `queueLimit` states were already waiting (background work,
    /// such as uploads, goes on while the test checks states).
    public var skipped: Int { state.withLockedValue { $0.skipped } }

    /// Writes out each state captured since the last call in its directory (with a generator of
    /// the state's own, so that it replays), counts it in `tally`, and checks it with
    /// `violations`, which opens it with `VolumeFixture(existing:)`. Removes a state that passes
    /// and keeps one that fails; returns the violations (naming the seed, the state and where it
    /// is kept) and the failures to capture.
    public func checkCaptured(tally: inout Tally, _ violations: (Captured) async throws -> [String]) async
        -> [String]
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
            var found: [String]
            do {
                var random = SplitMix(seed: seed &* 1_000_003 &+ UInt64(captured.index))
                tally.add(captured, try await CrashWorld.writeOut(captured.state, using: &random))
                found = try await violations(captured)
            } catch {
                found = ["\(error)"]
            }
            let directory = captured.state.directory
            guard !found.isEmpty else {
                try? FileManager.default.removeItem(atPath: directory)
                continue
            }
            let kept = directory + "-failed"
            try? FileManager.default.moveItem(atPath: directory, toPath: kept)
            problems += found.map { "seed \(seed), \(captured.label): \($0) (the state is kept in \(kept))" }
        }
        return problems
    }

    /// Stops capturing for good and removes what is left, but for the states that failed.
    public func finish() {
        world.recorder.observe(nil)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? []
        for entry in left where !entry.hasSuffix("-failed") {
            try? FileManager.default.removeItem(atPath: "\(scratch)/\(entry)")
        }
        if left.allSatisfy({ !$0.hasSuffix("-failed") }) { try? FileManager.default.removeItem(atPath: scratch) }
    }

    private func consider(_ event: CrashRecorder.Event) {
        state.withLockedValue { state in
            guard state.capturing, state.captured < wanted else { return }
            // Every boundary; one point between boundaries in 24.
            guard event != .fileChanged || state.random.next() % 24 == 0 else { return }
            guard state.queue.count < queueLimit else {
                state.skipped += 1
                return
            }
            state.captured += 1
            do {
                let captured = try world.capture(into: "\(scratch)/state-\(state.captured)")
                state.queue.append(Captured(index: state.captured, event: event, state: captured, model: state.model))
            } catch {
                state.failures.append("seed \(seed): state \(state.captured) could not be captured: \(error)")
            }
        }
    }
}
