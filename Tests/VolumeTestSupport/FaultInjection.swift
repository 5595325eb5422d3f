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
public final class FlakyObjectStore: ObjectStore, @unchecked Sendable {
    public let base: any ObjectStore
    private let state = NIOLockedValueBox((failLists: false, failPutsAfterStoring: false, storedThenFailed: 0))

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

    public func put(_ key: ObjectKey, data: ByteBuffer) async throws {
        try await base.put(key, data: data)
        let fail = state.withLockedValue { state in
            if state.failPutsAfterStoring { state.storedThenFailed += 1 }
            return state.failPutsAfterStoring
        }
        if fail { throw ObjectStoreError(.unavailable, "PUT \(key): the connection dropped (injected)") }
    }

    public func get(_ key: ObjectKey, range: Range<UInt64>?) async throws -> ByteBuffer {
        try await base.get(key, range: range)
    }

    public func head(_ key: ObjectKey) async throws -> ObjectInfo? { try await base.head(key) }

    public func delete(_ key: ObjectKey) async throws { try await base.delete(key) }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        if state.withLockedValue({ $0.failLists }) {
            throw ObjectStoreError(.unavailable, "LIST \(prefix): 503 (injected)")
        }
        return try await base.list(prefix: prefix)
    }
}
