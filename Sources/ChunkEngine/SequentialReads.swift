/// Sequential-read detection for a cached volume's read-ahead: finds reads that continue where
/// an earlier one ended, a few streams at once (a filesystem reading several files), and answers
/// which whole chunks to download ahead of each. A stream reads ahead from its second read on:
/// one chunk past the read, a window that doubles with each further read, up to `limit` chunks.
/// A read far from every stream starts a new one, replacing the least recent. Pure logic: the
/// volume does the downloads.
///
/// Invariant: a stream never asks for a chunk twice (`aheadThrough` only grows), so the chunks
/// in flight for one stream are at most its window.
struct SequentialReads: Sendable {
    /// One reader moving forward through the volume.
    struct Stream: Sendable, Equatable {
        /// Where its last read ended (the furthest end seen).
        var end: UInt64
        /// Reads that continued it, counting the first.
        var reads: Int
        /// Chunks it reads ahead now (0 until it is sequential).
        var window: Int
        /// The last chunk asked for ahead of it (or its first read's last chunk).
        var aheadThrough: Int
    }

    /// What a read is: part of a sequential stream or not, and the chunks to download ahead.
    struct Verdict: Equatable {
        var sequential: Bool
        var ahead: Range<Int>
    }

    /// Most recent first.
    private(set) var streams: [Stream] = []
    /// Streams followed at once.
    static let maximumStreams = 4
    /// Reads in a row before a stream reads ahead.
    static let trigger = 2

    /// Notes a read of `length` bytes at `offset` on a volume of `chunks` chunks of `chunkSize`
    /// bytes; `limit` is the largest window in chunks (0: no read-ahead).
    mutating func observe(offset: UInt64, length: UInt64, chunkSize: UInt64, chunks: Int, limit: Int) -> Verdict {
        let end = offset + max(length, 1)
        let lastChunk = Int((end - 1) / chunkSize)
        // A read continues a stream when it starts within a chunk of where the stream ended:
        // concurrent requests of one reader arrive a little out of order.
        guard let found = streams.firstIndex(where: { $0.end <= offset + chunkSize && offset <= $0.end + chunkSize })
        else {
            streams.insert(Stream(end: end, reads: 1, window: 0, aheadThrough: lastChunk), at: 0)
            if streams.count > Self.maximumStreams { streams.removeLast() }
            return Verdict(sequential: false, ahead: 0..<0)
        }
        var stream = streams.remove(at: found)
        defer { streams.insert(stream, at: 0) }
        stream.reads += 1
        stream.end = max(stream.end, end)
        guard stream.reads >= Self.trigger else { return Verdict(sequential: false, ahead: 0..<0) }
        stream.window = min(max(1, stream.window * 2), limit)
        let target = min(lastChunk + stream.window, chunks - 1)
        let from = max(stream.aheadThrough, lastChunk) + 1
        stream.aheadThrough = max(stream.aheadThrough, target)
        return Verdict(sequential: true, ahead: from <= target ? from..<(target + 1) : 0..<0)
    }
}
