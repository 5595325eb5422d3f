import NIOCore

/// Whole chunks a cached volume was just written, in memory, each in one of two ways:
///
/// - kept: the local file holds the bytes too; an upload of the chunk still at the generation
///   the write left it at sends these rather than reading them back. Only a write that held the
///   chunk's gate alone from start to end leaves them (with other writes in flight, which bytes
///   the file ended with is not known); at most `limit` bytes, oldest dropped first; the entry
///   goes when its chunk changes again, is uploaded, evicted or forgotten.
/// - deferred: the bytes are the chunk's data, and the local file holds nothing of it (writes
///   past a full cache into a chunk the cache did not hold, whose write into the file is put
///   off: `ChunkTable.deferWrite`; the whole chunk in one write, or in pieces gathered into a
///   chunk-sized buffer whose blocks no piece wrote yet are zeros, as they read). Reads and
///   uploads take them from here. A deferred entry never goes
///   without its data going somewhere: into the file (`ChunkTable.materialize`, before a
///   durability round captures the chunk, or before any other change of it), or into the store
///   (the round that names its upload makes the chunk clean, and its blocks are then read from
///   the store). A write the store takes before any flush asks for it never touches the disk.
struct WrittenChunks {
    private enum Entry {
        case kept(generation: UInt64, data: ByteBuffer)
        case deferred(ByteBuffer)
    }

    private var entries: [Int: Entry] = [:]
    /// Chunks with a kept entry, oldest first.
    private var order: [Int] = []
    private var keptBytes = 0
    /// Bytes of deferred entries: data the local file lacks.
    private(set) var deferredBytes = 0

    /// Keeps what a write left a chunk holding at `generation`, then drops the oldest kept
    /// entries past `limit` bytes. A deferred entry is not replaced (no change but a deferred
    /// write runs on a deferred chunk before it is materialized).
    mutating func keep(_ data: ByteBuffer, generation: UInt64, forChunk index: Int, limit: Int) {
        guard !isDeferred(index) else { return }
        dropKept(index)
        entries[index] = .kept(generation: generation, data: data)
        order.append(index)
        keptBytes += data.readableBytes
        while keptBytes > limit, let oldest = order.first { dropKept(oldest) }
    }

    /// Holds a chunk's whole data as deferred, replacing any entry of it.
    mutating func setDeferred(_ data: ByteBuffer, forChunk index: Int) {
        dropDeferred(index)
        dropKept(index)
        entries[index] = .deferred(data)
        deferredBytes += data.readableBytes
    }

    /// Writes a piece of a chunk's data at `position` (bytes into the chunk) into its deferred
    /// entry, made first if there is none: `chunkBytes` of zeros (the chunk held no valid block).
    mutating func writeDeferred(_ piece: ByteBuffer, at position: Int, forChunk index: Int, chunkBytes: Int) {
        var data: ByteBuffer
        if case .deferred(let existing) = entries[index] {
            // Out of the table first, so that the buffer is not shared and changes in place.
            entries[index] = nil
            data = existing
        } else {
            dropKept(index)
            data = ByteBufferAllocator().buffer(capacity: chunkBytes)
            data.writeRepeatingByte(0, count: chunkBytes)
            deferredBytes += chunkBytes
        }
        data.setBuffer(piece, at: data.readerIndex + position)
        entries[index] = .deferred(data)
    }

    /// Forgets a chunk's kept entry (a deferred one stays).
    mutating func dropKept(_ index: Int) {
        guard case .kept(_, let data) = entries[index] else { return }
        entries[index] = nil
        order.removeAll { $0 == index }
        keptBytes -= data.readableBytes
    }

    /// Forgets a chunk's deferred entry: call only once its data is in the file or in the store.
    mutating func dropDeferred(_ index: Int) {
        guard case .deferred(let data) = entries[index] else { return }
        entries[index] = nil
        deferredBytes -= data.readableBytes
    }

    /// Whether a chunk has an entry of either kind.
    func holds(_ index: Int) -> Bool { entries[index] != nil }

    /// Whether a chunk's data is deferred: here, and not in the local file.
    func isDeferred(_ index: Int) -> Bool {
        if case .deferred = entries[index] { return true }
        return false
    }

    /// Whether any of `indexes` is deferred (at once when none is).
    func defersAny(of indexes: some Sequence<Int>) -> Bool {
        deferredBytes > 0 && indexes.contains { isDeferred($0) }
    }

    /// Those of `indexes` that are deferred, in one pass (at once when none is).
    func deferred(among indexes: [Int]) -> [Int] {
        deferredBytes == 0 ? [] : indexes.filter { isDeferred($0) }
    }

    /// A deferred chunk's data.
    func deferred(_ index: Int) -> ByteBuffer? {
        guard case .deferred(let data) = entries[index] else { return nil }
        return data
    }

    /// The deferred chunks.
    var deferredChunks: [Int] {
        deferredBytes == 0 ? [] : entries.compactMap { if case .deferred = $0.value { $0.key } else { nil } }
    }

    /// A chunk's kept bytes when its entry is of `generation`.
    func data(ofChunk index: Int, generation: UInt64) -> ByteBuffer? {
        guard case .kept(let kept, let data) = entries[index], kept == generation else { return nil }
        return data
    }
}

extension ChunkTable {
    /// The bytes of a chunk an upload sends when they are in memory: a deferred chunk's data
    /// (which stays until its upload is named), or the bytes a write left when the chunk is still
    /// at `generation` (taken: the entry goes). Nil otherwise. Called by an upload holding the
    /// chunk alone.
    func takeWritten(ofChunk index: Int, generation: UInt64) -> ByteBuffer? {
        lock.withLock {
            if let deferred = written.deferred(index) { return deferred }
            defer { written.dropKept(index) }
            return written.data(ofChunk: index, generation: generation)
        }
    }

    /// Whether a write of `bytes` (of the chunk) should try to be deferred (`deferWrite` decides,
    /// with the chunk held alone): the chunk is deferred already, or another write is on its way
    /// to defer it, or, while streams go past a full cache (`pastCache`), the write could start
    /// deferring it. When it should, the write counts as on its way until `endDeferral`.
    func mayDefer(_ index: Int, bytes: Range<Int>, pastCache: Bool, limit: Int) -> Bool {
        lock.withLock {
            guard
                written.isDeferred(index) || deferralsUnderWay[index] != nil
                    || (pastCache && canStartDeferringLocked(index, bytes: bytes, limit: limit))
            else { return false }
            deferralsUnderWay[index, default: 0] += 1
            return true
        }
    }

    /// A write `mayDefer` let on its way is deferred, or not.
    func endDeferral(_ index: Int) {
        lock.withLock {
            if deferralsUnderWay[index] == 1 { deferralsUnderWay[index] = nil } else { deferralsUnderWay[index]! -= 1 }
        }
    }

    /// Makes a write's bytes the chunk's data without writing them into the file, with its gate
    /// held alone: into its deferred entry when it has one; else, when the write may start
    /// deferring the chunk (see `mayDefer`) and no durability round is materializing deferred
    /// chunks (`pauseDeferring`), into a new one. Returns whether it did.
    func deferWrite(_ data: ByteBuffer, inChunk index: Int, at bytes: Range<Int>, pastCache: Bool, limit: Int)
        -> Bool
    {
        lock.withLock {
            let chunkBytes = geometry.bytes(inChunk: index)
            if !written.isDeferred(index) {
                guard pastCache, !deferringPaused, canStartDeferringLocked(index, bytes: bytes, limit: limit) else {
                    return false
                }
            }
            if bytes.count == chunkBytes {
                written.setDeferred(data, forChunk: index)
            } else {
                written.writeDeferred(data, at: bytes.lowerBound, forChunk: index, chunkBytes: chunkBytes)
            }
            return true
        }
    }

    /// Whether a write of `bytes` of a chunk not deferred may start deferring it; lock held. The
    /// write covers the whole chunk, or begins at its start (as a stream enters it; a random
    /// write of a piece would hold a chunk's memory for a few bytes); the file holds nothing of
    /// the chunk: no block present (and a chunk never uploaded holds its valid blocks in the
    /// file, so it has none), no download filling it, no reply sending it; a write of part of it
    /// also needs it to hold no valid block (the rest of the chunk is then zeros); and the
    /// chunk's bytes fit within `limit`.
    private func canStartDeferringLocked(_ index: Int, bytes: Range<Int>, limit: Int) -> Bool {
        let chunkBytes = geometry.bytes(inChunk: index)
        let whole = bytes.count == chunkBytes
        guard whole || bytes.lowerBound == 0, written.deferredBytes + chunkBytes <= limit else { return false }
        guard let state = chunks[index] else { return true }
        return state.present.isEmpty && (state.valid.isEmpty || (whole && state.remoteGeneration > 0))
            && state.fillWaiters == nil && regionPins[index] == nil
    }

    /// Those of `indexes` whose data is deferred.
    func deferredChunks(among indexes: [Int]) -> [Int] {
        lock.withLock { written.deferred(among: indexes) }
    }

    /// Starts a durability round's materialization: no write is deferred from now until the
    /// round captures its records (`flushSnapshot`, or `resumeDeferring` when it fails first);
    /// returns the chunks deferred now that the round writes into the file before its capture:
    /// all but those whose stored upload holds their data as it is, which the round names
    /// instead (their records then claim no block present, and the object holds them whole).
    func pauseDeferring() -> [Int] {
        lock.withLock {
            deferringPaused = true
            return written.deferredChunks.filter { storedUploads[$0]?.snapshot != chunks[$0]?.generation }
        }
    }

    /// Lets writes be deferred again after a round that failed before its capture.
    func resumeDeferring() {
        lock.withLock { deferringPaused = false }
    }

    /// Writes a deferred chunk's data into the local file with `write`, holding the chunk alone;
    /// once written, its blocks are present, and the bytes stay as a kept entry (within
    /// `keptLimit`) for an upload. Does nothing if the chunk is no longer deferred. The chunk's
    /// record is written again by the next round that syncs.
    func materialize(
        _ index: Int, keptLimit: Int, on eventLoop: any EventLoop,
        write: @escaping @Sendable (ByteBuffer) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Void> {
        with([index], exclusive: true, changing: false, on: eventLoop) {
            guard let data = self.lock.withLock({ self.written.deferred(index) }) else {
                return eventLoop.makeSucceededVoidFuture()
            }
            return write(data)
        } update: { index, state in
            // Under the lock; the gate was held alone throughout, so the entry is the one written.
            guard let data = self.written.deferred(index) else { return }
            self.written.dropDeferred(index)
            self.written.keep(data, generation: state.generation, forChunk: index, limit: keptLimit)
            state.present = state.valid
            state.recordedGeneration = 0
        }
    }
}
