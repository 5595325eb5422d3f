import Glibc
import LocalIO
import NIOConcurrencyHelpers
import NIOCore
import ObjectStore

/// Real file I/O whose next `syncData` calls fail with EIO (after really syncing), as a disk
/// that lost write-back pages reports it once.
public final class FailingSyncFileIO: FileIOWrapper, @unchecked Sendable {
    public let base: any FileIO
    private let failures = NIOLockedValueBox(0)

    public init(wrapping base: any FileIO) {
        self.base = base
    }

    /// Makes the next `count` syncs fail.
    public func failNextSyncs(_ count: Int) { failures.withLockedValue { $0 = count } }

    public func syncData(_ file: LocalFile, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        base.syncData(file, on: eventLoop).flatMapThrowing {
            let fail = self.failures.withLockedValue { failures in
                defer { failures = max(0, failures - 1) }
                return failures > 0
            }
            if fail { throw LocalIOError(errno: EIO, operation: "fdatasync \(file.path)") }
        }
    }
}

/// A real object store that can be told to fail listings, or to fail PUTs after storing the
/// object (as when the connection drops before the answer): the faults of a crash mid-upload.
/// It can also damage what the next GETs return (a flipped bit on the way), counts the GETs
/// and the bytes they returned and the DELETEs, and can hold PUTs back (a slow store) before they
/// store anything.
public final class FlakyObjectStore: ObjectStore, @unchecked Sendable {
    public let base: any ObjectStore
    private let state = NIOLockedValueBox((failLists: false, failPutsAfterStoring: false, storedThenFailed: 0))
    /// While holding, each PUT waits for its continuation (true: go on; false: fail).
    private let held = NIOLockedValueBox((holding: false, waiting: [CheckedContinuation<Bool, Never>]()))
    private let reads = NIOLockedValueBox((damaged: 0, gets: 0, bytes: 0))
    private let deleted = NIOLockedValueBox(0)

    /// DELETEs sent so far.
    public var deletes: Int { deleted.withLockedValue { $0 } }

    /// Flips a bit in the middle of what each of the next `count` GETs returns.
    public func damageNextGets(_ count: Int) { reads.withLockedValue { $0.damaged = count } }

    /// GETs answered and the bytes they returned since the last call; starts counting afresh.
    public func takeGets() -> (gets: Int, bytes: Int) {
        reads.withLockedValue { reads in
            defer { (reads.gets, reads.bytes) = (0, 0) }
            return (reads.gets, reads.bytes)
        }
    }

    public init(wrapping base: any ObjectStore) {
        self.base = base
    }

    public func set(failLists: Bool? = nil, failPutsAfterStoring: Bool? = nil) {
        state.withLockedValue { state in
            if let failLists { state.failLists = failLists }
            if let failPutsAfterStoring { state.failPutsAfterStoring = failPutsAfterStoring }
        }
    }

    /// PUTs that stored their object and then failed.
    public var storedThenFailed: Int { state.withLockedValue { $0.storedThenFailed } }

    public func prepare() async throws { try await base.prepare() }

    /// Holds every PUT from now on, until `release`.
    public func holdPuts() { held.withLockedValue { $0.holding = true } }

    /// PUTs waiting now.
    public var heldPuts: Int { held.withLockedValue { $0.waiting.count } }

    /// Lets the PUTs waiting now go on (or fail, unstored); with `holding`, later ones wait still.
    public func release(failing: Bool = false, holding: Bool = false) {
        let waiting = held.withLockedValue { held in
            defer { held = (holding, []) }
            return held.waiting
        }
        for put in waiting { put.resume(returning: !failing) }
    }

    public func put(_ key: ObjectKey, data: ByteBuffer) async throws {
        let proceed = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let wait = held.withLockedValue { held in
                if held.holding { held.waiting.append(continuation) }
                return held.holding
            }
            if !wait { continuation.resume(returning: true) }
        }
        guard proceed else { throw ObjectStoreError(.unavailable, "PUT \(key): the store was stopped (injected)") }
        try await base.put(key, data: data)
        let fail = state.withLockedValue { state in
            if state.failPutsAfterStoring { state.storedThenFailed += 1 }
            return state.failPutsAfterStoring
        }
        if fail { throw ObjectStoreError(.unavailable, "PUT \(key): the connection dropped (injected)") }
    }

    public func get(_ key: ObjectKey, range: Range<UInt64>?) async throws -> ByteBuffer {
        var data = try await base.get(key, range: range)
        let damage = reads.withLockedValue { reads in
            reads.gets += 1
            reads.bytes += data.readableBytes
            defer { reads.damaged = max(0, reads.damaged - 1) }
            return reads.damaged > 0
        }
        if damage, data.readableBytes > 0 {
            let middle = data.readerIndex + data.readableBytes / 2
            data.setInteger(data.getInteger(at: middle, as: UInt8.self)! ^ 0x04, at: middle)
        }
        return data
    }

    public func head(_ key: ObjectKey) async throws -> ObjectInfo? { try await base.head(key) }

    public func delete(_ key: ObjectKey) async throws {
        deleted.withLockedValue { $0 += 1 }
        try await base.delete(key)
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        if state.withLockedValue({ $0.failLists }) {
            throw ObjectStoreError(.unavailable, "LIST \(prefix): 503 (injected)")
        }
        return try await base.list(prefix: prefix)
    }
}
