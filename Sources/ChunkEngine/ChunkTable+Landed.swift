import Codecs
import NIOCore

/// Blocks a cached volume downloaded, kept in memory for the reads that wanted them: a read
/// served from them needs neither the page cache (which copying them into costs more processor
/// time than downloading them did) nor a read of the disk they were written to. At most `limit`
/// bytes, oldest dropped first. An entry of the whole chunk (a sequential reader's, or
/// read-ahead's) stays until a read reaches the chunk's end; one of some blocks (a random
/// reader's) goes with the read that wanted them; and any goes when its chunk changes, is
/// evicted or is forgotten.
///
/// An entry is kept as soon as its fill, holding the chunk alone, knows the downloaded blocks are
/// still missing, and is served from then on. Until the file holds its blocks (`inFile`: the fill
/// is still writing them; or never, for a sequential stream past a full cache) it is served as
/// it is: nothing changed the chunk since it was landed, for any change drops it. Once written,
/// it is served only while the chunk is at the generation it was downloaded at and only for
/// blocks the chunk holds in the local file: the entry and the file agree byte for byte. A fill
/// whose write failed drops its entry.
struct LandedChunks {
    /// Downloaded runs of one chunk, with the chunk's generation when they were written. A run
    /// is one aligned buffer when its fill writes it into the file; a memory-only one may be
    /// views of the memory its response body was read into (`ChunkObjects.read`, `asViews`).
    struct Entry {
        let generation: UInt64
        let pieces: [(blocks: Range<Int>, data: ObjectBytes)]
        /// The local file holds its blocks (its fill wrote them).
        var inFile = false
        /// Its blocks are never written to the file (a stream past a full cache): dropped unread,
        /// their download was wasted.
        var memoryOnly = false
        var bytes: Int { pieces.reduce(0) { $0 + $1.data.count } }

        /// The downloaded run that holds all of `blocks`, if one does.
        func piece(holding blocks: Range<Int>) -> (blocks: Range<Int>, data: ObjectBytes)? {
            pieces.first { $0.blocks.lowerBound <= blocks.lowerBound && blocks.upperBound <= $0.blocks.upperBound }
        }

        /// Whether the entry holds every block of a chunk of `blocks` blocks.
        func isWhole(ofBlocks blocks: Int) -> Bool { pieces.count == 1 && pieces[0].blocks == 0..<blocks }
    }

    private var entries: [Int: Entry] = [:]
    /// Chunks with an entry, oldest first.
    private var order: [Int] = []
    private(set) var bytes = 0

    /// Keeps `entry` for a chunk (replacing an older one), then drops the oldest entries past
    /// `limit` bytes; returns the chunks whose memory-only entries were dropped so.
    @discardableResult
    mutating func keep(_ entry: Entry, forChunk index: Int, limit: Int) -> [Int] {
        drop(index)
        entries[index] = entry
        order.append(index)
        bytes += entry.bytes
        var lost: [Int] = []
        while bytes > limit, let oldest = order.first {
            if entries[oldest]?.memoryOnly == true { lost.append(oldest) }
            drop(oldest)
        }
        return lost
    }

    /// Notes that an entry's fill wrote its blocks into the local file, or forgets the entry when
    /// the write failed.
    mutating func settle(_ index: Int, written: Bool) {
        if written { entries[index]?.inFile = true } else { drop(index) }
    }

    /// Forgets a chunk's entry.
    mutating func drop(_ index: Int) {
        guard let entry = entries.removeValue(forKey: index) else { return }
        order.removeAll { $0 == index }
        bytes -= entry.bytes
    }

    subscript(index: Int) -> Entry? { entries[index] }
}

extension ChunkTable {
    /// Keeps the downloaded runs of a chunk before its fill (holding the chunk alone) writes them
    /// to the local file, unless `memoryOnly`, and wakes whoever waits for the fill: readers can
    /// now be served (the fill itself goes on until the write is done). Returns the chunks whose
    /// memory-only entries went unread to make room (`LandedChunks.keep`).
    func land(
        _ pieces: [(blocks: Range<Int>, data: ObjectBytes)], inChunk index: Int, memoryOnly: Bool, limit: Int
    ) -> [Int] {
        let (waiters, lost) = lock.withLock { () -> ([EventLoopPromise<Void>], [Int]) in
            guard let state = chunks[index] else { return ([], []) }
            let lost = landed.keep(
                .init(generation: state.generation, pieces: pieces, memoryOnly: memoryOnly), forChunk: index,
                limit: limit)
            guard let waiters = state.fillWaiters, !waiters.isEmpty else { return ([], lost) }
            chunks[index]!.fillWaiters = []
            return (waiters, lost)
        }
        for waiter in waiters { waiter.succeed(()) }
        return lost
    }

    /// Notes that a landed entry's fill wrote its blocks into the local file (or drops the entry
    /// when the write failed).
    func settleLanded(inChunk index: Int, written: Bool) {
        lock.withLock { landed.settle(index, written: written) }
    }

    /// Whether a current entry of the chunk holds every block of `runs`, in the file or not.
    func landedHolds(_ runs: [Range<Int>], ofChunk index: Int) -> Bool {
        lock.withLock {
            guard let entry = landed[index], chunks[index]?.generation == entry.generation else { return false }
            return runs.allSatisfy { entry.piece(holding: $0) != nil }
        }
    }

    /// The bytes of a range from downloaded runs alone, in order, or nil when any byte of it is
    /// not in a current entry. A chunk whose last byte the range reads loses its entry, and so
    /// does a chunk whose entry holds only some of its blocks.
    func landedBytes(offset: UInt64, length: UInt64) -> [ByteBuffer]? {
        lock.withLock { landedBytesLocked(offset: offset, length: length) }
    }

    /// `landedBytes`; call with `lock` held.
    func landedBytesLocked(offset: UInt64, length: UInt64) -> [ByteBuffer]? {
        let blockSize = ChunkGeometry.blockSize
        guard landed.bytes > 0 else { return nil }
        var buffers: [ByteBuffer] = []
        var finished: [Int] = []
        for index in geometry.chunks(touching: offset, length: length) {
            guard let entry = landed[index], let state = chunks[index], state.generation == entry.generation
            else { return nil }
            let slice = geometry.slice(ofChunk: index, offset: offset, length: length)
            let blocks = ChunkGeometry.blocksTouching(slice)
            guard
                let piece = entry.piece(holding: blocks),
                !entry.inFile || state.present.runs(in: blocks).allSatisfy(\.1)
            else { return nil }
            let start = slice.lowerBound - piece.blocks.lowerBound * blockSize
            buffers += piece.data.slice(start..<(start + slice.count)).buffers
            let chunkEnd = min(UInt64(geometry.chunkSize), geometry.volumeSize - geometry.chunkStart(index))
            if UInt64(slice.upperBound) == chunkEnd || !entry.isWhole(ofBlocks: geometry.blocks(inChunk: index)) {
                finished.append(index)
            }
        }
        for index in finished { landed.drop(index) }
        return buffers
    }
}
