import NIOCore

/// Whole chunks a cached volume was just written, kept in memory for their uploads: an upload
/// of a chunk still at the generation such a write left it at sends these bytes rather than
/// reading them back from the local file. Only a write that held the chunk's gate alone from
/// start to end leaves its bytes (with other writes in flight, which bytes the file ended with
/// is not known); at most `limit` bytes, oldest dropped first; an entry goes when its chunk
/// changes again, is uploaded, evicted or forgotten.
struct WrittenChunks {
    private var entries: [Int: (generation: UInt64, data: ByteBuffer)] = [:]
    /// Chunks with an entry, oldest first.
    private var order: [Int] = []
    private var bytes = 0

    /// Keeps what a write left a chunk holding at `generation`, then drops the oldest entries
    /// past `limit` bytes.
    mutating func keep(_ data: ByteBuffer, generation: UInt64, forChunk index: Int, limit: Int) {
        drop(index)
        entries[index] = (generation, data)
        order.append(index)
        bytes += data.readableBytes
        while bytes > limit, let oldest = order.first { drop(oldest) }
    }

    /// Forgets a chunk's entry.
    mutating func drop(_ index: Int) {
        guard let entry = entries.removeValue(forKey: index) else { return }
        order.removeAll { $0 == index }
        bytes -= entry.data.readableBytes
    }

    /// Whether a chunk has an entry.
    func holds(_ index: Int) -> Bool { entries[index] != nil }

    /// A chunk's bytes when its entry is of `generation`.
    func data(ofChunk index: Int, generation: UInt64) -> ByteBuffer? {
        guard let entry = entries[index], entry.generation == generation else { return nil }
        return entry.data
    }
}

extension ChunkTable {
    /// The bytes a write left a chunk holding, taken (the entry goes) when the chunk is still at
    /// `generation`; nil otherwise. Called by an upload holding the chunk alone.
    func takeWritten(ofChunk index: Int, generation: UInt64) -> ByteBuffer? {
        lock.withLock {
            defer { written.drop(index) }
            return written.data(ofChunk: index, generation: generation)
        }
    }
}
