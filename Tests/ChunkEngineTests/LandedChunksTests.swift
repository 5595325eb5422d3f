import Codecs
import NIOConcurrencyHelpers
import NIOCore
import TestSupport
import Testing
import VolumeTestSupport

@testable import ChunkEngine

/// Downloaded blocks kept in memory for readers: the oldest go past the limit; on a cached
/// volume, a read served from them returns the object's bytes, a chunk read to its end lets its
/// entry go, and a write or an eviction makes the entry unusable, so reads then see the file.
@Suite struct LandedChunksTests {
    private func entry(_ generation: UInt64, bytes: Int) -> LandedChunks.Entry {
        .init(
            generation: generation,
            pieces: [(blocks: 0..<(bytes / 4096), data: ObjectBytes(ByteBuffer(repeating: 1, count: bytes)))])
    }

    @Test func theOldestEntriesGoPastTheLimitAndAReplacedEntryIsCountedOnce() {
        var landed = LandedChunks()
        landed.keep(entry(1, bytes: 8192), forChunk: 0, limit: 16384)
        landed.keep(entry(1, bytes: 8192), forChunk: 1, limit: 16384)
        landed.keep(entry(2, bytes: 8192), forChunk: 0, limit: 16384)
        #expect(landed.bytes == 16384)
        landed.keep(entry(1, bytes: 8192), forChunk: 2, limit: 16384)
        #expect(landed[1] == nil)
        #expect(landed[0]?.generation == 2)
        #expect(landed.bytes == 16384)
        landed.drop(0)
        landed.drop(0)
        #expect(landed.bytes == 8192)
    }

    @Test func memoryOnlyEntriesDroppedPastTheLimitAreReported() {
        var landed = LandedChunks()
        var memoryOnly = entry(1, bytes: 8192)
        memoryOnly.memoryOnly = true
        #expect(landed.keep(memoryOnly, forChunk: 0, limit: 16384).isEmpty)
        #expect(landed.keep(entry(1, bytes: 8192), forChunk: 1, limit: 16384).isEmpty)
        #expect(landed.keep(memoryOnly, forChunk: 2, limit: 16384) == [0])
        #expect(landed.keep(memoryOnly, forChunk: 3, limit: 16384).isEmpty)
        #expect(landed.keep(entry(1, bytes: 16384), forChunk: 4, limit: 16384) == [2, 3])
        #expect(landed.bytes == 16384)
    }

    @Test func anEntryWrittenIsInTheFileAndOneWhoseWriteFailedGoes() {
        var landed = LandedChunks()
        landed.keep(entry(1, bytes: 8192), forChunk: 0, limit: 1 << 20)
        landed.keep(entry(1, bytes: 8192), forChunk: 1, limit: 1 << 20)
        #expect(landed[0]?.inFile == false)
        landed.settle(0, written: true)
        landed.settle(1, written: false)
        #expect(landed[0]?.inFile == true)
        #expect(landed[1] == nil)
        #expect(landed.bytes == 8192)
    }

    private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13) ^ seed }
    }

    @Test func readsAreServedFromDownloadsUntilTheChunkChangesOrIsEvicted() async throws {
        let chunk = 65536
        let fixture = try await VolumeFixture(size: 4 << 16, chunkSize: chunk, kind: .cached)
        let data = pattern(4 * chunk, seed: 9)
        try await fixture.write(0, data)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.dropCache()
        let table = fixture.volume.table
        func expected(_ offset: Int, _ length: Int) -> [UInt8] { Array(data[offset..<(offset + length)]) }

        // A random read keeps nothing: its download goes with it.
        #expect(try await fixture.read(UInt64(3 * chunk + 8192), 4096) == expected(3 * chunk + 8192, 4096))
        #expect(table.landed[3] == nil)
        // A sequential reader's chunk is downloaded whole and kept until the reader reaches its end.
        #expect(try await fixture.read(0, chunk) == expected(0, chunk))
        #expect(try await fixture.read(UInt64(chunk), chunk / 2) == expected(chunk, chunk / 2))
        let kept = try #require(table.landedBytes(offset: UInt64(chunk) + 1000, length: 3000))
        #expect(Array(kept[0].readableBytesView) == expected(chunk + 1000, 3000))
        #expect(try await fixture.read(UInt64(chunk + chunk / 2), chunk / 2) == expected(chunk + chunk / 2, chunk / 2))
        #expect(table.landed[1] == nil)

        // Read-ahead brought chunk 2 in whole; evicting it lets its download go.
        await fixture.volume.stopReadAhead()
        #expect(table.landed[2] != nil)
        #expect(await fixture.volume.evict([2]) == 1)
        #expect(table.landed[2] == nil)

        // A write into a chunk makes its download stale: reads then see the write.
        fixture.volume.startReadAhead()
        #expect(try await fixture.read(UInt64(2 * chunk), 8192) == expected(2 * chunk, 8192))
        #expect(table.landedBytes(offset: UInt64(2 * chunk), length: 4096) != nil)
        let changed = pattern(100, seed: 77)
        try await fixture.write(UInt64(2 * chunk) + 10, changed)
        #expect(table.landedBytes(offset: UInt64(2 * chunk), length: 4096) == nil)
        #expect(table.landed[2] == nil)
        var afterWrite = expected(2 * chunk, 8192)
        afterWrite.replaceSubrange(10..<110, with: changed)
        #expect(try await fixture.read(UInt64(2 * chunk), 8192) == afterWrite)
        await fixture.close()
    }

    @Test func readersDoNotWaitForTheirDownloadsToReachTheDisk() async throws {
        let chunk = 65536
        var wrapped: HeldWritesFileIO?
        let fixture = try await VolumeFixture(
            size: 4 << 16, chunkSize: chunk, kind: .cached,
            wrap: { base in
                wrapped = HeldWritesFileIO(wrapping: base)
                return wrapped!
            })
        let held = try #require(wrapped)
        let data = pattern(4 * chunk, seed: 21)
        try await fixture.write(0, data)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.dropCache()
        await fixture.volume.stopReadAhead()
        let table = fixture.volume.table
        let blocks = 0..<(chunk / 4096)
        func expected(_ offset: Int, _ length: Int) -> [UInt8] { Array(data[offset..<(offset + length)]) }

        // The read returns while the write of its download waits; the chunk is the fill's alone
        // until that write is done, so a write into it waits too, and is seen afterwards.
        held.hold()
        let read = Task { try await fixture.read(UInt64(chunk), chunk) }
        let returned = NIOLockedValueBox(false)
        Task {
            _ = try? await read.value
            returned.withLockedValue { $0 = true }
        }
        #expect(try await eventually(within: 60) { returned.withLockedValue { $0 } })
        // (Were it waiting for the write, releasing it lets the test end.)
        if !returned.withLockedValue({ $0 }) { held.release(failing: false) }
        #expect(try await read.value == expected(chunk, chunk))
        #expect(try await eventually(within: 60) { held.heldWrites == 1 })
        #expect(table.missingBlocks(ofChunk: 1, in: blocks) != nil)
        let changed = pattern(100, seed: 5)
        let write = Task { try await fixture.write(UInt64(chunk) + 4000, changed) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(held.heldWrites == 1)
        held.release(failing: false)
        try await write.value
        // The write waited for the fill, which marked the blocks cached when it was done.
        #expect(table.missingBlocks(ofChunk: 1, in: blocks) == nil)
        var afterWrite = expected(chunk, chunk)
        afterWrite.replaceSubrange(4000..<4100, with: changed)
        #expect(try await fixture.read(UInt64(chunk), chunk) == afterWrite)

        // When that write fails, the reader still has the object's bytes; the blocks stay
        // missing, and the next read downloads them again.
        held.hold()
        #expect(try await fixture.read(UInt64(2 * chunk), chunk) == expected(2 * chunk, chunk))
        #expect(try await eventually(within: 60) { held.heldWrites == 1 })
        held.release(failing: true)
        // The fill is over when the chunk has no fill state any more.
        #expect(try await eventually(within: 60) { table.lock.withLock { table.chunks[2]?.fillWaiters == nil } })
        #expect(table.missingBlocks(ofChunk: 2, in: blocks) != nil)
        #expect(table.landed[2] == nil)
        let misses = fixture.volume.cacheCounts.misses
        #expect(try await fixture.read(UInt64(2 * chunk), chunk) == expected(2 * chunk, chunk))
        #expect(fixture.volume.cacheCounts.misses == misses + 1)
        #expect(try await eventually(within: 60) { table.missingBlocks(ofChunk: 2, in: blocks) == nil })
        await fixture.close()
    }
}
