import BlockDevice
import Foundation
import Logging
import NIOCore
import ObjectStore
import Testing
import VolumeTestSupport

@testable import ChunkEngine

/// Cached volumes against the embedded object store: uploads, eviction and download, merging
/// of partial chunks, backpressure, recovery.
@Suite struct CachedVolumeTests {
    private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7) ^ seed }
    }

    /// Has the volume's uploader catch up for the rest of the test, as `hurryUploads` does for a
    /// second (which a loaded machine may spend before the next write).
    private func catchUp(_ volume: Volume) {
        volume.remote!.hurriedUntil.withLockedValue { $0 = .now() + .seconds(3600) }
    }

    private func chunkObjects(_ fixture: VolumeFixture) async throws -> [String] {
        try await fixture.objects!.list(prefix: Volume.objectPrefix(uuid: fixture.record.uuid)).map(\.key)
    }

    @Test(.enabled(if: ThinVolumeTests.kernelTellsCachedPages))
    func chunksARegionReadsStayCachedUntilItIsSent() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        let data = pattern(262_144, seed: 5)
        try await fixture.write(0, data)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.flush(on: fixture.loop).get()
        // (An upload ends a little after its chunk is clean.)
        for _ in 0..<100 where fixture.volume.evictionCandidates(limit: 10).count < 4 {
            try await Task.sleep(for: .milliseconds(10))
        }
        let read = try #require(fixture.volume.readRegion(offset: 65536, length: 131_072))
        // Its two chunks stay while it is being sent; the others go.
        #expect(await fixture.volume.evict([0, 1, 2, 3]) == 2)
        #expect(fixture.volume.evictionCandidates(limit: 10).isEmpty)
        var bytes = [UInt8](repeating: 0, count: 131_072)
        let count = try read.region.fileHandle.withUnsafeFileDescriptor { descriptor in
            bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, 131_072, 65536) }
        }
        try read.region.fileHandle.close()
        #expect(count == 131_072 && bytes == Array(data[65536..<196_608]))
        read.sent()
        #expect(await fixture.volume.evict([1, 2]) == 2)
        // Blocks only the store has are no region.
        #expect(ThinVolumeTests.isNone(fixture.volume.readRegion(offset: 0, length: 131_072)))
        #expect(try await fixture.read(0, 262_144) == data)
        await fixture.close()
    }

    @Test(.enabled(if: ThinVolumeTests.kernelTellsCachedPages))
    func aVolumePinsAtMostSixtyFourMebibytesForRegions() async throws {
        // 32 MiB chunks: two of them are all a volume pins.
        let fixture = try await VolumeFixture(size: 96 << 20, chunkSize: 32 << 20, kind: .cached)
        for chunk in 0..<3 { try await fixture.write(UInt64(chunk) << 25, pattern(131_072, seed: UInt8(chunk))) }
        let first = try #require(fixture.volume.readRegion(offset: 0, length: 131_072))
        let second = try #require(fixture.volume.readRegion(offset: 32 << 20, length: 131_072))
        #expect(ThinVolumeTests.isNone(fixture.volume.readRegion(offset: 64 << 20, length: 131_072)))
        // Another region of a chunk already pinned counts it once.
        let again = try #require(fixture.volume.readRegion(offset: 0, length: 131_072))
        for read in [first, again] {
            try read.region.fileHandle.close()
            read.sent()
        }
        #expect(!ThinVolumeTests.isNone(fixture.volume.readRegion(offset: 64 << 20, length: 131_072)))
        try second.region.fileHandle.close()
        second.sent()
        await fixture.close()
    }

    /// While the uploader catches up, a write of one whole chunk leaves its bytes for the
    /// upload, which sends them without reading the file; a write of part of a chunk, or of more
    /// than one, leaves nothing, and neither does any write while the uploader works in the
    /// background. What the store gets is what was written either way.
    @Test func uploadsOfChunksWrittenWholeSendWhatTheWriteLeft() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        // Chunk 3 whole in the background; then, hurried, chunks 1 and 2 whole, one write each;
        // chunks 5 and 6 in one write; chunk 4 in part.
        let background = pattern(65536, seed: 10)
        try await fixture.write(3 * 65536, background)
        catchUp(fixture.volume)
        let whole = pattern(131_072, seed: 11)
        try await fixture.write(65536, Array(whole[..<65536]))
        try await fixture.write(2 * 65536, Array(whole[65536...]))
        let two = pattern(131_072, seed: 15)
        try await fixture.write(5 * 65536, two)
        let part = pattern(4096, seed: 12)
        try await fixture.write(4 * 65536 + 8192, part)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        #expect(fixture.volume.uploadsFromMemory == 2)
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(65536, 131_072) == whole)
        #expect(try await fixture.read(5 * 65536, 131_072) == two)
        #expect(try await fixture.read(4 * 65536 + 8192, 4096) == part)
        #expect(try await fixture.read(3 * 65536, 65536) == background)
        // Written whole again and changed after (the uploader stopped, so that it cannot take the
        // chunk in between): the upload goes by the file, not the older bytes.
        await fixture.volume.stopUploader()
        catchUp(fixture.volume)
        try await fixture.write(65536, pattern(65536, seed: 13))
        var changed = pattern(65536, seed: 13)
        changed.replaceSubrange(100..<200, with: pattern(100, seed: 14))
        try await fixture.write(65536 + 100, Array(changed[100..<200]))
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        #expect(fixture.volume.uploadsFromMemory == 2)
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(65536, 65536) == changed)
        await fixture.close()
    }

    /// A whole-chunk write that another write of the chunk overlapped leaves nothing for the
    /// upload (which bytes the file ended with is not the write's to say): the store gets what the
    /// cache holds, whichever write landed last.
    @Test func aWholeChunkWriteOverlappedByAnotherLeavesNothingForTheUpload() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        var buffer = ByteBuffer()
        buffer.writeBytes(pattern(65536, seed: 21))
        var small = ByteBuffer()
        small.writeBytes(pattern(4096, seed: 22))
        // Both in flight at once, hurried (so that the first is kept): the second joins the
        // gate the first holds.
        catchUp(fixture.volume)
        let first = fixture.volume.write(offset: 0, data: buffer, fua: false, on: fixture.loop)
        let second = fixture.volume.write(offset: 8192, data: small, fua: false, on: fixture.loop)
        try await first.get()
        try await second.get()
        let cached = try await fixture.read(0, 65536)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        #expect(fixture.volume.uploadsFromMemory == 0)
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, 65536) == cached)
        await fixture.close()
    }

    /// A write of a whole chunk the cache holds nothing of, into a full cache, is deferred: the
    /// file never gets it when its upload is named first, and its reads and its upload take it
    /// from memory. Into a cache with room, it is written there (and stays cached).
    @Test func aWholeChunkWriteIntoAnUncachedChunkGoesToTheStoreWithoutTouchingTheFile() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        try await fixture.write(0, pattern(65536, seed: 30))
        #expect(fixture.volume.deferredWrites == 0)
        #expect(try fixture.volume.diskUsage() == 65536)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        fixture.volume.streamPastCache(true)  // what the cache manager says of a full cache
        let data = pattern(65536, seed: 31)
        try await fixture.write(65536, data)
        #expect(fixture.volume.deferredWrites == 1)
        #expect(try fixture.volume.diskUsage() == 65536)
        #expect(try await fixture.read(65536, 65536) == data)
        try await fixture.volume.waitUntilUploaded()
        // The deferred chunk's (the first write, in the background, left nothing: its upload
        // read the file).
        #expect(fixture.volume.uploadsFromMemory == 1)
        #expect(try fixture.volume.diskUsage() == 65536)
        #expect(fixture.volume.cacheUsage.cachedBytes == 65536)
        let misses = fixture.volume.cacheCounts.misses
        #expect(try await fixture.read(65536, 65536) == data)
        #expect(fixture.volume.cacheCounts.misses > misses, "the chunk was read back from the store")
        await fixture.close()
    }

    /// Writes of pieces of a chunk the cache holds nothing of, into a full cache, beginning at its
    /// start, are gathered in memory: the file gets none of them, reads see the pieces written
    /// (and zeros where none was yet), and the chunk goes to the store once whole, as one
    /// object. A piece that does not begin a chunk it would be the first of goes into the file.
    @Test func piecesOfAnUncachedChunkAreGatheredInMemory() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        fixture.volume.streamPastCache(true)  // what the cache manager says of a full cache
        let data = pattern(65536, seed: 35)
        let nothingDue = ChunkTable.UploadDue(rested: false, pendingBy: 0)
        try await fixture.write(0, Array(data[..<16384]))
        try await fixture.write(16384, Array(data[16384..<30000]))
        #expect(fixture.volume.deferredWrites == 2)
        #expect(try fixture.volume.diskUsage() == 0)
        #expect(try await fixture.read(8192, 32768) == Array(data[8192..<30000]) + [UInt8](repeating: 0, count: 10960))
        #expect(fixture.volume.table.uploadCandidates(limit: 4, due: nothingDue).isEmpty, "not whole yet")
        try await fixture.write(30000, Array(data[30000...]))
        #expect(fixture.volume.deferredWrites == 3)
        #expect(try fixture.volume.diskUsage() == 0)
        #expect(try await fixture.read(0, 65536) == data)
        #expect(fixture.volume.table.uploadCandidates(limit: 4, due: nothingDue) == [0], "whole: due at once")
        let elsewhere = pattern(4096, seed: 36)
        try await fixture.write(65536 + 8192, elsewhere)
        #expect(fixture.volume.deferredWrites == 3)
        #expect(try fixture.volume.diskUsage() == 4096)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        #expect(fixture.volume.uploadsFromMemory >= 1)
        #expect(try fixture.volume.diskUsage() == 4096, "the gathered chunk went to the store alone")
        #expect(try await chunkObjects(fixture).count == 2)
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, 65536 + 12288) == data + [UInt8](repeating: 0, count: 8192) + elsewhere)
        await fixture.close()
    }

    /// A stream of writes that cross chunks (as a kernel sends them: 1.25 chunks each) is
    /// gathered chunk by chunk: the file gets none of it; the chunks go to the store, the last
    /// one (not whole) once the uploader's pace reaches it.
    @Test func writesAcrossChunksAreGatheredChunkByChunk() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        fixture.volume.streamPastCache(true)
        let data = pattern(5 * 81920, seed: 38)
        for start in stride(from: 0, to: data.count, by: 81920) {
            try await fixture.write(UInt64(start), Array(data[start..<(start + 81920)]))
        }
        #expect(fixture.volume.deferredWrites == 10, "7 chunks, in 10 pieces")
        #expect(try fixture.volume.diskUsage() == 0)
        #expect(try await fixture.read(0, data.count) == data)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        #expect(try fixture.volume.diskUsage() == 0, "every chunk went to the store alone")
        #expect(try await chunkObjects(fixture).count == 7)
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, 7 * 65536) == data + [UInt8](repeating: 0, count: 7 * 65536 - data.count))
        await fixture.close()
    }

    /// A flush writes a chunk still being gathered into the file: a restart finds its pieces, and
    /// zeros where none was written.
    @Test func aFlushWritesAChunkBeingGatheredIntoTheFile() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        fixture.volume.streamPastCache(true)
        let data = pattern(20000, seed: 37)
        try await fixture.write(3 * 65536, Array(data[..<12288]))
        try await fixture.write(3 * 65536 + 12288, Array(data[12288...]), fua: true)
        #expect(fixture.volume.deferredWrites == 2)
        try await fixture.reopen()
        #expect(try await fixture.read(3 * 65536, 65536) == data + [UInt8](repeating: 0, count: 65536 - 20000))
        await fixture.close()
    }

    /// A flush writes deferred chunks into the file before it syncs: a restart finds them there.
    @Test func aFlushWritesDeferredChunksIntoTheFile() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        fixture.volume.streamPastCache(true)
        let data = pattern(2 * 65536, seed: 32)
        try await fixture.write(0, Array(data[..<65536]))
        try await fixture.write(65536, Array(data[65536...]), fua: true)
        #expect(fixture.volume.deferredWrites == 2)
        #expect(try fixture.volume.diskUsage() >= 2 * 65536)
        try await fixture.reopen()
        #expect(try await fixture.read(0, 2 * 65536) == data)
        await fixture.close()
    }

    /// Any other change of a deferred chunk first writes it into the file, then applies itself.
    @Test func changesOfADeferredChunkApplyToItsWholeData() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        fixture.volume.streamPastCache(true)
        var expected = pattern(3 * 65536, seed: 33)
        for chunk in 0..<3 {
            try await fixture.write(UInt64(chunk * 65536), Array(expected[(chunk * 65536)..<((chunk + 1) * 65536)]))
        }
        #expect(fixture.volume.deferredWrites == 3)
        // A read across a deferred chunk and the next (a hole) is served chunk by chunk.
        #expect(
            try await fixture.read(2 * 65536 + 4096, 65536)
                == Array(expected[(2 * 65536 + 4096)...]) + [UInt8](repeating: 0, count: 4096))
        let part = pattern(5000, seed: 34)
        try await fixture.write(1000, part)
        expected.replaceSubrange(1000..<6000, with: part)
        try await fixture.volume.trim(offset: 65536 + 8192, length: 16384, fua: false, on: fixture.loop).get()
        let trimmed = try await fixture.read(65536 + 8192, 16384)
        #expect(
            trimmed == [UInt8](repeating: 0, count: 16384)
                || trimmed == Array(expected[(65536 + 8192)..<(65536 + 24576)]))
        expected.replaceSubrange((65536 + 8192)..<(65536 + 24576), with: trimmed)
        try await fixture.volume.writeZeroes(offset: 2 * 65536 + 100, length: 300, options: [], on: fixture.loop).get()
        expected.replaceSubrange((2 * 65536 + 100)..<(2 * 65536 + 400), with: [UInt8](repeating: 0, count: 300))
        #expect(try await fixture.read(0, 3 * 65536) == expected)
        try await fixture.volume.flush(on: fixture.loop).get()
        try await fixture.reopen()
        #expect(try await fixture.read(0, 3 * 65536) == expected)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, 3 * 65536) == expected)
        await fixture.close()
    }

    /// A read that takes the gates of a chunk it finds absent (a hole beside a deferred chunk)
    /// forgets it again owing the database nothing: no durability round is due for it (one would
    /// write the deferred chunk into the file). A chunk with a record, trimmed empty, still owes
    /// the deletion of its record.
    @Test func aReadOfAHoleLeavesNoRecordToDelete() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        fixture.volume.streamPastCache(true)
        let data = pattern(65536, seed: 40)
        try await fixture.write(0, data)
        #expect(fixture.volume.deferredWrites == 1)
        #expect(try await fixture.read(4096, 65536) == Array(data[4096...]) + [UInt8](repeating: 0, count: 4096))
        #expect(!fixture.volume.table.hasUnrecordedDrops)
        try await fixture.write(3 * 65536 + 512, pattern(4096, seed: 41))
        try await fixture.volume.flush(on: fixture.loop).get()
        try await fixture.volume.trim(offset: 3 * 65536, length: 65536, fua: false, on: fixture.loop).get()
        #expect(fixture.volume.table.hasUnrecordedDrops)
        try await fixture.volume.flush(on: fixture.loop).get()
        #expect(!fixture.volume.table.hasUnrecordedDrops)
        try await fixture.reopen()
        #expect(try await fixture.read(0, 4 * 65536) == data + [UInt8](repeating: 0, count: 3 * 65536))
        await fixture.close()
    }

    @Test func uploadedChunksAreReadBackAfterEviction() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        let data = pattern(200_000, seed: 3)
        try await fixture.write(10_000, data)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        #expect(try await chunkObjects(fixture).count == 4)
        try await fixture.volume.dropCache()
        #expect(fixture.volume.cacheUsage.cachedBytes == 0)
        #expect(try fixture.volume.diskUsage() < 65536)
        let back = try await fixture.read(10_000, 200_000)
        let same = back == data
        #expect(same)
        #expect(fixture.volume.cacheCounts.misses >= 1)
        await fixture.volume.waitForDownloads()  // (the read had them from memory before they were written)
        #expect(fixture.volume.cacheUsage.cachedBytes > 0)
        await fixture.close()
    }

    @Test func aReadLargerThanTheCacheIsServedWhileEvictionRuns() async throws {
        let fixture = try await VolumeFixture(size: 4 << 20, chunkSize: 65536, kind: .cached)
        let data = pattern(4 << 20, seed: 5)
        try await fixture.write(0, data)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.dropCache()
        let cache = CacheManager(capacity: 2 * 65536, logger: Logger(label: "test"))
        cache.add(fixture.volume)
        cache.start()
        for _ in 0..<3 {
            let back = try await fixture.read(0, 4 << 20)
            let same = back == data
            #expect(same)
        }
        await cache.stop()
        await fixture.close()
    }

    /// Reads of cached blocks take no gates: each is checked against the evictions begun while
    /// it read the file. Readers and an evictor that empties the cache over and over: every read
    /// returns the data (a read that missed an eviction would find a punched hole: zeros).
    @Test func readsRacingEvictionsReturnTheData() async throws {
        let fixture = try await VolumeFixture(size: 8 * 65536, chunkSize: 65536, kind: .cached)
        let data = pattern(8 * 65536, seed: 21)
        try await fixture.write(0, data)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        let wrong = try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for _ in 0..<40 {
                    try await fixture.volume.dropCache()
                    try await Task.sleep(for: .milliseconds(2))
                }
                return 0
            }
            for reader in 0..<4 {
                group.addTask {
                    var random = SplitMix(seed: UInt64(reader))
                    var wrong = 0
                    for _ in 0..<300 {
                        let offset = Int(random.next() % UInt64(8 * 65536 - 20000))
                        let length = 1 + Int(random.next() % 20000)
                        let read = try await fixture.read(UInt64(offset), length)
                        if read != Array(data[offset..<(offset + length)]) { wrong += 1 }
                    }
                    return wrong
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(wrong == 0)
        #expect(fixture.volume.cacheCounts.hits > 0)
        await fixture.close()
    }

    @Test func theEvictorBringsAnOverfullCacheUnderItsSizeOldestChunksFirstAcrossVolumes() async throws {
        let older = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        let newer = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        let data = pattern(1 << 20, seed: 6)
        for fixture in [older, newer] {
            try await fixture.write(0, data)
            fixture.volume.startUploader()
            try await fixture.volume.waitUntilUploaded()
        }
        // Used in this order: all of `older`, then `newer`'s first ten chunks, then its last six.
        _ = try await older.read(0, 1 << 20)
        _ = try await newer.read(0, 10 * 65536)
        _ = try await newer.read(10 * 65536, 6 * 65536)
        let cache = CacheManager(capacity: 6 * 65536, logger: Logger(label: "test"))
        cache.add(older.volume)
        cache.add(newer.volume)
        cache.start()
        for _ in 0..<500 where cache.status().used > cache.capacity { try await Task.sleep(for: .milliseconds(20)) }
        #expect(cache.status().used <= 6 * 65536)
        #expect(older.volume.cacheUsage.cachedBytes == 0)
        // The six chunks used last are still cached: reading them downloads nothing.
        let misses = newer.volume.cacheCounts.misses
        let back = try await newer.read(10 * 65536, 6 * 65536)
        #expect(back == Array(data[(10 * 65536)..<(16 * 65536)]))
        #expect(newer.volume.cacheCounts.misses == misses)
        await cache.stop()
        await older.close()
        await newer.close()
    }

    @Test func partialWritesToEvictedChunksKeepTheRestOfTheChunk() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        let original = pattern(65536, seed: 9)
        try await fixture.write(0, original)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.dropCache()
        // A whole block and a few sectors inside another block, both without the rest present.
        let block = [UInt8](repeating: 0xEE, count: 4096)
        try await fixture.write(8192, block)
        try await fixture.write(20_000 + 100, [UInt8](repeating: 0xDD, count: 512))
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.dropCache()
        var expected = original
        expected.replaceSubrange(8192..<12288, with: block)
        expected.replaceSubrange(20_100..<20_612, with: [UInt8](repeating: 0xDD, count: 512))
        let back = try await fixture.read(0, 65536)
        let same = back == expected
        #expect(same)
        await fixture.close()
    }

    @Test func trimmedChunksLoseTheirObjectsAfterAFlush() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        try await fixture.write(65536, pattern(65536, seed: 1))
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        #expect(try await chunkObjects(fixture).count == 1)
        await fixture.volume.stopUploader()
        try await fixture.volume.trim(offset: 65536, length: 65536, fua: false, on: fixture.loop).get()
        try await fixture.volume.flush(on: fixture.loop).get()
        var remaining = try await chunkObjects(fixture)
        for _ in 0..<50 where !remaining.isEmpty {
            try await Task.sleep(for: .milliseconds(20))
            remaining = try await chunkObjects(fixture)
        }
        #expect(remaining.isEmpty)
        #expect(try await fixture.holds(0, at: 65536, count: 65536))
        await fixture.close()
    }

    @Test func aCrashBeforeUploadLeavesChunksDirtyAndTheyAreUploadedAfterRestart() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        let data = pattern(100_000, seed: 5)
        try await fixture.write(0, data)
        try await fixture.volume.flush(on: fixture.loop).get()
        try await fixture.reopen()
        #expect(fixture.volume.cacheUsage.dirtyChunks == 2)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        #expect(try await chunkObjects(fixture).count == 2)
        try await fixture.volume.dropCache()
        let back = try await fixture.read(0, 100_000)
        let same = back == data
        #expect(same)
        await fixture.close()
    }

    @Test(.enabled(if: ThinVolumeTests.kernelTellsCachedPages))
    func largeWritesGoAroundThePageCacheWhileUploadsCatchUp() async throws {
        let fixture = try await VolumeFixture(
            size: 8 << 20, chunkSize: 1 << 20, kind: .cached,
            settings: RemoteSettings(uploadDelay: .seconds(3600), dirtyLimit: 4 << 20))
        let chunks = (0..<3).map { pattern(1 << 20, seed: UInt8($0 + 1)) }
        // Memory a direct write can take as it is, as the NBD server receives large payloads.
        func write(_ index: Int) async throws {
            var buffer = ByteBuffer.aligned(capacity: 1 << 20)
            buffer.writeBytes(chunks[index])
            try await fixture.volume.write(offset: UInt64(index) << 20, data: buffer, fua: false, on: fixture.loop)
                .get()
        }
        func cached(_ index: Int) throws -> Bool {
            guard let region = fixture.volume.file.cachedRegion(offset: UInt64(index) << 20, length: 1 << 20) else {
                return false
            }
            try region.fileHandle.close()
            return true
        }
        // One dirty chunk of four: no hurry, the write goes through the page cache.
        try await write(0)
        #expect(try cached(0))
        // Two of four, half the upload buffer: uploads catch up, and the writes go around it.
        try await write(1)
        try await write(2)
        #expect(try cached(1) == false)
        #expect(try cached(2) == false)
        for index in 0..<3 {
            let back = try await fixture.read(UInt64(index) << 20, 1 << 20)
            #expect(back == chunks[index])
        }
        // And they are in the file, as durable as any once synced: a reopened volume reads them.
        try await fixture.volume.flush(on: fixture.loop).get()
        try await fixture.reopen()
        for index in 0..<3 {
            let back = try await fixture.read(UInt64(index) << 20, 1 << 20)
            #expect(back == chunks[index])
        }
        await fixture.close()
    }

    @Test func aChangedChunkWaitsForTheUploadDelayUnlessUploadsAreHurriedOrTheBufferIsHalfFull() async throws {
        let fixture = try await VolumeFixture(
            size: 1 << 20, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(uploadConcurrency: 1, uploadDelay: .seconds(3600), dirtyLimit: 16 * 65536))
        try await fixture.write(0, pattern(4096, seed: 1))
        fixture.volume.startUploader()
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await chunkObjects(fixture).isEmpty)
        // Waiting for the uploads lifts the delay: this returns long before an hour.
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await fixture.volume.waitUntilUploaded()
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                return false
            }
            let uploaded = try await group.next()
            #expect(uploaded == true)
            group.cancelAll()
        }
        #expect(try await chunkObjects(fixture).count == 1)
        // So does a hurry (a flush through the gateway asks for one, and a waiter again as it
        // waits: a hurry lasts a second, which a busy machine may spend elsewhere).
        try await fixture.write(9 * 65536, pattern(4096, seed: 9))
        for _ in 0..<400 where try await chunkObjects(fixture).count < 2 {
            fixture.volume.hurryUploads()
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try await chunkObjects(fixture).count == 2)
        // And half the upload buffer dirty: uploads go, one at a time, until it is less than a
        // quarter again (not only until it is less than half: a writer keeping it near half
        // would have them stop and start); the rest wait out the delay. The hurry has ended.
        try await Task.sleep(for: .milliseconds(1500))
        for index in 1...8 { try await fixture.write(UInt64(index * 65536), pattern(4096, seed: UInt8(index))) }
        for _ in 0..<400 where fixture.volume.cacheUsage.dirtyChunks >= 4 {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(fixture.volume.cacheUsage.dirtyChunks < 4)
        #expect(try await chunkObjects(fixture).count > 6)
        try await Task.sleep(for: .milliseconds(500))
        #expect(fixture.volume.cacheUsage.dirtyChunks > 0)
        await fixture.close()
    }

    @Test func aChunkThatNeverRestsIsUploadedOnceItHasWaitedSixtyUploadDelays() async throws {
        let fixture = try await VolumeFixture(
            size: 4 * 65536, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(uploadDelay: .milliseconds(100)))
        fixture.volume.startUploader()
        // Every chunk changes far more often than every 100 ms, for as long as the test waits:
        // without a limit on the delay nothing would ever go to the store.
        var seed: UInt8 = 0
        let deadline = ContinuousClock.now + .seconds(30)
        while try await chunkObjects(fixture).isEmpty, ContinuousClock.now < deadline {
            for chunk in 0..<4 {
                seed &+= 1
                try await fixture.write(UInt64(chunk * 65536), pattern(4096, seed: seed))
            }
        }
        #expect(try await chunkObjects(fixture).isEmpty == false, "no chunk was uploaded while it kept changing")
        await fixture.close()
    }

    @Test func inTheBackgroundARestingChunkWaitsUntilTheWholeVolumeRests() async throws {
        let fixture = try await VolumeFixture(
            size: 4 * 65536, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(uploadDelay: .seconds(2)))
        var previousCall = ContinuousClock.now
        try await fixture.write(0, pattern(4096, seed: 1))
        fixture.volume.startUploader()
        // Chunk 0 rests for two upload delays while chunk 1 keeps changing: neither goes up (60
        // delays are two minutes away). A machine too starved to write within an upload delay
        // lets the volume rest, and then the test cannot tell.
        var seed: UInt8 = 1
        let busy = ContinuousClock.now + .seconds(4)
        var longestRest = Duration.zero
        while ContinuousClock.now < busy {
            seed &+= 1
            let call = ContinuousClock.now
            try await fixture.write(65536, pattern(4096, seed: seed))
            // The volume changed during the previous call and during this one: it rested less.
            longestRest = max(longestRest, ContinuousClock.now - previousCall)
            previousCall = call
            try await Task.sleep(for: .milliseconds(50))
        }
        let stored = try await chunkObjects(fixture)
        let dirty = fixture.volume.cacheUsage.dirtyChunks
        if max(longestRest, ContinuousClock.now - previousCall) < .seconds(2) {
            #expect(stored.isEmpty)
            #expect(dirty == 2)
            // Once the volume rests, both go up without anyone waiting for them.
            for _ in 0..<600 where fixture.volume.cacheUsage.dirtyChunks > 0 {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(fixture.volume.cacheUsage.dirtyChunks == 0)
        } else {
            // The volume rested while starved and a chunk went up then: changed again since, it
            // waits sixty upload delays in the background, so the test waits for it instead.
            try await fixture.volume.waitUntilUploaded()
        }
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, 4096) == pattern(4096, seed: 1))
        #expect(try await fixture.read(65536, 4096) == pattern(4096, seed: seed))
        await fixture.close()
    }

    @Test func inTheBackgroundAChunkUploadedLatelyWaitsSixtyUploadDelaysBeforeItGoesUpAgain() async throws {
        let fixture = try await VolumeFixture(
            size: 4 * 65536, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(uploadDelay: .seconds(2), backgroundRoundDelay: .seconds(3600)))
        try await fixture.write(0, pattern(4096, seed: 1))
        fixture.volume.startUploader()
        // Uploaded and named at once (a waiter hurries the uploader); its snapshot starts the
        // chunk's 120 s. The hurry lasts a second past the last wait.
        try await fixture.volume.waitUntilUploaded()
        try await Task.sleep(for: .milliseconds(1500))
        // Two upload delays of rest would send a chunk never uploaded; this one waits.
        try await fixture.write(0, pattern(4096, seed: 2))
        try await Task.sleep(for: .seconds(4))
        #expect(try await chunkObjects(fixture).count == 1)
        #expect(fixture.volume.cacheUsage.dirtyChunks == 1)
        // Someone waiting for the uploads lifts the limit.
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, 4096) == pattern(4096, seed: 2))
        await fixture.close()
    }

    @Test func stoppingTheUploaderNamesTheObjectsItStoredInTheBackground() async throws {
        let fixture = try await VolumeFixture(
            size: 4 * 65536, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(backgroundRoundDelay: .seconds(3600)))
        try await fixture.write(65536, pattern(4096, seed: 3))
        fixture.volume.startUploader()
        for _ in 0..<600 where try await chunkObjects(fixture).isEmpty {
            try await Task.sleep(for: .milliseconds(50))
        }
        // Its background round is an hour away: stopping runs it now.
        await fixture.volume.stopUploader()
        #expect(fixture.volume.cacheUsage.dirtyChunks == 0)
        try await fixture.reopen()
        #expect(fixture.volume.cacheUsage.dirtyChunks == 0)
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(65536, 4096) == pattern(4096, seed: 3))
        await fixture.close()
    }

    @Test func aWriteThatWouldOverflowTheUploadBufferFailsWithENOSPCPastTheTimeout() async throws {
        let fixture = try await VolumeFixture(
            size: 1 << 20, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(dirtyLimit: 2 * 65536, backpressureTimeout: .milliseconds(200)))
        try await fixture.write(0, pattern(4096, seed: 1))
        try await fixture.write(65536, pattern(4096, seed: 2))
        try await fixture.write(1000, pattern(100, seed: 3))  // an already dirty chunk is always admitted
        await #expect {
            try await fixture.write(3 * 65536, pattern(4096, seed: 4))
        } throws: { error in
            (error as? BlockDeviceError)?.kind == .noSpace
        }
        #expect(try await fixture.holds(0, at: 3 * 65536, count: 4096))
        await fixture.close()
    }

    @Test func aWriteWaitsForUploadsToMakeRoom() async throws {
        let fixture = try await VolumeFixture(
            size: 1 << 20, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(dirtyLimit: 2 * 65536, backpressureTimeout: .seconds(120)))
        try await fixture.write(0, pattern(4096, seed: 1))
        try await fixture.write(65536, pattern(4096, seed: 2))
        var buffer = ByteBuffer()
        buffer.writeBytes(pattern(4096, seed: 4))
        let waiting = fixture.volume.write(offset: 3 * 65536, data: buffer, fua: false, on: fixture.loop)
        fixture.volume.startUploader()
        try await waiting.get()
        try await fixture.volume.waitUntilUploaded()
        #expect(fixture.volume.cacheUsage.dirtyChunks == 0)
        let same = try await fixture.read(3 * 65536, 4096) == pattern(4096, seed: 4)
        #expect(same)
        await fixture.close()
    }

    @Test func theObjectStoreAloneRebuildsTheChunkMap() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        try await fixture.write(4096, pattern(150_000, seed: 8))
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        let (records, next, _) = try await Volume.chunksInStore(
            uuid: fixture.record.uuid, geometry: fixture.volume.geometry, store: fixture.objects!)
        #expect(records.map(\.index) == [0, 1, 2])
        #expect(records.allSatisfy { $0.remoteGeneration < next })
        #expect(records.allSatisfy { $0.remoteGeneration > 0 && !$0.dirty })
        await fixture.close()
    }
}

/// Random operations on a cached volume whose cache holds only a few chunks, with the uploader
/// and the evictor running and simulated crashes, against an in-memory model.
@Suite struct CachedVolumeModelTests {
    static let size = 2 << 20

    @Test(arguments: [UInt64(11), 12])
    func randomOperationsWithATinyCacheMatchTheModel(_ seed: UInt64) async throws {
        let fixture = try await VolumeFixture(size: UInt64(Self.size), chunkSize: 65536, kind: .cached)
        var cache = CacheManager(capacity: 4 * 65536, logger: Logger(label: "test"))
        cache.add(fixture.volume)
        cache.start()
        var model = ThinVolumeModelTests.Model(size: Self.size)
        var random = SplitMix(seed: seed)
        let loop = fixture.loop
        var mismatches = 0
        // Changes since the last flush: a crash may undo them (the contract allows losing
        // unflushed writes), so a reopening forgets those bytes.
        var unflushed: [Range<Int>] = []
        for step in 0..<300 {
            let offset = Int(random.next() % UInt64(Self.size - 1))
            let length = 1 + Int(random.next() % UInt64(min(150_000, Self.size - offset)))
            switch random.next() % 12 {
            case 0...3:
                let byte = UInt8(truncatingIfNeeded: random.next())
                let data = (0..<length).map { UInt8(truncatingIfNeeded: $0) &+ byte | 1 }
                let fua = random.next() % 8 == 0
                try await fixture.write(UInt64(offset), data, fua: fua)
                model.write(offset, data)
                if fua { unflushed.removeAll() } else { unflushed.append(offset..<(offset + length)) }
            case 4:
                try await fixture.volume.trim(offset: UInt64(offset), length: UInt64(length), fua: false, on: loop)
                    .get()
                model.forget(offset..<(offset + length))
            case 5:
                try await fixture.volume.writeZeroes(
                    offset: UInt64(offset), length: UInt64(length), options: random.next() % 2 == 0 ? [.noHole] : [],
                    on: loop
                ).get()
                model.write(offset, [UInt8](repeating: 0, count: length))
                unflushed.append(offset..<(offset + length))
            case 6:
                try await fixture.volume.flush(on: loop).get()
                unflushed.removeAll()
            case 7 where step % 5 == 0:
                await cache.stop()
                try await fixture.reopen()
                for range in unflushed { model.forget(range) }
                unflushed.removeAll()
                cache = CacheManager(capacity: 4 * 65536, logger: Logger(label: "test"))
                cache.add(fixture.volume)
                cache.start()
            default:
                let read = try await fixture.read(UInt64(offset), length)
                let wrong = model.mismatches(offset, read)
                mismatches += wrong.count
            }
        }
        try await fixture.volume.waitUntilUploaded()
        mismatches += model.mismatches(0, try await fixture.read(0, Self.size)).count
        try await fixture.volume.dropCache()
        mismatches += model.mismatches(0, try await fixture.read(0, Self.size)).count
        #expect(mismatches == 0)
        await cache.stop()
        await fixture.close()
    }
}
