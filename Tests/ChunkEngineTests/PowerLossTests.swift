import BlockDevice
import ChunkEngine
import Foundation
import Logging
import NIOCore
import Testing
import VolumeTestSupport

/// The crash-state explorer for volumes: seeded workloads of writes, trims, zeroing, flushes and
/// FUA writes, with uploads and eviction running on a cached volume, and at intervals a power
/// cut that keeps any subset of the unsynced page writes, some torn at sectors (a crash state).
/// After each cut the volume is reopened and every sector must hold its content as of the last
/// flush or content written after it; a cached volume must then upload everything and read the
/// same back from the store alone. `make test` explores `BLOCKGATE_CRASH_STATES` states (96 by
/// default) across the workloads; `make soak CRASH_STATES=N` explores more. A failure names the
/// seed and the step of the cut, which replay it exactly.
@Suite struct PowerLossTests {
    /// Crash states to explore in all, spread over the workloads.
    static let budget = ProcessInfo.processInfo.environment["BLOCKGATE_CRASH_STATES"].flatMap(Int.init) ?? 96
    static let workloads: [(Volume.Kind, UInt64)] = [(.cached, 21), (.cached, 22), (.cached, 23), (.thin, 24)]
    /// Operations between two cuts.
    static let interval = 60

    /// Per 512-byte sector, the contents a crash may leave: those as of the last flush, and
    /// those written since.
    struct SectorModel {
        static let sector = 512
        var current: [UInt8]
        var stable: [Set<UInt64>]
        var since: [Set<UInt64>]

        init(size: Int) {
            current = [UInt8](repeating: 0, count: size)
            let zero = Self.hash(current[0..<Self.sector])
            stable = [Set<UInt64>](repeating: [zero], count: size / Self.sector)
            since = [Set<UInt64>](repeating: [], count: size / Self.sector)
        }

        static func hash(_ bytes: ArraySlice<UInt8>) -> UInt64 {
            bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
        }

        private func sectors(_ range: Range<Int>) -> Range<Int> {
            (range.lowerBound / Self.sector)..<((range.upperBound + Self.sector - 1) / Self.sector)
        }

        private func content(_ sector: Int) -> ArraySlice<UInt8> {
            current[(sector * Self.sector)..<((sector + 1) * Self.sector)]
        }

        mutating func write(_ offset: Int, _ data: [UInt8]) {
            current.replaceSubrange(offset..<(offset + data.count), with: data)
            for sector in sectors(offset..<(offset + data.count)) { since[sector].insert(Self.hash(content(sector))) }
        }

        /// A flush of everything, or (thin FUA) of one range.
        mutating func flush(_ range: Range<Int>? = nil) {
            for sector in range.map(sectors) ?? 0..<stable.count where range != nil || !since[sector].isEmpty {
                stable[sector] = [Self.hash(content(sector))]
                since[sector] = []
            }
        }

        /// Checks the whole volume as read after a crash, then takes it as the new truth.
        mutating func check(_ read: [UInt8]) -> [String] {
            var problems: [String] = []
            for sector in 0..<stable.count {
                let found = Self.hash(read[(sector * Self.sector)..<((sector + 1) * Self.sector)])
                if !stable[sector].contains(found) && !since[sector].contains(found) {
                    let kind = since[sector].isEmpty ? "flushed and unchanged since" : "changed since the flush"
                    problems.append("sector at \(sector * Self.sector) (\(kind)) holds content never written there")
                }
                stable[sector] = [found]
                since[sector] = []
            }
            current = read
            return problems
        }
    }

    static let size = 4 << 20
    static let chunkSize = 65536

    /// A chunk downloaded again after eviction, then dirtied by a write elsewhere in it: the
    /// download was never synced, and a power cut tears it. It must not be served as data.
    @Test func aTornDownloadIntoADirtyChunkIsNotServed() async throws {
        let (fixture, powerLoss) = try await VolumeFixture.withPowerLoss(
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
        var random = SplitMix(seed: 1)
        let outcome = try powerLoss.powerLoss(path: fixture.path, using: &random, choice: .tearLast)
        #expect(outcome.torn > 0)
        try await fixture.reopen()
        var expected = original
        expected.replaceSubrange(32768..<36864, with: [UInt8](repeating: 0xAB, count: 4096))
        let same = try await fixture.read(0, Self.chunkSize) == expected
        #expect(same, "a torn download was served as data after the power loss")
        await fixture.close()
    }

    @Test(arguments: workloads)
    func flushedDataSurvivesPowerLoss(_ kind: Volume.Kind, _ seed: UInt64) async throws {
        let cutsWanted = max(1, Self.budget / Self.workloads.count)
        let (fixture, powerLoss) = try await VolumeFixture.withPowerLoss(
            size: UInt64(Self.size), chunkSize: Self.chunkSize, kind: kind,
            settings: RemoteSettings(uploadConcurrency: 2))
        var model = SectorModel(size: Self.size)
        var random = SplitMix(seed: seed)
        var cache: CacheManager?
        func startBackground() {
            guard kind == .cached else { return }
            fixture.volume.startUploader()
            // Room for a few chunks: reads evict and download again all the time.
            cache = CacheManager(capacity: UInt64(6 * Self.chunkSize), logger: Logger(label: "test"))
            cache!.add(fixture.volume)
            cache!.start()
        }
        startBackground()
        var problems: [String] = []
        var cuts: [PowerLossFileIO.Outcome] = []
        let loop = fixture.loop
        let blocks = Self.size / 4096
        for step in 1...(cutsWanted * Self.interval) {
            let block = Int(random.next() % UInt64(blocks - 4))
            switch random.next() % 16 {
            case 0...5:
                // Mostly block-aligned, sometimes a few sectors inside a block.
                let unaligned = random.next() % 4 == 0
                let offset = block * 4096 + (unaligned ? Int(random.next() % 7) * 512 : 0)
                let length = unaligned ? 512 * (1 + Int(random.next() % 6)) : 4096 * (1 + Int(random.next() % 3))
                let byte = UInt8(truncatingIfNeeded: random.next() | 1)
                let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 / 512) &+ byte }
                let fua = random.next() % 10 == 0
                try await fixture.write(UInt64(offset), data, fua: fua)
                model.write(offset, data)
                if fua { kind == .thin ? model.flush(offset..<(offset + length)) : model.flush() }
            case 6:
                let length = 4096 * min(1 + Int(random.next() % 20), blocks - block)
                try await fixture.volume.trim(
                    offset: UInt64(block * 4096), length: UInt64(length), fua: false, on: loop
                )
                .get()
                model.write(block * 4096, [UInt8](repeating: 0, count: length))
            case 7:
                let offset = block * 4096 + Int(random.next() % 4096)
                let length = 1 + Int(random.next() % 9000)
                try await fixture.volume.writeZeroes(
                    offset: UInt64(offset), length: UInt64(length), options: random.next() % 2 == 0 ? [.noHole] : [],
                    on: loop
                ).get()
                model.write(offset, [UInt8](repeating: 0, count: length))
            case 8:
                try await fixture.volume.flush(on: loop).get()
                model.flush()
            default:
                _ = try await fixture.read(UInt64(block * 4096), 16384)
            }
            // Uploads pause for the last part of each interval, so that dirty chunks (and
            // downloads into them) are what the cut finds.
            if step % Self.interval == Self.interval / 3 { await fixture.volume.stopUploader() }
            guard step % Self.interval == 0 else { continue }
            await cache?.stop()
            await fixture.volume.stopUploader()
            cuts.append(try powerLoss.powerLoss(path: fixture.path, using: &random))
            try await fixture.reopen()
            try powerLoss.settle(path: fixture.path)
            problems += model.check(try await fixture.read(0, Self.size)).map {
                "seed \(seed), cut at step \(step): \($0)"
            }
            startBackground()
        }
        if kind == .cached {
            // Every record names an object that exists and holds the data.
            try await fixture.volume.waitUntilUploaded()
            await cache?.stop()
            try await fixture.volume.dropCache()
            let fromStore = try await fixture.read(0, Self.size)
            let same = fromStore == model.current
            #expect(same, "seed \(seed): the volume read back from the object store differs from the cache")
        }
        #expect(cuts.reduce(0) { $0 + $1.pages } > 0, "no power cut found unsynced pages")
        let pages = cuts.reduce(0) { $0 + $1.pages }
        print(
            "crash-state explorer: \(kind) volume, seed \(seed): \(cuts.count) crash states, \(pages) unsynced pages "
                + "(\(cuts.reduce(0) { $0 + $1.lost }) lost, \(cuts.reduce(0) { $0 + $1.torn }) torn), "
                + "\(problems.count) violations")
        #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n")) (\(problems.count) in all)")
        await fixture.close()
    }
}
