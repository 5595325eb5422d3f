import NIOCore

/// What the engine knows of one allocated chunk: its valid bitmap, whether the metadata
/// database has been told it may change, and who is operating on it; for cached volumes also
/// which blocks are in the local cache and which uploaded object holds it.
struct ChunkState {
    /// Where the chunk stands with the metadata journal.
    enum Journal {
        /// The database's record matches this state; a change must first be recorded as dirty.
        case clean
        /// A durability round's commit records the chunk as clean. Until it lands the chunk is
        /// neither evicted nor uploaded, and a change marks it dirty as if it were clean (the mark
        /// is queued after that commit). A failed commit leaves it dirty.
        case cleaning
        /// The dirty mark is being committed; these operations wait for it. If it fails, the chunk
        /// is clean again, unless `recordIsDirty` (the commit that would have recorded it clean
        /// failed meanwhile, so the database still holds an earlier dirty mark).
        case marking([EventLoopPromise<Void>], recordIsDirty: Bool)
        /// The database knows the chunk may differ from its record.
        case dirty
    }

    var valid: BlockBitmap
    /// Valid blocks some of whose 512-byte sectors have been trimmed: block → sector mask.
    var partialTrims: [Int: UInt8] = [:]
    var journal: Journal
    var gate = ChunkGate()
    /// Renewed (from a table-wide counter) when an operation that changed data is done; a flush
    /// or an upload compares it to see whether the chunk changed after it looked.
    var generation: UInt64 = 0
    /// The generation whose state the chunk's record holds (queued in a round's commit): a round
    /// need not write the record again until the chunk changes.
    var recordedGeneration: UInt64 = 0
    /// Cached volumes: valid blocks whose current data is in the local file.
    var present: BlockBitmap
    /// Cached volumes: the uploaded generation that holds the chunk (0: never uploaded).
    var remoteGeneration: UInt64 = 0
    /// Cached volumes: an upload of the chunk is under way.
    var uploading = false
    /// Cached volumes: the object generation that the commit marking the chunk dirty also
    /// recorded as begun (0: none), for the chunk's next upload to take: that upload then needs
    /// no commit of its own before its PUT, which a large sync of the volume file would hold up.
    var begunUpload: UInt64 = 0
    /// The database holds no record of the chunk, nor will once the rounds under way commit:
    /// an operation that found it absent made it (a read of a hole), and no change has marked
    /// it dirty since. Forgetting it then leaves no record to delete.
    var unrecorded = false
    /// Cached volumes: a download into the chunk is under way; these wait for it.
    var fillWaiters: [EventLoopPromise<Void>]?
    /// When the chunk was last used (uptime nanoseconds), for LRU eviction.
    var lastUse: UInt64 = 0
    /// Cached volumes: when the oldest change that no upload has taken was begun (uptime
    /// nanoseconds), so that a chunk of a volume that never rests is still uploaded in time; 0:
    /// none, or none since the volume was opened or since the last snapshot (a dirty chunk then
    /// holds a change that a restart found or that an upload took without making it clean).
    var pendingSince: UInt64 = 0
    /// Cached volumes: when an upload last took a snapshot of the chunk (uptime nanoseconds; 0:
    /// none since the volume was opened or the chunk left the cache), so that in the background
    /// a chunk written again and again is uploaded once per `Volume.maximumUploadDelays` upload
    /// delays, not each time it pauses.
    var lastSnapshot: UInt64 = 0

    init(valid: BlockBitmap, journal: Journal, present: BlockBitmap? = nil, remoteGeneration: UInt64 = 0) {
        self.valid = valid
        self.journal = journal
        self.present = present ?? BlockBitmap(count: valid.count)
        self.remoteGeneration = remoteGeneration
    }

    /// Nobody uses the chunk and its record holds it: it can be kept small (see `ChunkMap`).
    var isAtRest: Bool {
        guard case .clean = journal, !unrecorded else { return false }
        return gate.isIdle && !uploading && fillWaiters == nil && partialTrims.isEmpty
    }
}

/// Orders operations on one chunk: writes share it, while a TRIM or WRITE_ZEROES (which change
/// the bitmap and punch holes) has it alone, so that the bitmap always agrees with the file.
/// Waiters are served first come, first served. An idle gate holds no heap storage.
struct ChunkGate {
    private var writers = 0
    private var exclusive = false
    /// The one shared holder has had the gate to itself since it took it: set when a shared
    /// holder takes it with no other holder, cleared when a second one joins.
    private var alone = false
    /// Few wait at once; an empty array allocates nothing.
    private var waiting: [(exclusive: Bool, promise: EventLoopPromise<Void>)] = []

    /// Nobody holds or waits for the gate.
    var isIdle: Bool { writers == 0 && !exclusive && waiting.isEmpty }

    /// Whether the gate's one shared holder has held it alone from the moment it took it: no
    /// other operation on the chunk overlapped its own.
    var isHeldAlone: Bool { writers == 1 && alone }

    /// Someone holds the gate.
    var isHeld: Bool { writers > 0 || exclusive }

    /// Takes the gate at once if possible.
    mutating func tryAcquire(exclusive wantsExclusive: Bool) -> Bool {
        guard waiting.isEmpty, !exclusive else { return false }
        if wantsExclusive {
            guard writers == 0 else { return false }
            exclusive = true
        } else {
            writers += 1
            alone = writers == 1
        }
        return true
    }

    /// Queues for the gate; the promise succeeds once it is held.
    mutating func wait(exclusive: Bool, promise: EventLoopPromise<Void>) {
        waiting.append((exclusive, promise))
    }

    /// Gives the gate back; returns the waiters that now hold it (to be succeeded outside locks).
    mutating func release(exclusive wasExclusive: Bool) -> [EventLoopPromise<Void>] {
        if wasExclusive { exclusive = false } else { writers -= 1 }
        var granted: [EventLoopPromise<Void>] = []
        while let next = waiting.first {
            if next.exclusive {
                guard writers == 0, !exclusive else { break }
                exclusive = true
            } else {
                guard !exclusive else { break }
                writers += 1
                alone = writers == 1
            }
            waiting.removeFirst()
            granted.append(next.promise)
        }
        return granted
    }
}
