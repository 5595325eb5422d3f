import Metadata
import NIOCore

/// The chunk map's side of a cached volume: which blocks must be downloaded, who downloads them,
/// which chunks to upload, and which to evict.
extension ChunkTable {
    // MARK: - Filling from the object store

    /// The valid blocks of `blocks` that are only in the object store, as runs, with the
    /// generation holding them; nil when none are missing (a deferred chunk misses none: its
    /// data is in memory, and the store holds an older one).
    func missingBlocks(ofChunk index: Int, in blocks: Range<Int>) -> (generation: UInt64, runs: [Range<Int>])? {
        lock.withLock {
            guard let state = chunks[index], state.remoteGeneration > 0, !written.isDeferred(index) else { return nil }
            var runs: [Range<Int>] = []
            for (run, isValid) in state.valid.runs(in: blocks) where isValid {
                runs += state.present.runs(in: run).filter { !$0.1 }.map(\.0)
            }
            return runs.isEmpty ? nil : (state.remoteGeneration, runs)
        }
    }

    /// The uploaded generation that holds a chunk, nil when none does.
    func remoteGeneration(ofChunk index: Int) -> UInt64? {
        lock.withLock { chunks[index].flatMap { $0.remoteGeneration > 0 ? $0.remoteGeneration : nil } }
    }

    /// Claims the right to fill a chunk. Returns nil when the caller may fill now (and must call
    /// `endFill`), or a future to wait on while another fill runs (then look again).
    func beginFill(ofChunk index: Int, on eventLoop: any EventLoop) -> EventLoopFuture<Void>? {
        lock.withLock {
            guard chunks[index] != nil else { return nil }
            guard var waiters = chunks[index]!.fillWaiters else {
                chunks[index]!.fillWaiters = []
                return nil
            }
            let promise = eventLoop.makePromise(of: Void.self)
            waiters.append(promise)
            chunks[index]!.fillWaiters = waiters
            return promise.futureResult
        }
    }

    /// Ends a fill and wakes whoever waited for it.
    func endFill(ofChunk index: Int) {
        let waiters = lock.withLock { () -> [EventLoopPromise<Void>] in
            guard chunks[index] != nil else { return [] }
            defer { chunks[index]!.fillWaiters = nil }
            return chunks[index]!.fillWaiters ?? []
        }
        for waiter in waiters { waiter.succeed(()) }
    }

    // MARK: - Uploading

    /// Whether changing these chunks keeps dirty data within `limit`: true when they are dirty
    /// already, or when the dirty chunks stay under it.
    func canDirty(_ indexes: [Int], limit: UInt64) -> Bool {
        lock.withLock {
            indexes.allSatisfy { dirtyChunks.contains($0) }
                || UInt64(dirtyChunks.count) * UInt64(geometry.chunkSize) < limit
        }
    }

    /// Which dirty chunks are due for upload (uptime nanoseconds): every one once the volume has
    /// `rested`, and otherwise those holding a change no upload took that was done by
    /// `pendingBy` (or none since the volume was opened or an upload that did not make the chunk
    /// clean); but not those an upload took a snapshot of after `pendingBy`.
    struct UploadDue {
        var rested: Bool
        var pendingBy: UInt64
        /// Chunks waiting since then (`rank`) go before any other.
        var overdueBy: UInt64 = 0
        /// Every dirty chunk, however recently changed or uploaded.
        static let all = UploadDue(rested: true, pendingBy: .max)

        func includes(_ state: ChunkState) -> Bool {
            state.lastSnapshot <= pendingBy && (rested || state.pendingSince <= pendingBy)
        }

        /// Where a due chunk goes in the uploads' order: overdue first (a change waiting since
        /// `overdueBy`, or, with none since the volume was opened or an upload that did not make
        /// the chunk clean, a snapshot that old), then those whose bytes a write left in memory
        /// (their uploads read no file, and the memory goes with them), then the rest.
        func rank(_ state: ChunkState, written: Bool) -> Int {
            let waitingSince = state.pendingSince != 0 ? state.pendingSince : state.lastSnapshot
            if waitingSince <= overdueBy { return 0 }
            return written ? 1 : 2
        }
    }

    /// Dirty chunks that no upload handles yet and that are `due` (or deferred and written whole,
    /// whose memory goes with their upload; one still being gathered waits for its pieces), in
    /// `UploadDue.rank` order and oldest-touched first within it, at most `limit`.
    func uploadCandidates(limit: Int, due: UploadDue = .all) -> [Int] {
        lock.withLock {
            typealias Candidate = (index: Int, rank: Int, lastUse: UInt64)
            let candidates = dirtyChunks.compactMap { index -> Candidate? in
                guard let state = chunks[index], case .dirty = state.journal, !state.uploading,
                    due.includes(state) || (written.isDeferred(index) && state.valid.isFull)
                else { return nil }
                return (index, due.rank(state, written: written.holds(index)), state.lastUse)
            }
            let before = { (a: Candidate, b: Candidate) in (a.rank, a.lastUse) < (b.rank, b.lastUse) }
            // A slot that finished asks for one: the first, without sorting them all.
            guard limit != 1 else { return candidates.min(by: before).map { [$0.index] } ?? [] }
            return candidates.sorted(by: before).prefix(limit).map(\.index)
        }
    }

    /// Whether no operation that changes the volume's data is under way, and none has begun or
    /// ended after `time` (uptime nanoseconds).
    func hasRested(since time: UInt64) -> Bool {
        lock.withLock { changesUnderWay == 0 && volumeLastChange <= time }
    }

    /// Marks a chunk as being uploaded; false when it is gone, clean, or already uploading.
    func beginUpload(_ index: Int) -> Bool {
        lock.withLock {
            guard let state = chunks[index], case .dirty = state.journal, !state.uploading else { return false }
            chunks[index]!.uploading = true
            return true
        }
    }

    /// Takes the upload generation the chunk's dirty mark began (`ChunkState.begunUpload`), if
    /// it holds one: the upload about to store the chunk uses it, and no other will.
    func takeBegunUpload(ofChunk index: Int) -> UInt64? {
        lock.withLock {
            guard let begun = chunks[index]?.begunUpload, begun > 0 else { return nil }
            chunks[index]!.begunUpload = 0
            return begun
        }
    }

    /// The generation of a chunk's data now (read under its exclusive gate, it names the snapshot).
    func generation(ofChunk index: Int) -> UInt64? {
        lock.withLock { chunks[index]?.generation }
    }

    /// Whether an upload of some chunk is under way (once the uploader has stopped: stored, and
    /// waiting for the round that names it).
    var hasUploadsUnderWay: Bool {
        lock.withLock { dirtyChunks.contains { chunks[$0]?.uploading == true } }
    }

    /// The upload of a chunk is over (done or failed).
    func endUpload(_ index: Int) {
        lock.withLock {
            guard chunks[index] != nil else { return }
            chunks[index]!.uploading = false
            dropIfEmpty(index)
        }
    }

    // MARK: - Evicting

    /// Bytes of blocks in the local file, and the number of dirty chunks.
    func cacheUsage() -> (presentBytes: UInt64, dirtyChunks: Int) {
        lock.withLock {
            (UInt64(chunks.totals.presentBlocks) * UInt64(ChunkGeometry.blockSize), dirtyChunks.count)
        }
    }

    /// Whether chunks were forgotten, or objects of them orphaned, since the last round recorded it.
    var hasUnrecordedDrops: Bool {
        lock.withLock { !deletedChunks.isEmpty || !orphans.isEmpty }
    }

    /// Chunks with an uploaded generation.
    func uploadedChunks() -> Int {
        lock.withLock { chunks.totals.uploadedChunks }
    }

    /// The least recently used chunks that could be evicted (clean, uploaded, idle, cached),
    /// oldest first, at most `limit`, with when each was last used and its cached bytes.
    func evictionCandidates(limit: Int) -> [EvictionCandidate] {
        lock.withLock {
            var candidates: [EvictionCandidate] = []
            chunks.forEachWithCachedBlocks { index, state in
                guard isEvictable(index, state) else { return }
                candidates.append(
                    EvictionCandidate(
                        index: index, lastUse: state.lastUse,
                        bytes: UInt64(state.present.setCount * ChunkGeometry.blockSize)))
            }
            return Array(candidates.sorted { $0.lastUse < $1.lastUse }.prefix(limit))
        }
    }

    /// Takes a chunk for eviction: holds its gate alone and forgets its cached blocks; returns
    /// the record to commit before the local blocks are punched, or nil when it may not be
    /// evicted now. `endEviction` releases it.
    func beginEviction(_ index: Int) -> ChunkChange? {
        lock.withLock {
            guard let state = chunks[index], isEvictable(index, state),
                chunks[index]!.gate.tryAcquire(exclusive: true)
            else { return nil }
            chunks[index]!.present = BlockBitmap(count: state.valid.count)
            landed.drop(index)
            written.dropKept(index)
            evictionsBegun.add(1, ordering: .sequentiallyConsistent)
            unsyncedPresent.remove(index)
            return .store(
                volumeID: volumeID,
                record(
                    index, valid: state.valid, present: chunks[index]!.present,
                    remoteGeneration: state.remoteGeneration, dirty: false))
        }
    }

    /// Releases a chunk taken by `beginEviction`.
    func endEviction(_ index: Int) {
        let granted = lock.withLock { chunks[index]?.gate.release(exclusive: true) ?? [] }
        for promise in granted { promise.succeed(()) }
    }

    /// Whether a chunk may be evicted: clean, uploaded, idle, cached, and read by no region
    /// being sent (`pinForRegion`). Lock held.
    private func isEvictable(_ index: Int, _ state: ChunkState) -> Bool {
        guard case .clean = state.journal, regionPins[index] == nil else { return false }
        return state.remoteGeneration > 0 && !state.uploading && state.fillWaiters == nil && state.gate.isIdle
            && !state.present.isEmpty
    }
}

/// A chunk the cache could evict: when it was last used, and the bytes its eviction frees.
public struct EvictionCandidate: Sendable {
    public let index: Int
    public let lastUse: UInt64
    public let bytes: UInt64
}
