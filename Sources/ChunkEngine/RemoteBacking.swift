import Logging
import Metadata
import NIOConcurrencyHelpers
import NIOCore
import ObjectStore
import Synchronization

/// How a cached volume uses its object store.
public struct RemoteSettings: Sendable, Equatable {
    /// Chunks uploaded at once per volume while uploads must catch up (past half the upload
    /// buffer, or while someone waits for the uploads); a quarter of them otherwise.
    public var uploadConcurrency: Int
    /// How long a volume must go unchanged before its dirty chunks are uploaded, so that writes in
    /// quick succession cost one upload per chunk; not waited for while uploads must catch up.
    public var uploadDelay: TimeAmount
    /// Dirty data (in whole chunks) past which writes to clean chunks wait for uploads.
    public var dirtyLimit: UInt64
    /// How long such a write waits before it fails with ENOSPC.
    public var backpressureTimeout: TimeAmount
    /// How long a PUT whose outcome was not seen (its answer was lost, or an earlier process
    /// sent it) may still land in the store; its object is deleted only after that.
    public var uploadSettleTime: TimeAmount
    /// Bytes of whole chunks downloaded ahead of a sequential reader at most (0: none).
    public var readAhead: UInt64
    /// How long an upload finished in the background waits for others to share its durability
    /// round: each round syncs the whole cache file, whose writeback would otherwise take the
    /// disk and the processors from the writes (a client's flush, such as a file system's commit
    /// every five seconds, names them sooner).
    public var backgroundRoundDelay: TimeAmount

    public init(
        uploadConcurrency: Int = 16, uploadDelay: TimeAmount = .zero, dirtyLimit: UInt64 = 256 << 20,
        backpressureTimeout: TimeAmount = .seconds(60), uploadSettleTime: TimeAmount = .seconds(120),
        readAhead: UInt64 = 16 << 20, backgroundRoundDelay: TimeAmount = .seconds(5)
    ) {
        self.uploadConcurrency = uploadConcurrency
        self.uploadDelay = uploadDelay
        self.dirtyLimit = dirtyLimit
        self.backpressureTimeout = backpressureTimeout
        self.uploadSettleTime = uploadSettleTime
        self.readAhead = readAhead
        self.backgroundRoundDelay = backgroundRoundDelay
    }
}

/// The object-store side of a cached volume: its store and key prefix, upload generations, the
/// running uploader, and the collector of retired objects. Chunk `i` uploaded as generation `g`
/// is the object `volumes/<uuid>/chunks/<i>-<g>`; generations only grow (each is recorded as
/// begun before its upload), so an upload never overwrites an object a reader may be fetching.
/// An object is deleted only when the database owes it (`MetadataStore.owedObjects`): never on
/// the strength of a listing or of what the database lacks. An owed object whose PUT may still
/// land (one an earlier process began, or whose answer was lost) settles first: it is deleted,
/// and forgotten, only once `uploadSettleTime` has passed, so that no late PUT outlives its
/// delete.
final class RemoteBacking: Sendable {
    let store: any ObjectStore
    /// How chunks are written to and read from their objects.
    let objects: ChunkObjects
    let uuid: String
    let volumeID: Int64
    let metadata: MetadataStore
    let journal: MetadataJournal
    let settings: RemoteSettings
    let group: any EventLoopGroup
    let logger: Logger
    private let generations: NIOLockedValueBox<UInt64>
    /// Generations below it were begun by an earlier process.
    private let firstGeneration: UInt64
    /// When the PUTs of earlier processes have settled.
    private let earlierUploadsSettled: NIODeadline
    let uploader = NIOLockedValueBox<Task<Void, Never>?>(nil)
    let activeUploads = NIOLockedValueBox(0)
    /// Reads served from the cache alone (counted without a lock: every cached read counts).
    let hits = Atomic<UInt64>(0)
    /// Reads that downloaded something.
    let misses = Atomic<UInt64>(0)
    /// Uploads that sent the bytes a write left in memory rather than reading the local file.
    let uploadsFromMemory = Atomic<UInt64>(0)
    /// Writes of whole chunks deferred: left in memory, not written into the local file.
    let deferredWrites = Atomic<UInt64>(0)
    /// Changes written into the local file around the page cache.
    let directWrites = Atomic<UInt64>(0)
    /// Writes held back right now until the upload buffer drains.
    let heldWrites = NIOLockedValueBox(0)
    /// Until when the uploader catches up because someone waits for the uploads.
    let hurriedUntil = NIOLockedValueBox(NIODeadline.uptimeNanoseconds(0))
    /// Whether the uploader catches up because dirty data passed half the upload buffer; it
    /// does until dirty data is back under a quarter of it.
    let catchingUp = NIOLockedValueBox(false)
    /// The durability round due for the uploads finished in the background lately (it runs
    /// `RemoteSettings.backgroundRoundDelay` after the first of them), so that uploads in the
    /// background cost one sync of the cache file every few seconds instead of one each.
    private let backgroundRound = NIOLockedValueBox(BackgroundRound())
    let readAhead = NIOLockedValueBox(ReadAheadState())
    /// Downloads under way (fills, including those whose readers were served and which are still
    /// writing), so that stopping waits for them.
    let fills = NIOLockedValueBox(0)
    private let collection = NIOLockedValueBox(Collection())

    /// Whether the collector runs, whether it must run again, the owed objects it left (due, and
    /// settling until `nextSettled`), commits under way that may owe more, and when the failed
    /// PUTs of this process settle.
    private struct Collection {
        var running = false
        var again = false
        var outstanding = 0
        var settling = 0
        var nextSettled: NIODeadline?
        var committing = 0
        var unsettled: [ObjectID: NIODeadline] = [:]
    }

    /// The background round due, if any, and the id that tells it from a later one.
    private struct BackgroundRound {
        var lastID: UInt64 = 0
        var due: (id: UInt64, round: Scheduled<Void>)?
    }

    /// One generation of one chunk.
    private struct ObjectID: Hashable {
        let index: Int64
        let generation: UInt64
    }

    init(
        store: any ObjectStore, objects: ChunkObjects, uuid: String, volumeID: Int64, metadata: MetadataStore,
        journal: MetadataJournal, settings: RemoteSettings, firstGeneration: UInt64, group: any EventLoopGroup,
        logger: Logger
    ) {
        self.store = store
        self.objects = objects
        self.uuid = uuid
        self.volumeID = volumeID
        self.metadata = metadata
        self.journal = journal
        self.settings = settings
        self.generations = NIOLockedValueBox(firstGeneration)
        self.firstGeneration = firstGeneration
        self.earlierUploadsSettled = .now() + settings.uploadSettleTime
        self.group = group
        self.logger = logger
    }

    /// Has `round` run on `eventLoop` after `backgroundRoundDelay`, unless a background round
    /// is due already (it will name the uploads stored by then too); `neverRan` is told when the
    /// event loop stopped before it ran.
    func scheduleBackgroundRound(
        on eventLoop: any EventLoop, _ round: @escaping @Sendable () -> EventLoopFuture<Void>,
        neverRan: @escaping @Sendable (any Error) -> Void
    ) {
        let scheduled = backgroundRound.withLockedValue { state -> (id: UInt64, round: Scheduled<Void>)? in
            guard state.due == nil else { return nil }
            state.lastID += 1
            let id = state.lastID
            // The task waits out the delay: it cannot run while the lock is held.
            let scheduled = eventLoop.flatScheduleTask(in: settings.backgroundRoundDelay) {
                () -> EventLoopFuture<Void> in
                // Uploads stored from now on are due for the next round.
                self.clearBackgroundRound(id)
                return round()
            }
            state.due = (id, scheduled)
            return state.due
        }
        guard let scheduled else { return }
        scheduled.round.futureResult.whenFailure { error in
            guard let error = error as? EventLoopError, error != .cancelled else { return }
            self.clearBackgroundRound(scheduled.id)
            neverRan(error)
        }
    }

    /// Cancels the background round due, if any: a round running now names what it would have.
    /// Returns whether one was due.
    @discardableResult
    func cancelBackgroundRound() -> Bool {
        let due = backgroundRound.withLockedValue { state in
            defer { state.due = nil }
            return state.due
        }
        due?.round.cancel()
        return due != nil
    }

    private func clearBackgroundRound(_ id: UInt64) {
        backgroundRound.withLockedValue { state in
            if state.due?.id == id { state.due = nil }
        }
    }

    /// Bytes of downloaded blocks kept in memory for readers (`LandedChunks`): twice the
    /// read-ahead window, 4 MiB at least.
    var landedLimit: Int { Int(max(2 * settings.readAhead, 4 << 20)) }

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

    /// Deletes the objects the database owes, in the background, and forgets them once gone.
    /// A pass asked for while one runs is run after it; what fails stays owed for the next pass.
    func collect(volume: String) {
        let start = collection.withLockedValue { collection in
            if collection.running {
                collection.again = true
                return false
            }
            collection.running = true
            return true
        }
        guard start else { return }
        Task {
            repeat {
                await collectOnce(volume: volume)
            } while collection.withLockedValue({ collection in
                defer { collection.again = false }
                if !collection.again { collection.running = false }
                return collection.again
            })
        }
    }

    /// A PUT of this generation failed without a final answer: it may still land until it settles.
    func uploadFailed(index: Int, generation: UInt64) {
        let settled = NIODeadline.now() + settings.uploadSettleTime
        collection.withLockedValue { $0.unsettled[ObjectID(index: Int64(index), generation: generation)] = settled }
    }

    /// When a PUT of the object can no longer land (nil: its PUT was answered, or none was sent).
    private func settled(_ object: ObjectID, unsettled: [ObjectID: NIODeadline]) -> NIODeadline? {
        object.generation < firstGeneration ? earlierUploadsSettled : unsettled[object]
    }

    private func collectOnce(volume: String) async {
        let owed: [(index: Int64, generation: UInt64)]
        do {
            owed = try metadata.owedObjects(volumeID: volumeID)
        } catch {
            logger.warning("volume '\(volume)': cannot read the objects to delete: \(error)")
            return
        }
        let now = NIODeadline.now()
        let (due, settling) = collection.withLockedValue { collection in
            var due: [(index: Int64, generation: UInt64)] = []
            var nextSettled: NIODeadline?
            for object in owed {
                let id = ObjectID(index: object.index, generation: object.generation)
                if let settled = settled(id, unsettled: collection.unsettled), settled > now {
                    nextSettled = min(nextSettled ?? settled, settled)
                } else {
                    due.append(object)
                }
            }
            collection.outstanding = due.count
            collection.settling = owed.count - due.count
            collection.nextSettled = nextSettled
            return (due, owed.count - due.count)
        }
        if settling > 0 {
            logger.debug("volume '\(volume)': \(settling) object(s) wait for their uploads to settle before deletion")
        }
        // As many deletes at once as uploads: a restart can leave thousands due together.
        var forgotten: [ChunkChange] = []
        await withTaskGroup(of: ChunkChange?.self) { group in
            var next = due.makeIterator()
            func startNext() {
                guard let object = next.next() else { return }
                group.addTask { await self.delete(object, volume: volume) }
            }
            for _ in 0..<max(1, settings.uploadConcurrency) { startNext() }
            for await change in group {
                if let change { forgotten.append(change) }
                startNext()
            }
        }
        do {
            if !forgotten.isEmpty { try await journal.submit(forgotten, on: group.next()).get() }
            collection.withLockedValue { collection in
                collection.outstanding = due.count - forgotten.count
                for case .forget(_, let index, let generation) in forgotten {
                    collection.unsettled[ObjectID(index: index, generation: generation)] = nil
                }
            }
        } catch {
            logger.warning("volume '\(volume)': cannot record deleted objects: \(error)")
        }
    }

    /// Deletes one owed object; the change that forgets it, or nil when the delete failed.
    private func delete(_ object: (index: Int64, generation: UInt64), volume: String) async -> ChunkChange? {
        do {
            try await store.delete(try chunkKey(Int(object.index), object.generation))
            return .forget(volumeID: volumeID, index: object.index, generation: object.generation)
        } catch {
            logger.warning(
                "volume '\(volume)': could not delete chunk \(object.index) generation \(object.generation), will retry: \(error)"
            )
            return nil
        }
    }

    /// A commit that may owe objects is under way: until `committed`, deletes count as pending
    /// (so that nobody takes "nothing dirty, nothing to delete" for the end of the work).
    func committing() {
        collection.withLockedValue { $0.committing += 1 }
    }

    /// The commit announced by `committing` is over; collects what it owed.
    func committed(volume: String, owes: Bool) {
        if owes { collect(volume: volume) }
        collection.withLockedValue { $0.committing -= 1 }
    }

    /// Owed objects due for deletion and not yet deleted (at least 1 while a pass or a commit
    /// that may owe runs).
    var outstandingDeletes: Int {
        collection.withLockedValue {
            $0.running || $0.committing > 0 ? max(1, $0.outstanding) : $0.outstanding
        }
    }

    /// Owed objects that wait for their uploads to settle before deletion.
    var settlingDeletes: Int { collection.withLockedValue { $0.settling } }

    /// Whether objects have settled since the last pass (once: a pass finds when the next do).
    func takeSettled() -> Bool {
        collection.withLockedValue { collection in
            guard let settled = collection.nextSettled, settled <= .now() else { return false }
            collection.nextSettled = nil
            return true
        }
    }
}
