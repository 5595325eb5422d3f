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
    /// the object store, or deferred or downloaded blocks hold it (nil otherwise): in one look
    /// under the lock, its bytes from memory if it can, or its runs and the evictions begun so
    /// far; the chunks count as used. A range reaching into a deferred chunk is served from
    /// memory or not at all (the file holds nothing of that chunk).
    /// No gate is needed: writes share gates with reads anyway, and the one change that could
    /// spoil a read of the local file, an eviction punching it out, is caught by comparing the
    /// eviction count after the read (the read is then done again the long way).
    func cachedRead(offset: UInt64, length: UInt64, now: UInt64) -> CachedRead? {
        lock.withLock {
            let read: CachedRead
            if let deferred = deferredBytesLocked(offset: offset, length: length) {
                guard let buffers = deferred else { return nil }
                read = .landed(buffers)
            } else if let buffers = landedBytesLocked(offset: offset, length: length) {
                read = .landed(buffers)
            } else if let runs = runsLocked(offset: offset, length: length, localOnly: true) {
                read = .local(runs, evictionsBegun: evictionsBegun.load(ordering: .sequentiallyConsistent))
            } else {
                return nil
            }
            for index in geometry.chunks(touching: offset, length: length) { chunks.touch(index, at: now) }
            return read
        }
    }

    /// For a range reaching into a deferred chunk (`WrittenChunks`), its bytes from memory, or
    /// nil inside when it also reaches into a chunk not deferred (it is then read chunk by
    /// chunk); nil when it reaches into none.
    private func deferredBytesLocked(offset: UInt64, length: UInt64) -> [ByteBuffer]?? {
        let indexes = geometry.chunks(touching: offset, length: length)
        guard written.defersAny(of: indexes) else { return nil }
        var buffers: [ByteBuffer] = []
        for index in indexes {
            guard let data = written.deferred(index) else { return .some(nil) }
            let slice = geometry.slice(ofChunk: index, offset: offset, length: length)
            buffers.append(data.getSlice(at: data.readerIndex + slice.lowerBound, length: slice.count)!)
        }
        return buffers
    }

    /// Whether an eviction began since the count was `count`.
    func evicted(since count: UInt64) -> Bool {
        evictionsBegun.load(ordering: .sequentiallyConsistent) != count
    }
}

extension ChunkTable {
    /// Pins the chunks of a range the local file holds whole (every block cached, none only in
    /// the store, none invalid) against eviction, for a reply that sends the file's bytes as
    /// they are when it goes out; nil when the file does not hold it, or when pinning it would
    /// take the volume past `maximumPinnedBytes` (a client that stops reading keeps its pins).
    /// The chunks count as used. An eviction is the one change that would spoil such a reply:
    /// it begins by forgetting the chunk's cached blocks under this lock, so a pinned chunk was
    /// not being evicted, and none begins until `unpin`.
    func pinForRegion(offset: UInt64, length: UInt64, now: UInt64) -> Range<Int>? {
        lock.withLock {
            let indexes = geometry.chunks(touching: offset, length: length)
            let limit = max(2, Self.maximumPinnedBytes / geometry.chunkSize)
            guard regionPins.count + indexes.count(where: { regionPins[$0] == nil }) <= limit,
                !written.defersAny(of: indexes),
                isLocalLocked(offset: offset, length: length)
            else { return nil }
            for index in indexes {
                chunks.touch(index, at: now)
                regionPins[index, default: 0] += 1
            }
            return indexes
        }
    }

    /// The most bytes of chunks one volume pins for regions (two chunks at least).
    static let maximumPinnedBytes = 64 << 20

    /// Releases chunks pinned by `pinForRegion`.
    func unpin(_ indexes: Range<Int>) {
        lock.withLock {
            for index in indexes {
                if regionPins[index] == 1 { regionPins[index] = nil } else { regionPins[index]! -= 1 }
            }
        }
    }
}
