import NIOCore
import Testing

@testable import ChunkEngine

/// Whole chunks written, in memory: kept entries go oldest first past their limit, deferred
/// ones never do (they are the chunk's only copy), and each kind is counted once.
@Suite struct WrittenChunksTests {
    private func bytes(_ count: Int, _ value: UInt8) -> ByteBuffer { ByteBuffer(repeating: value, count: count) }

    @Test func keptEntriesGoOldestFirstPastTheLimitAndDeferredOnesStay() {
        var written = WrittenChunks()
        written.setDeferred(bytes(8192, 1), forChunk: 0)
        written.keep(bytes(8192, 2), generation: 5, forChunk: 1, limit: 16384)
        written.keep(bytes(8192, 3), generation: 6, forChunk: 2, limit: 16384)
        written.keep(bytes(8192, 4), generation: 7, forChunk: 3, limit: 16384)
        // Past the kept limit the oldest kept entry goes; the deferred one is not counted there.
        #expect(!written.holds(1))
        #expect(written.data(ofChunk: 2, generation: 6) == bytes(8192, 3))
        #expect(written.data(ofChunk: 3, generation: 6) == nil, "an entry of another generation")
        #expect(written.deferred(0) == bytes(8192, 1))
        #expect(written.deferredBytes == 8192)
        #expect(written.deferredChunks == [0])
    }

    @Test func aKeptWriteNeverReplacesADeferredChunkButADeferredWriteReplacesEither() {
        var written = WrittenChunks()
        written.setDeferred(bytes(4096, 1), forChunk: 0)
        written.keep(bytes(4096, 2), generation: 3, forChunk: 0, limit: 1 << 20)
        #expect(written.deferred(0) == bytes(4096, 1))
        written.dropKept(0)
        #expect(written.isDeferred(0), "dropping kept bytes leaves a deferred chunk's data")
        written.setDeferred(bytes(4096, 3), forChunk: 0)
        #expect(written.deferred(0) == bytes(4096, 3))
        #expect(written.deferredBytes == 4096, "a replaced deferred entry is counted once")
        written.keep(bytes(4096, 4), generation: 8, forChunk: 1, limit: 1 << 20)
        written.setDeferred(bytes(4096, 5), forChunk: 1)
        #expect(written.data(ofChunk: 1, generation: 8) == nil)
        #expect(written.deferredBytes == 8192)
        written.dropDeferred(0)
        written.dropDeferred(0)
        #expect(written.deferredBytes == 4096)
        #expect(written.deferredChunks == [1])
        written.dropDeferred(1)
        #expect(written.deferredChunks.isEmpty)
        #expect(!written.holds(0) && !written.holds(1))
    }
}
