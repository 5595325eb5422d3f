import Logging
import NIOConcurrencyHelpers
import NIOCore
import ObjectStore

/// How a cached volume uses its object store.
public struct RemoteSettings: Sendable, Equatable {
    /// Chunks uploaded at once per volume.
    public var uploadConcurrency: Int
    /// Dirty data (in whole chunks) past which writes to clean chunks wait for uploads.
    public var dirtyLimit: UInt64
    /// How long such a write waits before it fails with ENOSPC.
    public var backpressureTimeout: TimeAmount

    public init(
        uploadConcurrency: Int = 4, dirtyLimit: UInt64 = 256 << 20, backpressureTimeout: TimeAmount = .seconds(60)
    ) {
        self.uploadConcurrency = uploadConcurrency
        self.dirtyLimit = dirtyLimit
        self.backpressureTimeout = backpressureTimeout
    }
}

/// The object-store side of a cached volume: its store and key prefix, upload generations, and
/// the running uploader. Chunk `i` uploaded as generation `g` is the object
/// `volumes/<uuid>/chunks/<i>-<g>`; generations only grow, so an upload never overwrites an
/// object a reader may be fetching.
final class RemoteBacking: Sendable {
    let store: any ObjectStore
    let uuid: String
    let settings: RemoteSettings
    let group: any EventLoopGroup
    let logger: Logger
    private let generations: NIOLockedValueBox<UInt64>
    let uploader = NIOLockedValueBox<Task<Void, Never>?>(nil)
    let activeUploads = NIOLockedValueBox(0)
    /// Reads served from the cache alone, and reads that downloaded something.
    let counts = NIOLockedValueBox((hits: UInt64(0), misses: UInt64(0)))
    /// Writes held back right now until the upload buffer drains.
    let heldWrites = NIOLockedValueBox(0)
    /// Object deletes not yet done, and those of them that failed and wait for a retry.
    private let deletions = NIOLockedValueBox((outstanding: 0, failed: [(index: Int, generation: UInt64)]()))

    init(
        store: any ObjectStore, uuid: String, settings: RemoteSettings, firstGeneration: UInt64,
        group: any EventLoopGroup, logger: Logger
    ) {
        self.store = store
        self.uuid = uuid
        self.settings = settings
        self.generations = NIOLockedValueBox(firstGeneration)
        self.group = group
        self.logger = logger
    }

    /// The prefix of the volume's chunk objects.
    static func chunkPrefix(uuid: String) -> String { Volume.objectPrefix(uuid: uuid) + "chunks/" }

    /// The object of a chunk generation.
    func chunkKey(_ index: Int, _ generation: UInt64) throws -> ObjectKey {
        try ObjectKey("\(Self.chunkPrefix(uuid: uuid))\(index)-\(generation)")
    }

    /// Parses a chunk object's key back into index and generation.
    static func parseChunkKey(_ key: String, uuid: String) -> (index: Int, generation: UInt64)? {
        guard key.hasPrefix(chunkPrefix(uuid: uuid)) else { return nil }
        let name = key.dropFirst(chunkPrefix(uuid: uuid).count).split(separator: "-")
        guard name.count == 2, let index = Int(name[0]), let generation = UInt64(name[1]) else { return nil }
        return (index, generation)
    }

    /// A generation no object of this volume has used.
    func nextGeneration() -> UInt64 {
        generations.withLockedValue { next in
            defer { next += 1 }
            return next
        }
    }

    /// Deletes objects no record names any more, in the background. A failed delete is kept and
    /// tried again by `retryFailedDeletes` (generations are never reused, so a late delete is
    /// safe); what a stop leaves behind, the next start's sweep removes.
    func deleteObjects(_ objects: [(index: Int, generation: UInt64)], volume: String) {
        guard !objects.isEmpty else { return }
        deletions.withLockedValue { $0.outstanding += objects.count }
        Task {
            for object in objects {
                do {
                    try await store.delete(try chunkKey(object.index, object.generation))
                    deletions.withLockedValue { $0.outstanding -= 1 }
                } catch {
                    logger.warning(
                        "volume '\(volume)': could not delete chunk \(object.index) generation \(object.generation), will retry: \(error)"
                    )
                    deletions.withLockedValue { $0.failed.append(object) }
                }
            }
        }
    }

    /// Starts again the deletes that failed.
    func retryFailedDeletes(volume: String) {
        let failed = deletions.withLockedValue { state in
            defer { state.failed = [] }
            state.outstanding -= state.failed.count
            return state.failed
        }
        deleteObjects(failed, volume: volume)
    }

    /// Deletes started or failed and not yet done.
    var outstandingDeletes: Int { deletions.withLockedValue { $0.outstanding } }
}
