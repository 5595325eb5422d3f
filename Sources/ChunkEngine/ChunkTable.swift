import Metadata
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The chunk map of one volume behind a lock: bitmaps, per-chunk gates, the journal state of
/// each chunk, and what the next flush must commit. Its storage is touched only under `lock`
/// (also by the extensions in ChunkTable+Flush.swift and ChunkTable+Cache.swift).
///
/// Every operation that changes data runs as: take the gates of its chunks (ascending order, so
/// operations spanning chunks cannot deadlock), make sure the database knows those chunks are
/// dirty (group-committed), do the I/O, update the bitmaps, release the gates.
final class ChunkTable: @unchecked Sendable {
    let volumeID: Int64
    let geometry: ChunkGeometry
    /// Chunks also live in an object store (a cached volume): a block can be valid without being
    /// in the local file, and only an upload makes a chunk clean.
    let cached: Bool
    let journal: MetadataJournal
    /// Cached volumes with an object store: where the generations that dirty marks begin come
    /// from (`ChunkState.begunUpload`).
    let uploadGenerations: (@Sendable () -> UInt64)?
    let lock = NIOLock()
    var chunks: ChunkMap
    /// Chunks whose journal state is not clean: what a flush and the uploader look at.
    var dirtyChunks: Set<Int> = []
    /// Chunks dropped from the map whose database rows the next flush deletes.
    var deletedChunks: Set<Int> = []
    /// Uploaded objects of dropped chunks: retired (owed for deletion) by the round whose commit
    /// stops their chunk's record naming them.
    var orphans: [(index: Int, generation: UInt64)] = []
    /// Uploads in the store that the next round names in their chunks' records.
    var storedUploads: [Int: StoredUpload] = [:]
    /// Cached volumes: chunks whose record a naming round wrote (no block present, `unsynced`)
    /// while the local file holds their blocks; the next round that syncs the file records those
    /// blocks as present again (`flushSnapshot`), unless an eviction took them first.
    var unsyncedPresent: Set<Int> = []
    /// Source of chunk generations; never repeats, so a re-created chunk never looks untouched.
    var nextGeneration: UInt64 = 1
    /// Cached volumes: downloaded blocks kept for the reads that want them.
    var landed = LandedChunks()
    /// Cached volumes: whole chunks just written, kept for their uploads or deferred.
    var written = WrittenChunks()
    /// Cached volumes: a durability round is writing deferred chunks into the file before it
    /// captures its records: no write is deferred meanwhile (`pauseDeferring`).
    var deferringPaused = false
    /// Cached volumes: writes on their way to be deferred (`mayDefer` let them), by chunk, so that
    /// the pieces that follow the one beginning a chunk take the same way, in the order sent.
    var deferralsUnderWay: [Int: Int] = [:]
    /// Cached volumes: evictions begun so far; a read of the cache that holds no gate compares
    /// it before and after (see `cachedRead`). Raised under `lock` before the eviction punches
    /// the file; read without it (`evicted(since:)`): a read whose bytes a punch reached
    /// completed after the punch, so its reader then loads the raised count.
    let evictionsBegun = Atomic<UInt64>(0)
    /// Cached volumes: chunks that replies being sent read straight from the local file, with
    /// how many such replies each has (`pinForRegion`): none of them is evicted meanwhile.
    var regionPins: [Int: Int] = [:]
    /// When an operation that changes the volume's data last began or ended (uptime
    /// nanoseconds), and how many are under way: in the background the uploader waits for the
    /// whole volume to rest, not only a chunk.
    var volumeLastChange: UInt64 = 0
    var changesUnderWay = 0

    init(
        volumeID: Int64, geometry: ChunkGeometry, journal: MetadataJournal, cached: Bool,
        uploadGenerations: (@Sendable () -> UInt64)? = nil, chunks: ChunkMap
    ) {
        self.volumeID = volumeID
        self.geometry = geometry
        self.journal = journal
        self.cached = cached
        self.uploadGenerations = uploadGenerations
        self.chunks = chunks
        chunks.forEachActive { index, state in
            if case .dirty = state.journal { dirtyChunks.insert(index) }
        }
    }

    // MARK: - Reading the map

    /// Where the bytes of a run are.
    enum Placement: Equatable {
        /// Invalid: reads as zeros without touching anything.
        case hole
        /// In the local file.
        case local
        /// Only in the object store (cached volumes).
        case remote
    }

    /// Runs of a byte range by placement, adjacent equal runs merged.
    func runs(offset: UInt64, length: UInt64) -> [(range: Range<UInt64>, placement: Placement)] {
        lock.withLock { runsLocked(offset: offset, length: length, localOnly: false)! }
    }

    /// Whether the local file holds every block of a range: each is cached or written here,
    /// none is only in the object store or a hole.
    func isLocal(offset: UInt64, length: UInt64) -> Bool {
        lock.withLock { isLocalLocked(offset: offset, length: length) }
    }

    /// `isLocal`; call with `lock` held.
    func isLocalLocked(offset: UInt64, length: UInt64) -> Bool {
        runsLocked(offset: offset, length: length, localOnly: true)?.allSatisfy { $0.placement == .local } ?? false
    }

    /// `runs`; call with `lock` held. With `localOnly`, nil when a run is only in the object store.
    func runsLocked(offset: UInt64, length: UInt64, localOnly: Bool) -> [(range: Range<UInt64>, placement: Placement)]?
    {
        if let local = wholeLocalLocked(offset: offset, length: length) { return [(local, .local)] }
        var runs: [(range: Range<UInt64>, placement: Placement)] = []
        var remote = false
        forEachRun(offset: offset, length: length) { range, placement in
            guard !localOnly || placement != .remote else {
                remote = true
                return false
            }
            if let last = runs.last, last.placement == placement, last.range.upperBound == range.lowerBound {
                runs[runs.count - 1].range = last.range.lowerBound..<range.upperBound
            } else {
                runs.append((range, placement))
            }
            return true
        }
        return remote ? nil : runs
    }

    /// The range itself when it lies in one chunk and all of it is in the local file: the common
    /// read, answered without walking runs; nil otherwise (the caller walks them).
    private func wholeLocalLocked(offset: UInt64, length: UInt64) -> Range<UInt64>? {
        let end = offset + length
        let index = Int(offset / UInt64(geometry.chunkSize))
        let start = geometry.chunkStart(index)
        guard length > 0, end <= geometry.volumeSize, end - start <= UInt64(geometry.chunkSize),
            chunks.holdsLocally(index, blocks: ChunkGeometry.blocksTouching(Int(offset - start)..<Int(end - start)))
        else { return nil }
        return offset..<end
    }

    /// Allocation extents from `offset`, at most `maximumExtents` of them.
    func extents(offset: UInt64, length: UInt64, maximumExtents: Int) -> [(length: UInt64, allocated: Bool)] {
        lock.withLock {
            var extents: [(length: UInt64, allocated: Bool)] = []
            forEachRun(offset: offset, length: length) { range, placement in
                let runLength = range.upperBound - range.lowerBound
                let allocated = placement != .hole
                if let last = extents.last, last.allocated == allocated {
                    extents[extents.count - 1].length += runLength
                } else {
                    guard extents.count < maximumExtents else { return false }
                    extents.append((runLength, allocated))
                }
                return true
            }
            return extents
        }
    }

    /// Calls `body` with consecutive runs covering the range; stops when it returns false. Costs
    /// the number of chunks in the range or in the map, whichever is smaller: when the range spans
    /// more chunks than the map holds, gaps between allocated chunks are skipped in one step.
    private func forEachRun(offset: UInt64, length: UInt64, _ body: (Range<UInt64>, Placement) -> Bool) {
        let end = min(offset + length, geometry.volumeSize)
        guard offset < end else { return }
        let chunkSize = UInt64(geometry.chunkSize)
        let spanned = Int((end - 1) / chunkSize - offset / chunkSize) + 1
        let allocated: [Int]? =
            spanned > chunks.count
            ? chunks.indexes { UInt64($0) >= offset / chunkSize && UInt64($0) <= (end - 1) / chunkSize }.sorted()
            : nil
        var cursor = 0
        var position = offset
        let blockSize = UInt64(ChunkGeometry.blockSize)
        while position < end {
            let index = Int(position / chunkSize)
            let chunkStart = geometry.chunkStart(index)
            let chunkEnd = min(chunkStart + chunkSize, end)
            guard let state = chunks[index], !state.valid.isEmpty else {
                var gapEnd = chunkEnd
                if let allocated {
                    while cursor < allocated.count, allocated[cursor] <= index { cursor += 1 }
                    gapEnd = cursor < allocated.count ? min(geometry.chunkStart(allocated[cursor]), end) : end
                }
                guard body(position..<gapEnd, .hole) else { return }
                position = gapEnd
                continue
            }
            let firstBlock = Int((position - chunkStart) / blockSize)
            let lastBlock = Int((chunkEnd - chunkStart + blockSize - 1) / blockSize)
            for (blocks, isValid) in state.valid.runs(in: firstBlock..<lastBlock) {
                let pieces: [(Range<Int>, Placement)] =
                    !isValid
                    ? [(blocks, .hole)]
                    : (!cached || state.remoteGeneration == 0)
                        ? [(blocks, .local)]
                        : state.present.runs(in: blocks).map { ($0.0, $0.1 ? .local : .remote) }
                for (piece, placement) in pieces {
                    let lower = max(chunkStart + UInt64(piece.lowerBound) * blockSize, position)
                    let upper = min(chunkStart + UInt64(piece.upperBound) * blockSize, chunkEnd)
                    guard body(lower..<upper, placement) else { return }
                }
            }
            position = chunkEnd
        }
    }

    /// Indexes of chunks in the map within `range`, ascending; costs the number of chunks in the
    /// map or in the range, whichever is smaller.
    func allocatedChunks(in range: Range<Int>) -> [Int] {
        lock.withLock {
            if range.count <= chunks.count {
                return range.filter { chunks[$0] != nil }
            }
            return chunks.indexes { range.contains($0) }.sorted()
        }
    }

    /// The bitmap of a chunk (empty if absent).
    func bitmap(ofChunk index: Int) -> BlockBitmap {
        lock.withLock { chunks[index]?.valid ?? BlockBitmap(count: geometry.blocks(inChunk: index)) }
    }

    /// What trimming a chunk-relative byte range would do to a chunk now.
    func trimPlan(ofChunk index: Int, bytes: Range<Int>) -> TrimPlan {
        lock.withLock {
            guard let state = chunks[index] else {
                return TrimPlan(
                    valid: BlockBitmap(count: geometry.blocks(inChunk: index)), partialTrims: [:], bytes: bytes)
            }
            return TrimPlan(valid: state.valid, partialTrims: state.partialTrims, bytes: bytes)
        }
    }

    /// Counts for `volume info`: chunks holding data and the bytes of their valid blocks.
    func usage() -> (chunks: Int, bytes: UInt64) {
        lock.withLock {
            (chunks.totals.chunksWithData, UInt64(chunks.totals.validBlocks) * UInt64(ChunkGeometry.blockSize))
        }
    }

    // MARK: - Gates

    /// Runs `body` with the chunks held; on success `update` edits their states; the gates are
    /// released either way.
    /// - Parameters:
    ///   - indexes: the chunks, ascending.
    ///   - exclusive: take the gates alone (TRIM, zeroing, filling from the object store) rather
    ///     than shared (reads, writes).
    ///   - changing: the operation changes data: the chunks are created if absent, are marked
    ///     dirty in the database before `body` runs, and get a new generation when it is done.
    ///   - keeping: the bytes a change writes over a whole chunk, kept for its upload when it
    ///     succeeds having held the chunk alone.
    func with<Value: Sendable>(
        _ indexes: [Int], exclusive: Bool, changing: Bool = true, keeping: KeptWrite? = nil,
        on eventLoop: any EventLoop, _ body: @escaping @Sendable () -> EventLoopFuture<Value>,
        update: @escaping @Sendable (Int, inout ChunkState) -> Void = { _, _ in }
    ) -> EventLoopFuture<Value> {
        let began = changing ? NIODeadline.now().uptimeNanoseconds : 0
        return acquire(indexes, from: 0, exclusive: exclusive, changeBegan: changing ? began : nil, on: eventLoop)
            .flatMap {
                changing
                    ? self.markDirty(indexes, began: began, beginUploads: !exclusive, on: eventLoop)
                    : eventLoop.makeSucceededVoidFuture()
            }
            .flatMap { body() }
            .always { result in
                let now = NIODeadline.now().uptimeNanoseconds
                let granted = self.lock.withLock {
                    var granted: [EventLoopPromise<Void>] = []
                    if changing {
                        self.changesUnderWay -= 1
                        self.volumeLastChange = now
                    }
                    for index in indexes {
                        // Renewed when the change is done, so that a snapshot taken while it
                        // waited for the gate does not count it as included.
                        let generation = self.nextGeneration
                        if changing {
                            self.nextGeneration += 1
                            // Bytes kept for readers or uploads are stale once the data changed
                            // (a deferred chunk's data stays: no change runs on it but a write
                            // that defers it anew).
                            self.landed.drop(index)
                            self.written.dropKept(index)
                        }
                        var alone = false
                        let released = self.chunks.update(index) { state in
                            if case .success = result { update(index, &state) }
                            // Its pending time is the one `markDirty` set: when the change began.
                            if changing { state.generation = generation }
                            state.lastUse = now
                            alone = !exclusive && state.gate.isHeldAlone
                            return state.gate.release(exclusive: exclusive)
                        }
                        if case .success = result, changing, alone, let keeping, keeping.chunk == index {
                            self.written.keep(
                                keeping.data, generation: generation, forChunk: index, limit: keeping.limit)
                        }
                        guard let released else { continue }
                        granted += released
                        self.dropIfEmpty(index)
                    }
                    return granted
                }
                for promise in granted { promise.succeed(()) }
            }
    }

    /// Takes the gates of `indexes[position...]` in order, creating chunk states as needed. A
    /// change that began at `changeBegan` counts as under way from the first lock on.
    private func acquire(
        _ indexes: [Int], from position: Int, exclusive: Bool, changeBegan: UInt64? = nil, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        let blocked: (Int, EventLoopFuture<Void>)? = lock.withLock {
            if let changeBegan {
                changesUnderWay += 1
                volumeLastChange = changeBegan
            }
            for current in position..<indexes.count {
                let index = indexes[current]
                if !chunks.contains(index) {
                    var state = ChunkState(valid: BlockBitmap(count: geometry.blocks(inChunk: index)), journal: .clean)
                    // A chunk forgotten since the last round may still have a record to delete.
                    state.unrecorded = deletedChunks.remove(index) == nil
                    chunks[index] = state
                }
                let waiting = chunks.update(index) { state -> EventLoopPromise<Void>? in
                    guard !state.gate.tryAcquire(exclusive: exclusive) else { return nil }
                    let promise = eventLoop.makePromise(of: Void.self)
                    state.gate.wait(exclusive: exclusive, promise: promise)
                    return promise
                }
                if let promise = waiting ?? nil { return (current, promise.futureResult) }
            }
            return nil
        }
        guard let (current, granted) = blocked else { return eventLoop.makeSucceededVoidFuture() }
        return granted.flatMap {
            self.acquire(indexes, from: current + 1, exclusive: exclusive, on: eventLoop)
        }
    }

    /// Makes sure the database records the chunks as dirty before their data changes; the
    /// change `began` then (uptime nanoseconds), and each chunk holds it from then on. On a
    /// cached volume, with `beginUploads`, the same commit begins a generation for each chunk's
    /// next upload (not for TRIM and zeroing, which often empty a chunk: no upload would take it,
    /// and its delete would be a request for nothing).
    private func markDirty(_ indexes: [Int], began: UInt64, beginUploads: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        var waits: [EventLoopFuture<Void>] = []
        let toMark: [Int] = lock.withLock {
            var toMark: [Int] = []
            for index in indexes {
                if chunks[index]!.pendingSince == 0 { chunks[index]!.pendingSince = began }
                switch chunks[index]!.journal {
                case .dirty: break
                case .marking(var waiters, let recordIsDirty):
                    let promise = eventLoop.makePromise(of: Void.self)
                    waiters.append(promise)
                    chunks[index]!.journal = .marking(waiters, recordIsDirty: recordIsDirty)
                    waits.append(promise.futureResult)
                case .clean, .cleaning:
                    chunks[index]!.journal = .marking([], recordIsDirty: false)
                    chunks[index]!.unrecorded = false
                    dirtyChunks.insert(index)
                    toMark.append(index)
                }
            }
            return toMark
        }
        if !toMark.isEmpty {
            let generations = beginUploads ? uploadGenerations : nil
            let begun = toMark.map { _ in generations?() ?? 0 }
            var changes: [ChunkChange] = []
            for (index, generation) in zip(toMark, begun) {
                changes.append(.markDirty(volumeID: volumeID, index: Int64(index)))
                if generation > 0 {
                    changes.append(.beginUpload(volumeID: volumeID, index: Int64(index), generation: generation))
                }
            }
            let committed = journal.submit(changes, on: eventLoop)
            committed.whenComplete { result in
                let waiters = self.lock.withLock {
                    var waiters: [EventLoopPromise<Void>] = []
                    for (index, generation) in zip(toMark, begun) {
                        guard case .marking(let waiting, let recordIsDirty) = self.chunks[index]?.journal else {
                            continue
                        }
                        waiters += waiting
                        if (try? result.get()) != nil {
                            self.chunks[index]!.journal = .dirty
                            self.chunks[index]!.begunUpload = generation
                        } else if recordIsDirty {
                            self.chunks[index]!.journal = .dirty
                        } else {
                            self.chunks[index]!.journal = .clean
                            self.chunks[index]!.pendingSince = 0
                            self.dirtyChunks.remove(index)
                            // Clean again, the chunk is as its record and object hold it (its
                            // change never ran): a deferred copy of it is not needed.
                            self.written.dropDeferred(index)
                        }
                    }
                    return waiters
                }
                for waiter in waiters { waiter.completeWith(result) }
            }
            waits.append(committed)
        }
        switch waits.count {
        case 0: return eventLoop.makeSucceededVoidFuture()
        case 1: return waits[0]
        default: return EventLoopFuture.andAllSucceed(waits, on: eventLoop)
        }
    }

    /// What a write of a whole chunk leaves for its upload (`WrittenChunks`): the chunk, its
    /// bytes, and the most bytes the table keeps so.
    struct KeptWrite: Sendable {
        let chunk: Int
        let data: ByteBuffer
        let limit: Int
    }

    /// The most bytes of whole-chunk writes a volume keeps for their uploads, and as many that it
    /// defers: as many as its upload slots take and as many again, within 64 MiB (two chunks at
    /// least).
    static func keptLimit(chunkSize: Int, uploadConcurrency: Int) -> Int {
        max(2 * chunkSize, min(2 * uploadConcurrency * chunkSize, 64 << 20))
    }

    /// Forgets a chunk that holds no valid block and that nobody is using; the next round deletes
    /// its record, if it has one. Lock held.
    func dropIfEmpty(_ index: Int) {
        guard let state = chunks[index], state.valid.isEmpty, state.gate.isIdle, !state.uploading,
            state.fillWaiters == nil
        else { return }
        if case .marking = state.journal { return }
        chunks[index] = nil
        landed.drop(index)
        written.dropKept(index)
        dirtyChunks.remove(index)
        unsyncedPresent.remove(index)
        if !state.unrecorded { deletedChunks.insert(index) }
        if state.remoteGeneration > 0 { orphans.append((index, state.remoteGeneration)) }
    }
}
