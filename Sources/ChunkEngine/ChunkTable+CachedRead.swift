import NIOCore

/// How a read of a cached volume that needs no download is served (`ChunkTable.cachedRead`).
enum CachedRead {
    /// From downloaded blocks in memory.
    case landed([ByteBuffer])
    /// From the local file, by these runs; valid if no eviction began meanwhile
    /// (`ChunkTable.evicted(since:)` with this count).
    case local([(range: Range<UInt64>, placement: ChunkTable.Placement)], evictionsBegun: UInt64)
}

extension ChunkTable {
    /// A read of a cached volume without its chunks' gates, when nothing of the range is only in
    /// the object store, or downloaded blocks hold it (nil otherwise): in one look under the lock,
    /// its bytes from downloaded blocks if it can, or its runs and the evictions begun so far;
    /// the chunks count as used.
    /// No gate is needed: writes share gates with reads anyway, and the one change that could
    /// spoil a read of the local file, an eviction punching it out, is caught by comparing the
    /// eviction count after the read (the read is then done again the long way).
    func cachedRead(offset: UInt64, length: UInt64, now: UInt64) -> CachedRead? {
        lock.withLock {
            let read: CachedRead
            if let buffers = landedBytesLocked(offset: offset, length: length) {
                read = .landed(buffers)
            } else if let runs = runsLocked(offset: offset, length: length, localOnly: true) {
                read = .local(runs, evictionsBegun: evictionsBegun)
            } else {
                return nil
            }
            for index in geometry.chunks(touching: offset, length: length) { chunks.touch(index, at: now) }
            return read
        }
    }

    /// Whether an eviction began since the count was `count`.
    func evicted(since count: UInt64) -> Bool {
        lock.withLock { evictionsBegun != count }
    }
}
