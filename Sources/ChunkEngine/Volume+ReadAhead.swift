import Metrics
import NIOCore

/// The read-ahead of one cached volume: its sequential streams, the chunks it downloaded that no
/// read has touched since (with the bytes each took), what it has done, and the most one
/// stream's window may hold. Stopping it waits for the downloads under way, so that none runs
/// after the volume leaves the cache.
struct ReadAheadState: Sendable {
    var reads = SequentialReads()
    var unread: [Int: UInt64] = [:]
    /// Downloads under way.
    var inFlight = 0
    /// Bytes downloaded ahead of readers.
    var bytes: UInt64 = 0
    /// Reads that found a chunk read-ahead brought in (or was bringing in).
    var hits: UInt64 = 0
    /// Bytes downloaded ahead that were evicted before any read touched them.
    var wastedBytes: UInt64 = 0
    var stopped = false
    /// A window's share of the cache, set by the cache manager.
    var ceiling: UInt64 = .max
    /// The shared cache has no room for another window (set by the cache manager): sequential
    /// streams are served from memory and not cached.
    var pastCache = false
}

extension Volume {
    /// Notes a read of a cached volume: counts a read of chunks read-ahead brought in as a hit,
    /// and starts downloads of whole chunks ahead of a sequential stream. Returns whether the read
    /// is sequential (its own chunks are then downloaded whole, not just the blocks it asks for).
    func readAhead(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> Bool {
        guard let remote else { return false }
        let geometry = self.geometry
        let chunkSize = UInt64(geometry.chunkSize)
        let touched = geometry.chunks(touching: offset, length: length)
        let (verdict, hits) = remote.readAhead.withLockedValue { state -> (SequentialReads.Verdict, Int) in
            var hits = 0
            if !state.unread.isEmpty {
                for index in touched where state.unread.removeValue(forKey: index) != nil { hits += 1 }
            }
            state.hits += UInt64(hits)
            guard !state.stopped else { return (SequentialReads.Verdict(sequential: false, ahead: 0..<0), hits) }
            // One chunk ahead at least (when read-ahead is on), however small the cache.
            let limit = Int(min(remote.settings.readAhead, max(state.ceiling, chunkSize)) / chunkSize)
            let verdict = state.reads.observe(
                offset: offset, length: length, chunkSize: chunkSize, chunks: geometry.chunkCount, limit: limit)
            // Counted in flight under the same lock that saw read-ahead running, so that a stop
            // cannot slip in before the downloads start.
            state.inFlight += verdict.ahead.count
            return (verdict, hits)
        }
        if hits > 0 {
            Counter(label: "blockgate_read_ahead_hits_total", dimensions: [("volume", name)]).increment(by: hits)
        }
        for index in verdict.ahead { readAhead(chunk: index, remote, on: eventLoop) }
        return verdict.sequential
    }

    /// Downloads the blocks of a chunk the cache lacks, ahead of a reader; the download is
    /// already counted in flight.
    private func readAhead(chunk index: Int, _ remote: RemoteBacking, on eventLoop: any EventLoop) {
        let blocks = geometry.blocks(inChunk: index)
        guard let (_, runs) = table.missingBlocks(ofChunk: index, in: 0..<blocks) else {
            remote.readAhead.withLockedValue { $0.inFlight -= 1 }
            return
        }
        let bytes = UInt64(runs.reduce(0) { $0 + $1.count } * ChunkGeometry.blockSize)
        remote.readAhead.withLockedValue { state in
            state.unread[index] = bytes
            state.bytes += bytes
        }
        Counter(label: "blockgate_read_ahead_bytes_total", dimensions: [("volume", name)]).increment(by: bytes)
        fill(chunk: index, blocks: 0..<blocks, goal: streamsPastCache ? .memoryOnly : .file, on: eventLoop)
            .whenComplete { result in
                remote.readAhead.withLockedValue { state in
                    state.inFlight -= 1
                    if case .failure = result { state.unread[index] = nil }
                }
                if case .failure(let error) = result {
                    self.logger.debug("volume '\(self.name)': read-ahead of chunk \(index) failed: \(error)")
                }
            }
    }

    /// Counts the bytes read-ahead brought into an evicted chunk that no read touched as wasted
    /// (or into a chunk whose memory-only download was dropped unread).
    func evictedUnread(chunk index: Int) {
        let wasted = remote?.readAhead.withLockedValue { state -> UInt64? in
            guard let bytes = state.unread.removeValue(forKey: index) else { return nil }
            state.wastedBytes += bytes
            return bytes
        }
        guard let bytes = wasted ?? nil else { return }
        Counter(label: "blockgate_read_ahead_wasted_bytes_total", dimensions: [("volume", name)]).increment(by: bytes)
    }

    /// Caps the bytes one read-ahead window may hold (the cache manager gives each a share of
    /// the cache).
    public func limitReadAhead(to bytes: UInt64) {
        remote?.readAhead.withLockedValue { $0.ceiling = bytes }
    }

    /// Whether sequential streams go past the cache: the cache manager says it has no room for
    /// another window, so their chunks, read once, would only push out chunks in use (they are
    /// served from memory instead, `FillGoal.memoryOnly`); and so would chunks written whole
    /// (their writes are deferred, and may never reach the file: `WrittenChunks`).
    public func streamPastCache(_ past: Bool) {
        remote?.readAhead.withLockedValue { $0.pastCache = past }
    }

    var streamsPastCache: Bool { remote?.readAhead.withLockedValue { $0.pastCache } ?? false }

    /// Lets read-ahead start downloads again (it starts so).
    public func startReadAhead() {
        remote?.readAhead.withLockedValue { $0.stopped = false }
    }

    /// Stops read-ahead from starting downloads and waits for every download under way
    /// (`waitForDownloads`).
    public func stopReadAhead() async {
        guard let remote else { return }
        remote.readAhead.withLockedValue { $0.stopped = true }
        while remote.readAhead.withLockedValue({ $0.inFlight }) > 0 {
            try? await Task.sleep(for: .milliseconds(5))
        }
        await waitForDownloads()
    }

    /// Waits until no download is under way: read-ahead's, and those whose readers, served from
    /// memory, have their answer while the fill still writes the blocks into the cache file.
    public func waitForDownloads() async {
        guard let remote else { return }
        while remote.fills.withLockedValue({ $0 }) > 0 { try? await Task.sleep(for: .milliseconds(5)) }
    }

    /// Bytes downloaded ahead of readers, reads that found them, and bytes evicted unread.
    public var readAheadCounts: (bytes: UInt64, hits: UInt64, wastedBytes: UInt64) {
        remote?.readAhead.withLockedValue { ($0.bytes, $0.hits, $0.wastedBytes) } ?? (0, 0, 0)
    }
}
