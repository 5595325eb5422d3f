import BlockDevice
import ChunkEngine
import Foundation
import Logging
import NIOCore
import Testing
import VolumeTestSupport

/// The crash-state explorer for volumes: seeded workloads of writes, trims, zeroing, flushes,
/// FUA writes and flushes that wait for uploads, with uploads (one PUT in 8 failing, before or
/// after the store acts) and eviction running on a cached volume. Crash states (what a power
/// loss leaves: any subset of the unsynced page writes, some torn at sectors; the database as
/// of its last commit; the store as of its completed requests, each request in flight done or
/// not) come two ways:
/// - captured at recorded events while the volume runs (every sync and store request, sent and
///   done, and points between: see `CrashStates`), each written out and opened on its own, with
///   a store-only recover of its store;
/// - at intervals, a power cut of the running volume, which is reopened and goes on from what
///   the cut left (so later states follow a recovery).
/// Every sector must read its content as of the last flush or content written after it (as of
/// the last flush --wait-upload, for a store-only recover); a cached volume's records must name
/// objects that exist, and its uploader must converge. `make test` explores
/// `BLOCKGATE_CRASH_STATES` states (96 by default) across the workloads; `make soak
/// CRASH_STATES=N` explores more. A failure names the seed, the state and its event, and keeps
/// the state's directory; a power cut of the running volume names its step.
@Suite struct PowerLossTests {
    /// Crash states to explore in all, spread over the workloads.
    static let budget = ProcessInfo.processInfo.environment["BLOCKGATE_CRASH_STATES"].flatMap(Int.init) ?? 96
    static let workloads: [(Volume.Kind, UInt64)] = [(.cached, 21), (.cached, 22), (.cached, 23), (.thin, 24)]
    /// Operations between two cuts.
    static let interval = 60

    static let size = 4 << 20
    static let chunkSize = 65536

    /// A chunk downloaded again after eviction, then dirtied by a write elsewhere in it: the
    /// download was never synced, and a power cut tears it. It must not be served as data.
    @Test func aTornDownloadIntoADirtyChunkIsNotServed() async throws {
        let (fixture, world) = try await VolumeFixture.exploring(
            size: UInt64(Self.size), chunkSize: Self.chunkSize, kind: .cached)
        let original = (0..<Self.chunkSize).map { UInt8(truncatingIfNeeded: $0 / 512 &* 7 | 1) }
        try await fixture.write(0, original)
        try await fixture.uploadAll()
        try await fixture.volume.dropCache()
        try await fixture.volume.flush(on: fixture.loop).get()  // the eviction's punch is durable
        _ = try await fixture.read(0, 4096)  // downloads block 0, unsynced
        try await fixture.write(32768, [UInt8](repeating: 0xAB, count: 4096))  // dirties the chunk
        try await fixture.volume.flush(on: fixture.loop).get()
        _ = try await fixture.read(8192, 4096)  // downloads block 2 after the flush, unsynced
        await fixture.volume.waitForDownloads()  // (the reader had it from memory before it was written)
        var random = SplitMix(seed: 1)
        let outcome = try world.powerLoss.powerLoss(path: fixture.path, using: &random, choice: .tearLast)
        #expect(outcome.torn > 0)
        try await fixture.reopen()
        var expected = original
        expected.replaceSubrange(32768..<36864, with: [UInt8](repeating: 0xAB, count: 4096))
        let same = try await fixture.read(0, Self.chunkSize) == expected
        #expect(same, "a torn download was served as data after the power loss")
        await fixture.close()
    }

    /// Chunks read ahead of a sequential reader, one of them dirtied and flushed meanwhile: the
    /// downloads were never synced, and a power cut tears them. Only what was flushed, and the
    /// store's data, may be read after it.
    @Test func aPowerCutWhileChunksAreReadAheadLosesNothing() async throws {
        let (fixture, world) = try await VolumeFixture.exploring(
            size: UInt64(Self.size), chunkSize: Self.chunkSize, kind: .cached,
            settings: RemoteSettings(readAhead: UInt64(4 * Self.chunkSize)))
        var expected = (0..<(8 * Self.chunkSize)).map { UInt8(truncatingIfNeeded: $0 / 512 &* 11 | 1) }
        try await fixture.write(0, expected)
        try await fixture.uploadAll()
        try await fixture.volume.dropCache()
        try await fixture.volume.flush(on: fixture.loop).get()  // the evictions' punches are durable
        func scan(_ chunks: Range<Int>) async throws {
            for offset in stride(
                from: chunks.lowerBound * Self.chunkSize, to: chunks.upperBound * Self.chunkSize, by: 16384)
            {
                _ = try await fixture.read(UInt64(offset), 16384)
            }
        }
        try await scan(0..<2)  // chunks 1 to 5 come in ahead
        let block = [UInt8](repeating: 0xCD, count: 4096)
        try await fixture.write(UInt64(3 * Self.chunkSize + 8192), block)  // dirties a chunk read ahead
        expected.replaceSubrange((3 * Self.chunkSize + 8192)..<(3 * Self.chunkSize + 12288), with: block)
        try await fixture.volume.flush(on: fixture.loop).get()
        try await scan(2..<4)  // chunks 6 and 7 come in ahead, unsynced
        await fixture.volume.stopReadAhead()
        #expect(fixture.volume.readAheadCounts.bytes > 0)
        var random = SplitMix(seed: 2)
        let outcome = try world.powerLoss.powerLoss(path: fixture.path, using: &random, choice: .tearLast)
        #expect(outcome.torn > 0)
        try await fixture.reopen()
        let same = try await fixture.read(0, 8 * Self.chunkSize) == expected
        #expect(same, "a torn read-ahead download was served as data after the power loss")
        await fixture.close()
    }

    /// Chunks written and uploaded with no flush: the rounds that named the uploads did not sync
    /// the file, so a power cut tears their blocks there. Every byte then reads as uploaded,
    /// from the store, and none of the torn blocks stays in the file or in the cache's count.
    @Test func chunksNamedWithoutASyncAreReadFromTheStoreAfterAPowerCut() async throws {
        let (fixture, world) = try await VolumeFixture.exploring(
            size: UInt64(Self.size), chunkSize: Self.chunkSize, kind: .cached)
        let data = (0..<(4 * Self.chunkSize)).map { UInt8(truncatingIfNeeded: $0 / 512 &* 13 | 1) }
        try await fixture.write(0, data)
        try await fixture.uploadAll()
        #expect(world.powerLoss.pendingCount(path: fixture.path) > 0, "naming the uploads synced the file")
        #expect(fixture.volume.cacheUsage.cachedBytes == UInt64(data.count))
        var random = SplitMix(seed: 3)
        let outcome = try world.powerLoss.powerLoss(path: fixture.path, using: &random, choice: .tearLast)
        #expect(outcome.torn > 0)
        try await fixture.reopen()
        #expect(fixture.volume.cacheUsage.cachedBytes == 0)
        #expect(try fixture.volume.diskUsage() == 0, "torn blocks the records do not count stay in the file")
        let same = try await fixture.read(0, data.count) == data
        #expect(same, "a chunk named without a sync was read from its torn blocks")
        await fixture.close()
    }

    /// A chunk trimmed in places after a flush, uploaded and named without a sync, then evicted:
    /// neither the trim's punches nor the eviction's were synced, and a power cut loses them
    /// both. The trimmed blocks must read as zeros after it, as the store holds them, not as
    /// what the flush left in the file; and the chunk's next upload must store them as zeros.
    @Test func anEvictedChunkNamedWithoutASyncLosesNoTrimToAPowerCut() async throws {
        let (fixture, world) = try await VolumeFixture.exploring(
            size: UInt64(Self.size), chunkSize: Self.chunkSize, kind: .cached)
        var expected = [UInt8](repeating: 0x5A, count: Self.chunkSize)
        try await fixture.write(0, expected)
        try await fixture.volume.flush(on: fixture.loop).get()
        // Every other block trimmed: more runs than one read of the file takes apart.
        for block in stride(from: 0, to: Self.chunkSize / 4096, by: 2) {
            try await fixture.volume.trim(offset: UInt64(block * 4096), length: 4096, fua: false, on: fixture.loop)
                .get()
            expected.replaceSubrange((block * 4096)..<((block + 1) * 4096), with: [UInt8](repeating: 0, count: 4096))
        }
        try await fixture.uploadAll()
        try await fixture.volume.dropCache()
        #expect(fixture.volume.cacheUsage.cachedBytes == 0)
        var random = SplitMix(seed: 6)
        let outcome = try world.powerLoss.powerLoss(path: fixture.path, using: &random, choice: .loseAll)
        #expect(outcome.lost > 0)
        try await fixture.reopen()
        _ = try await fixture.read(0, Self.chunkSize)  // downloads the chunk's valid blocks
        await fixture.volume.waitForDownloads()
        let same =
            try await fixture.read(0, 2 * Self.chunkSize) == expected + [UInt8](repeating: 0, count: Self.chunkSize)
        #expect(same, "a trimmed block read as the data a lost punch left in the file")
        let block = [UInt8](repeating: 0xC3, count: 4096)
        try await fixture.write(4096, block)  // the chunk is uploaded again, from the file
        expected.replaceSubrange(4096..<8192, with: block)
        try await fixture.uploadAll()
        let recovered = try await CrashStates<SectorModel>.readAfterStoreOnlyRecover(
            directory: fixture.directory, record: fixture.record)
        #expect(recovered.prefix(Self.chunkSize).elementsEqual(expected), "a trimmed block was stored as old data")
        await fixture.close()
    }

    /// A flush after uploads were named without a sync records their blocks as cached again:
    /// after a power cut they are read from the file, not downloaded.
    @Test func aFlushAfterNamingKeepsTheNamedChunksCached() async throws {
        let (fixture, world) = try await VolumeFixture.exploring(
            size: UInt64(Self.size), chunkSize: Self.chunkSize, kind: .cached)
        let data = (0..<(2 * Self.chunkSize)).map { UInt8(truncatingIfNeeded: $0 / 512 &* 5 | 1) }
        try await fixture.write(0, data)
        try await fixture.uploadAll()
        try await fixture.volume.flush(on: fixture.loop).get()
        var random = SplitMix(seed: 4)
        let outcome = try world.powerLoss.powerLoss(path: fixture.path, using: &random, choice: .tearLast)
        #expect(outcome.pages == 0)
        try await fixture.reopen()
        #expect(fixture.volume.cacheUsage.cachedBytes == UInt64(data.count))
        let same = try await fixture.read(0, data.count) == data
        #expect(same)
        await fixture.close()
    }

    /// A chunk written and flushed after its upload took a snapshot: the round that names the
    /// upload must keep the flushed blocks in the chunk's record (it syncs rather than record
    /// none present), so a power cut before the chunk is uploaded again loses nothing flushed.
    @Test func aChunkChangedAfterItsSnapshotKeepsItsFlushedBlocksWhenNamed() async throws {
        var flaky: FlakyObjectStore!
        let fixture = try await VolumeFixture(
            size: UInt64(Self.size), chunkSize: Self.chunkSize, kind: .cached,
            wrap: { PowerLossFileIO(wrapping: $0, recorder: CrashRecorder()) },
            wrapStore: { base in
                flaky = FlakyObjectStore(wrapping: base)
                return flaky
            })
        let powerLoss = try #require(fixture.io as? PowerLossFileIO)
        var expected = [UInt8](repeating: 0x3C, count: Self.chunkSize)
        try await fixture.write(0, expected)
        try await fixture.volume.flush(on: fixture.loop).get()
        flaky.holdPuts()
        fixture.volume.startUploader()
        fixture.volume.hurryUploads()
        try await Self.waitFor { flaky.heldPuts == 1 }  // the snapshot is taken
        let later = [UInt8](repeating: 0xD2, count: 4096)
        try await fixture.write(4096, later)
        expected.replaceSubrange(4096..<8192, with: later)
        try await fixture.volume.flush(on: fixture.loop).get()
        flaky.release(holding: true)
        fixture.volume.hurryUploads()
        // The chunk's next upload begins only once the round naming the first one is over.
        try await Self.waitFor { flaky.heldPuts == 1 && fixture.volume.uploadedChunks == 1 }
        flaky.release(failing: true)  // its retry waits 200 ms: the reopen stops it first
        var random = SplitMix(seed: 5)
        _ = try powerLoss.powerLoss(path: fixture.path, using: &random, choice: .tearLast)
        try await fixture.reopen()
        let same = try await fixture.read(0, Self.chunkSize) == expected
        #expect(same, "a block flushed after the upload's snapshot was lost when the upload was named")
        await fixture.close()
    }

    /// Waits until `condition` holds, failing after 10 s.
    static func waitFor(_ condition: () -> Bool) async throws {
        for _ in 0..<1000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        try #require(condition())
    }

    @Test(arguments: workloads)
    func flushedDataSurvivesPowerLoss(_ kind: Volume.Kind, _ seed: UInt64) async throws {
        let statesWanted = max(2, Self.budget / Self.workloads.count)
        // Background rounds come often, so that their commits meet the workload's operations.
        let settings = RemoteSettings(
            uploadConcurrency: 8, uploadSettleTime: .milliseconds(200), backgroundRoundDelay: .milliseconds(100))
        let (fixture, world) = try await VolumeFixture.exploring(
            size: UInt64(Self.size), chunkSize: Self.chunkSize, kind: kind, settings: settings)
        world.objects?.failPuts(oneIn: 8, seed: seed)
        let states = try CrashStates(
            world: world, model: SectorModel(size: Self.size), seed: seed, wanted: statesWanted)
        var random = SplitMix(seed: seed)
        var cache: CacheManager?
        var uploading = false
        func startBackground() {
            guard kind == .cached else { return }
            fixture.volume.startUploader()
            uploading = true
            // Room for a few chunks: reads evict and download again all the time.
            cache = CacheManager(capacity: UInt64(6 * Self.chunkSize), logger: Logger(label: "test"))
            cache!.add(fixture.volume)
            cache!.start()
        }
        startBackground()
        states.capturing(true)
        var problems: [String] = []
        var cuts: [PowerLossFileIO.Outcome] = []
        var tally = CrashStates<SectorModel>.Tally()
        let loop = fixture.loop
        let blocks = Self.size / 4096
        var step = 0
        var nextRead = 0
        var nextWrite = 0
        var readAhead: UInt64 = 0
        var uploadsFromMemory: UInt64 = 0
        var deferredWrites: UInt64 = 0
        var directWrites: UInt64 = 0
        while cuts.isEmpty || cuts.count + states.captured < statesWanted {
            step += 1
            let block = Int(random.next() % UInt64(blocks - 4))
            switch random.next() % 16 {
            case 0...5:
                // Mostly block-aligned, sometimes a few sectors inside a block, often a whole
                // chunk (whose bytes a cached volume keeps for the upload, or, when the cache
                // holds nothing of the chunk, defers writing into the file), often a piece of a
                // sequential stream, crossing chunks now and then (as a kernel's writes do).
                let unaligned = random.next() % 4 == 0
                let whole = !unaligned && random.next() % 3 == 0
                let streamed = !unaligned && !whole && random.next() % 4 != 0
                let piece = Self.chunkSize / 16 * 5
                let chunkStart = block * 4096 / Self.chunkSize * Self.chunkSize
                let offset: Int
                let length: Int
                if whole {
                    (offset, length) = (chunkStart, Self.chunkSize)
                } else if streamed {
                    (offset, length) = (nextWrite + piece <= Self.size ? nextWrite : chunkStart, piece)
                    nextWrite = offset + length
                } else if unaligned {
                    offset = block * 4096 + Int(random.next() % 7) * 512
                    length = 512 * (1 + Int(random.next() % 6))
                } else {
                    (offset, length) = (block * 4096, 4096 * (1 + Int(random.next() % 3)))
                }
                let entered = (offset + length - 1) / Self.chunkSize * Self.chunkSize
                if streamed, entered >= offset, random.next() % 2 == 0 {
                    // A stream entering a chunk often finds it empty (a file written into space
                    // freed before).
                    states.update { $0.write(entered, [UInt8](repeating: 0, count: Self.chunkSize)) }
                    try await fixture.volume.trim(
                        offset: UInt64(entered), length: UInt64(Self.chunkSize), fua: false, on: loop
                    ).get()
                }
                let byte = UInt8(truncatingIfNeeded: random.next() | 1)
                let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 / 512) &+ byte }
                let fua = random.next() % 10 == 0
                states.update { $0.write(offset, data) }
                try await fixture.write(UInt64(offset), data, fua: fua)
                if fua { states.update { kind == .thin ? $0.flush(offset..<(offset + length)) : $0.flush() } }
            case 6:
                let length = 4096 * min(1 + Int(random.next() % 20), blocks - block)
                states.update { $0.write(block * 4096, [UInt8](repeating: 0, count: length)) }
                try await fixture.volume.trim(
                    offset: UInt64(block * 4096), length: UInt64(length), fua: false, on: loop
                )
                .get()
            case 7:
                let offset = block * 4096 + Int(random.next() % 4096)
                let length = 1 + Int(random.next() % 9000)
                states.update { $0.write(offset, [UInt8](repeating: 0, count: length)) }
                try await fixture.volume.writeZeroes(
                    offset: UInt64(offset), length: UInt64(length), options: random.next() % 2 == 0 ? [.noHole] : [],
                    on: loop
                ).get()
            case 8:
                try await fixture.volume.flush(on: loop).get()
                states.update { $0.flush() }
            case 9 where uploading:
                // flush --wait-upload: what a store-only recover must find at least.
                try await fixture.volume.flush(on: loop).get()
                try await fixture.waitUntilUploaded(within: 60)
                states.update { $0.flushUploaded() }
            case 10, 11:
                // A scan of 64 KiB that continues the last one when it can: read-ahead downloads
                // the chunk after it while the workload goes on.
                var offset = nextRead + 65536 <= Self.size ? nextRead : block * 4096
                for _ in 0..<4 {
                    _ = try await fixture.read(UInt64(offset), 16384)
                    offset += 16384
                }
                nextRead = offset
            default:
                _ = try await fixture.read(UInt64(block * 4096), 16384)
            }
            problems += await states.checkCaptured(
                kind: kind, record: fixture.record, settings: settings, tally: &tally)
            // Uploads pause for the last part of each interval, so that dirty chunks (and
            // downloads into them) are what the cut finds.
            if step % Self.interval == Self.interval / 3 {
                await fixture.volume.stopUploader()
                uploading = false
            }
            guard step % Self.interval == 0 else { continue }
            // A power cut of the running volume, which then goes on from what it left.
            states.capturing(false)
            await cache?.stop()
            await fixture.volume.stopUploader()
            cuts.append(try world.powerLoss.powerLoss(path: fixture.path, using: &random))
            readAhead += fixture.volume.readAheadCounts.bytes
            uploadsFromMemory += fixture.volume.uploadsFromMemory
            deferredWrites += fixture.volume.deferredWrites
            directWrites += fixture.volume.directWrites
            try await fixture.reopen()
            try world.powerLoss.settle(path: fixture.path)
            let read = try await fixture.read(0, Self.size)
            problems += states.update { $0.check(read) }.map {
                "seed \(seed), cut at step \(step): \($0)"
            }
            startBackground()
            states.capturing(true)
        }
        states.capturing(false)
        problems += await states.checkCaptured(kind: kind, record: fixture.record, settings: settings, tally: &tally)
        states.finish()
        if kind == .cached {
            // Every record names an object that exists and holds the data.
            fixture.volume.startUploader()
            try await fixture.waitUntilUploaded(within: 60)
            await cache?.stop()
            try await fixture.volume.dropCache()
            let fromStore = try await fixture.read(0, Self.size)
            let same = fromStore == states.update { $0.current }
            #expect(same, "seed \(seed): the volume read back from the object store differs from the cache")
        }
        let cutPages = cuts.reduce(0) { $0 + $1.pages }
        #expect(cutPages + tally.unsyncedPages > 0, "no crash state found unsynced pages")
        let total = cuts.count + tally.checked
        let failedPuts = world.objects?.failedPuts ?? 0
        readAhead += fixture.volume.readAheadCounts.bytes
        uploadsFromMemory += fixture.volume.uploadsFromMemory
        deferredWrites += fixture.volume.deferredWrites
        directWrites += fixture.volume.directWrites
        print(
            "crash-state explorer: \(kind) volume, seed \(seed), \(step) operations: \(total) crash states: "
                + "\(cuts.count) power cut(s) of the running volume (\(cutPages) unsynced pages); "
                + "\(tally.description), \(states.skipped) events passed over while states waited; \(failedPuts) PUTs failed on purpose; \(readAhead >> 10) KiB read ahead; \(uploadsFromMemory) uploads from memory; \(deferredWrites) writes deferred; \(directWrites) written around the page cache; \(problems.count) violations"
        )
        #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n")) (\(problems.count) in all)")
        await fixture.close()
    }
}
