import NIOConcurrencyHelpers
import NIOCore
import ObjectStore

/// An object store in which PUTs whose answer was lost land late, at the worst moment: right
/// after the first DELETE of their key, if that comes within `window` of the PUT (the time a
/// real store may take to finish a request whose client gave up or died). Late PUTs are handed
/// in (those a crash left in flight) or made by losing the answer of chosen PUTs.
public final class LatePutStore: ObjectStore {
    private struct Late {
        let data: ByteBuffer
        let until: NIODeadline
    }

    private struct State {
        var late: [ObjectKey: Late] = [:]
        var loseAnswer: (@Sendable (ObjectKey) -> Bool)?
        var landed = 0
    }

    private let base: any ObjectStore
    private let window: TimeAmount
    private let state = NIOLockedValueBox(State())

    /// A store over `base` in which each of `late` (sent just now) may land within `window`.
    public init(wrapping base: any ObjectStore, late: [ObjectKey: ByteBuffer] = [:], window: TimeAmount) {
        self.base = base
        self.window = window
        let until = NIODeadline.now() + window
        state.withLockedValue { $0.late = late.mapValues { Late(data: $0, until: until) } }
    }

    /// From now on, the first PUT whose key satisfies `chosen` fails with its answer lost, and
    /// lands late.
    public func loseAnswerOfFirstPut(where chosen: @escaping @Sendable (ObjectKey) -> Bool) {
        state.withLockedValue { $0.loseAnswer = chosen }
    }

    /// Late PUTs that have landed.
    public var landed: Int { state.withLockedValue { $0.landed } }

    public func prepare() async throws { try await base.prepare() }

    public func put(_ key: ObjectKey, data: ByteBuffer) async throws {
        let lost = state.withLockedValue { state in
            guard let chosen = state.loseAnswer, chosen(key) else { return false }
            state.loseAnswer = nil
            state.late[key] = Late(data: data, until: .now() + window)
            return true
        }
        if lost { throw ObjectStoreError(.unavailable, "no answer (the PUT will land late)") }
        try await base.put(key, data: data)
    }

    public func get(_ key: ObjectKey, range: Range<UInt64>?) async throws -> ByteBuffer {
        try await base.get(key, range: range)
    }

    public func head(_ key: ObjectKey) async throws -> ObjectInfo? { try await base.head(key) }

    public func delete(_ key: ObjectKey) async throws {
        try await base.delete(key)
        let landing = state.withLockedValue { state -> ByteBuffer? in
            guard let late = state.late.removeValue(forKey: key), late.until > .now() else { return nil }
            state.landed += 1
            return late.data
        }
        if let landing { try await base.put(key, data: landing) }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] { try await base.list(prefix: prefix) }
}
