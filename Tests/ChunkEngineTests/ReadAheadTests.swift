import Logging
import TestSupport
import Testing
import VolumeTestSupport

@testable import ChunkEngine

/// Read-ahead of cached volumes: which reads count as sequential and what they download ahead
/// (pure logic), and on a real volume over the embedded object store, that a sequential reader
/// finds its next chunks already cached, that random reads download nothing ahead, that what
/// read-ahead brings in reads back right even when writes land meanwhile, and that chunks
/// evicted unread are counted as wasted.
@Suite struct ReadAheadTests {
    private let chunk: UInt64 = 1 << 20

    private func observe(_ reads: inout SequentialReads, _ offset: UInt64, _ length: UInt64 = 1 << 20, limit: Int = 8)
        -> SequentialReads.Verdict
    {
        reads.observe(offset: offset, length: length, chunkSize: chunk, chunks: 100, limit: limit)
    }

    @Test func aStreamReadsAheadFromItsSecondReadWithAWindowThatDoublesUpToTheLimit() {
        var reads = SequentialReads()
        #expect(observe(&reads, 0) == .init(sequential: false, ahead: 0..<0))
        #expect(observe(&reads, chunk) == .init(sequential: true, ahead: 2..<3))
        #expect(observe(&reads, 2 * chunk) == .init(sequential: true, ahead: 3..<5))
        #expect(observe(&reads, 3 * chunk) == .init(sequential: true, ahead: 5..<8))
        #expect(observe(&reads, 4 * chunk) == .init(sequential: true, ahead: 8..<13))
        #expect(observe(&reads, 5 * chunk) == .init(sequential: true, ahead: 13..<14))
        #expect(reads.streams.count == 1)
    }

    @Test func smallReadsWithinAChunkAskForEachChunkAheadOnce() {
        var reads = SequentialReads()
        var asked: [Int] = []
        for offset in stride(from: UInt64(0), to: 4 * chunk, by: 128 << 10) {
            asked += Array(observe(&reads, offset, 128 << 10, limit: 2).ahead)
        }
        #expect(asked == [1, 2, 3, 4, 5])
    }

    @Test func theWindowStopsAtTheLastChunkAndALimitOfNothingReadsNothingAhead() {
        var reads = SequentialReads()
        _ = observe(&reads, 97 * chunk)
        #expect(observe(&reads, 98 * chunk) == .init(sequential: true, ahead: 99..<100))
        #expect(observe(&reads, 99 * chunk) == .init(sequential: true, ahead: 0..<0))
        var off = SequentialReads()
        _ = observe(&off, 0, limit: 0)
        #expect(observe(&off, chunk, limit: 0) == .init(sequential: true, ahead: 0..<0))
    }

    @Test func randomReadsStartStreamsButReadNothingAhead() {
        var reads = SequentialReads()
        for offset in [40, 7, 93, 18, 61, 2, 77].map({ UInt64($0) * chunk }) {
            #expect(observe(&reads, offset) == .init(sequential: false, ahead: 0..<0))
        }
        #expect(reads.streams.count == SequentialReads.maximumStreams)
    }

    @Test func interleavedStreamsAreFollowedEachOnItsOwn() {
        var reads = SequentialReads()
        _ = observe(&reads, 0)
        _ = observe(&reads, 50 * chunk)
        #expect(observe(&reads, chunk).ahead == 2..<3)
        #expect(observe(&reads, 51 * chunk).ahead == 52..<53)
        #expect(observe(&reads, 2 * chunk).ahead == 3..<5)
        #expect(reads.streams.count == 2)
    }

    // MARK: - On a volume

    private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13) ^ seed }
    }

    /// A cached volume of `chunks` 64 KiB chunks of data, all uploaded and evicted.
    private func evictedVolume(chunks: Int, readAhead: UInt64 = 4 * 65536) async throws -> (VolumeFixture, [UInt8]) {
        let fixture = try await VolumeFixture(
            size: UInt64(chunks) * 65536, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(readAhead: readAhead))
        let data = pattern(chunks * 65536, seed: 7)
        try await fixture.write(0, data)
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.dropCache()
        return (fixture, data)
    }

    private func waitForReadAhead(_ volume: Volume) async throws {
        for _ in 0..<500
        where volume.readAheadCounts.bytes == 0 || volume.remote!.readAhead.withLockedValue({ $0.inFlight }) > 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        await volume.waitForDownloads()
    }

    @Test(.enabled(if: ThinVolumeTests.kernelTellsCachedPages))
    func readsSentAsRegionsKeepTheirStreamReadingAhead() async throws {
        let fixture = try await VolumeFixture(
            size: 16 * 65536, chunkSize: 65536, kind: .cached, settings: RemoteSettings(readAhead: 4 * 65536))
        try await fixture.write(0, pattern(16 * 65536, seed: 3))
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        try await fixture.volume.flush(on: fixture.loop).get()
        for _ in 0..<100 where fixture.volume.evictionCandidates(limit: 16).count < 16 {
            try await Task.sleep(for: .milliseconds(10))
        }
        // The first four chunks cached, the rest only in the store.
        #expect(await fixture.volume.evict(Array(4..<16)) == 12)
        for offset: UInt64 in [0, 131_072] {
            let read = try #require(fixture.volume.readRegion(offset: offset, length: 131_072))
            try read.region.fileHandle.close()
            read.sent()
        }
        try await waitForReadAhead(fixture.volume)
        #expect(fixture.volume.readAheadCounts.bytes > 0)
        await fixture.close()
    }

    @Test func aSequentialReaderFindsTheNextChunksCachedAndReadsThemRight() async throws {
        let (fixture, data) = try await evictedVolume(chunks: 16)
        var back: [UInt8] = []
        for offset in stride(from: 0, to: 16 * 65536, by: 32768) {
            back += try await fixture.read(UInt64(offset), 32768)
            if offset == 65536 {
                // The second read continued the first: chunks 2… come in without being asked.
                try await waitForReadAhead(fixture.volume)
                #expect(fixture.volume.cacheUsage.cachedBytes >= 3 * 65536)
            }
        }
        let same = back == data
        #expect(same)
        let counts = fixture.volume.readAheadCounts
        #expect(counts.bytes == 15 * 65536)
        #expect(counts.hits == 15)
        #expect(counts.wastedBytes == 0)
        await fixture.close()
    }

    @Test func randomReadsDownloadOnlyWhatTheyAskFor() async throws {
        let (fixture, data) = try await evictedVolume(chunks: 16)
        for chunk in [9, 2, 14, 5, 11, 0] {
            let offset = chunk * 65536 + 8192
            let back = try await fixture.read(UInt64(offset), 4096)
            let same = back == Array(data[offset..<(offset + 4096)])
            #expect(same)
        }
        #expect(fixture.volume.readAheadCounts.bytes == 0)
        // (A read returns once its blocks are downloaded; its fill writes them to the cache.)
        #expect(try await eventually(within: 60) { fixture.volume.cacheUsage.cachedBytes == 6 * 4096 })
        await fixture.close()
    }

    @Test func writesThatLandWhileAChunkIsReadAheadAreKept() async throws {
        let (fixture, data) = try await evictedVolume(chunks: 8, readAhead: 6 * 65536)
        var expected = data
        _ = try await fixture.read(0, 65536)
        _ = try await fixture.read(65536, 65536)
        _ = try await fixture.read(2 * 65536, 65536)
        // Read-ahead of chunks 3 and 4 may be under way: overwrite a block in each chunk after 2.
        for chunk in 3..<8 {
            let block = [UInt8](repeating: UInt8(chunk), count: 4096)
            try await fixture.write(UInt64(chunk * 65536 + 4096), block)
            expected.replaceSubrange((chunk * 65536 + 4096)..<(chunk * 65536 + 8192), with: block)
        }
        try await waitForReadAhead(fixture.volume)
        let back = try await fixture.read(0, 8 * 65536)
        let same = back == expected
        #expect(same)
        await fixture.close()
    }

    @Test func chunksReadAheadAndEvictedUnreadAreCountedAsWasted() async throws {
        let (fixture, _) = try await evictedVolume(chunks: 16)
        _ = try await fixture.read(0, 65536)
        _ = try await fixture.read(65536, 65536)
        try await waitForReadAhead(fixture.volume)
        #expect(fixture.volume.readAheadCounts.bytes == 65536)
        try await fixture.volume.dropCache()
        #expect(fixture.volume.readAheadCounts.wastedBytes == 65536)
        #expect(fixture.volume.readAheadCounts.hits == 0)
        await fixture.close()
    }

    @Test func theCacheManagerGivesAWindowAnEighthOfTheCache() async throws {
        let (fixture, data) = try await evictedVolume(chunks: 16, readAhead: 16 << 20)
        let cache = CacheManager(capacity: 16 * 65536, logger: Logger(label: "test"))
        cache.add(fixture.volume)
        _ = try await fixture.read(0, 65536)
        _ = try await fixture.read(65536, 65536)
        _ = try await fixture.read(2 * 65536, 65536)
        try await waitForReadAhead(fixture.volume)
        // Two chunks of window (128 KiB of 1 MiB): chunk 2 at the second read, 3 and 4 at the third.
        #expect(fixture.volume.readAheadCounts.bytes == 3 * 65536)
        #expect(cache.status().readAheadBytes == 3 * 65536)
        #expect(cache.status().readAheadHits == 1)
        let back = try await fixture.read(0, 16 * 65536)
        let same = back == data
        #expect(same)
        await cache.stop()
        await fixture.close()
    }

    @Test func aStreamPastAFullCacheIsServedFromMemoryAndLeavesTheCacheAsItWas() async throws {
        let (fixture, data) = try await evictedVolume(chunks: 16)
        fixture.volume.streamPastCache(true)
        let random = try await fixture.read(9 * 65536 + 8192, 4096)
        #expect(random == Array(data[(9 * 65536 + 8192)..<(9 * 65536 + 12288)]))
        var back: [UInt8] = []
        for offset in stride(from: 0, to: 16 * 65536, by: 32768) {
            back += try await fixture.read(UInt64(offset), 32768)
        }
        let same = back == data
        #expect(same)
        try await waitForReadAhead(fixture.volume)
        // Cached: chunk 0 (the stream's first chunk, read before it was one) and chunk 9, whose
        // block the random read cached (a chunk partly cached is completed there); the other
        // chunks were read ahead and served from memory alone.
        #expect(try await eventually(within: 60) { fixture.volume.cacheUsage.cachedBytes == 2 * 65536 })
        #expect(fixture.volume.readAheadCounts.bytes == 15 * 65536 - 4096)
        #expect(fixture.volume.readAheadCounts.hits == 15)
        #expect(fixture.volume.table.landed.bytes == 0)

        // With room again, the next pass caches what it reads.
        fixture.volume.streamPastCache(false)
        back = []
        for offset in stride(from: 0, to: 16 * 65536, by: 65536) {
            back += try await fixture.read(UInt64(offset), 65536)
        }
        let sameAgain = back == data
        #expect(sameAgain)
        #expect(try await eventually(within: 60) { fixture.volume.cacheUsage.cachedBytes == 16 * 65536 })
        await fixture.close()
    }

    @Test func theCacheManagerLetsStreamsPastTheCacheWhileItHasNoRoomForAWindow() async throws {
        let (fixture, _) = try await evictedVolume(chunks: 32, readAhead: 16 << 20)
        let cache = CacheManager(capacity: 16 * 65536, logger: Logger(label: "test"))
        cache.add(fixture.volume)
        cache.start()
        // Whole chunks read backwards (no stream): 15 of 16 chunks used, less than a window
        // (an eighth, 2 chunks) free.
        for chunk in (0..<15).reversed() { _ = try await fixture.read(UInt64(chunk * 65536), 65536) }
        #expect(try await eventually(within: 60) { fixture.volume.streamsPastCache })
        cache.capacity = 64 * 65536
        #expect(try await eventually(within: 60) { !fixture.volume.streamsPastCache })
        await cache.stop()
        await fixture.close()
    }
}
