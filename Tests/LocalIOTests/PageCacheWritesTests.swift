import Glibc
import Testing

@testable import LocalIO

/// The pieces of a write through the page cache, and what a chain of them did (pure logic; the
/// writes themselves are in `FileIOTests`).
@Suite struct PageCacheWritesTests {
    /// Pieces end at multiples of 64 KiB, cover the write exactly, and stop at the limit.
    @Test func piecesEndAtMultiplesOfThePieceAndCoverTheWrite() {
        let pieces = PageCacheWrites.pieces(offset: 5000, length: 200_000, done: 0, limit: 16)
        #expect(pieces == [60536, 65536, 65536, 8392])
        var end: UInt64 = 5000
        for piece in pieces.dropLast() {
            end += UInt64(piece)
            #expect(end % 65536 == 0)
        }
        let first = PageCacheWrites.pieces(offset: 0, length: 2 << 20, done: 0, limit: 16)
        #expect(first == Array(repeating: 65536, count: 16))
        let rest = PageCacheWrites.pieces(offset: 0, length: (2 << 20) + 10, done: 1 << 20, limit: 16)
        #expect(rest == Array(repeating: 65536, count: 16))
        #expect(PageCacheWrites.pieces(offset: 0, length: (2 << 20) + 10, done: 2 << 20, limit: 16) == [10])
        #expect(PageCacheWrites.pieces(offset: 4096, length: 4096, done: 4096, limit: 16) == [0])
    }

    /// A chain counts the bytes written in a row from its first piece; a failed first piece
    /// gives its error; the cancelled pieces after a failure count for nothing.
    @Test func aChainCountsWhatItsPiecesWroteInARow() {
        let pieces: [UInt32] = [60536, 65536, 8392]
        #expect(PageCacheWrites.outcome(of: pieces, results: [60536, 65536, 8392]) == 134_464)
        #expect(PageCacheWrites.outcome(of: pieces, results: [60536, 100, -ECANCELED]) == 60636)
        #expect(PageCacheWrites.outcome(of: pieces, results: [60536, -ENOSPC, -ECANCELED]) == 60536)
        #expect(PageCacheWrites.outcome(of: pieces, results: [-ENOSPC, -ECANCELED, -ECANCELED]) == -ENOSPC)
        #expect(PageCacheWrites.outcome(of: pieces, results: [-EAGAIN, -ECANCELED, -ECANCELED]) == -EAGAIN)
        #expect(PageCacheWrites.outcome(of: pieces, results: [0, -ECANCELED, -ECANCELED]) == 0)
        #expect(PageCacheWrites.outcome(of: [4096], results: [4096]) == 4096)
    }
}
