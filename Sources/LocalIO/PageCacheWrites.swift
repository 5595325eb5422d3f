/// How a write goes through the page cache: in pieces of at most `piece` bytes, each ending at a
/// multiple of it, so that the kernel keeps the file's folios small. ext4 (kernel 6.x) gives the
/// folios a write creates the size of that write, and every later write into a folio walks all
/// of its blocks: a 4 KiB write into pages a 1 MiB write made spent 40 % of the server's
/// processor there (random 4 KiB writes at QD32 on a thin volume filled by 1 MiB writes: about
/// 50,000 per second whole, 80,000 in pieces, against nbdkit's 45,000–60,000 here); 1 MiB writes
/// lose a little. Only a write the page cache holds no whole copy of goes in pieces: one into
/// pages the cache holds finds its folios made already, whatever their size, and goes whole, as
/// do writes around the page cache (direct) and synchronous ones (`RWF_DSYNC`, which would sync
/// each piece). The backends do the writes.
enum PageCacheWrites {
    /// The largest piece, in bytes.
    static let piece = 64 * 1024

    /// Whether a write (not synchronous) of `length` bytes at `offset` goes in pieces: it is
    /// longer than one, through the page cache, and not all of its pages are there now.
    static func goesInPieces(_ file: LocalFile, offset: UInt64, length: Int) -> Bool {
        length > piece && !file.isDirect && !file.pageCacheHolds(offset: offset, length: length)
    }

    /// How many of `remaining` bytes to write at `position` in one call: up to the next multiple
    /// of `piece`.
    static func length(at position: UInt64, remaining: Int) -> Int {
        min(remaining, piece - Int(position % UInt64(piece)))
    }

    /// The pieces of a write of `length` bytes at `offset` from `done` bytes into it, at most
    /// `limit` of them (the rest goes on later, as after a short write); one piece of nothing
    /// when nothing remains.
    static func pieces(offset: UInt64, length: Int, done: Int, limit: Int) -> [UInt32] {
        guard done < length else { return [0] }
        var pieces: [UInt32] = []
        var done = done
        while done < length, pieces.count < limit {
            let piece = Self.length(at: offset + UInt64(done), remaining: length - done)
            pieces.append(UInt32(piece))
            done += piece
        }
        return pieces
    }

    /// What a chain of pieces (`pieces`) did, as one write's result: the bytes they wrote in a
    /// row from the first (a piece that wrote less ends the row, and the caller writes the rest
    /// again), or, when the first wrote nothing, its result (a negative errno, or 0). The pieces
    /// after one that failed or fell short answer ECANCELED; they are not counted.
    static func outcome(of pieces: [UInt32], results: [Int32]) -> Int32 {
        var written: Int32 = 0
        for (piece, result) in zip(pieces, results) {
            guard result == Int32(piece) else { return written > 0 ? written + max(0, result) : result }
            written += result
        }
        return written
    }
}
