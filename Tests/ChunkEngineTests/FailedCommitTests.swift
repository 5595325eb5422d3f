import BlockDevice
import ChunkEngine
import ObjectStore
import Testing
import VolumeTestSupport

/// Durability rounds whose metadata commit fails (SQLite rolls it back, as on a full disk): the
/// chunks they would have recorded clean stay dirty, and the next round records them.
@Suite struct FailedCommitTests {
    private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13) ^ seed }
    }

    @Test func aThinChunkWhoseRoundFailedIsRecordedByTheNextRound() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536)
        try await fixture.write(65536 + 512, pattern(8192, seed: 1))
        try fixture.failCleanRecords()
        await #expect(throws: BlockDeviceError.self) { try await fixture.volume.flush(on: fixture.loop).get() }
        #expect(try fixture.store.chunks(volumeID: fixture.record.id).map(\.dirty) == [true])
        try fixture.allowCleanRecords()
        try await fixture.volume.flush(on: fixture.loop).get()
        let records = try fixture.store.chunks(volumeID: fixture.record.id)
        #expect(records.map(\.index) == [1])
        #expect(records.map(\.dirty) == [false], "the round after the failed one did not record the chunk")
        try await fixture.reopen()
        #expect(try await fixture.read(65536 + 512, 8192) == pattern(8192, seed: 1))
        await fixture.close()
    }

    @Test func aCachedChunkWhoseUploadWasNotNamedGoesUpAgainAndItsObjectsAreAllCollected() async throws {
        let fixture = try await VolumeFixture(
            size: 4 * 65536, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(uploadDelay: .milliseconds(50), backgroundRoundDelay: .seconds(3600)))
        let prefix = Volume.objectPrefix(uuid: fixture.record.uuid)
        func objects() async throws -> Int { try await fixture.objects!.list(prefix: prefix).count }
        // In the background (no hurry): uploads wait for a round, which only a flush here runs.
        fixture.volume.startUploader()
        try await fixture.write(0, pattern(4096, seed: 1))
        for _ in 0..<600 where fixture.volume.cacheUsage.dirtyChunks > 0 {
            try await Task.sleep(for: .milliseconds(50))
            try await fixture.volume.flush(on: fixture.loop).get()
        }
        #expect(try await objects() == 1)

        try await fixture.write(0, pattern(4096, seed: 2))
        try fixture.failCleanRecords()
        for _ in 0..<600 where try await objects() < 2 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(try await objects() == 2)
        // The round that names the new object fails: the chunk is still to be uploaded, and its
        // record still names the first object.
        await #expect(throws: BlockDeviceError.self) { try await fixture.volume.flush(on: fixture.loop).get() }
        #expect(fixture.volume.cacheUsage.dirtyChunks == 1, "the chunk was taken as uploaded")

        try fixture.allowCleanRecords()
        try await fixture.waitUntilUploaded(within: 120, settled: true)
        // The chunk's record names one object; the first and the unnamed one are deleted.
        #expect(try await objects() == 1)
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, 4096) == pattern(4096, seed: 2))
        try await fixture.reopen()
        #expect(fixture.volume.cacheUsage.dirtyChunks == 0)
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, 4096) == pattern(4096, seed: 2))
        await fixture.close()
    }

    @Test func aChunkWhoseRoundFailedGoesUpAgainWhileTheVolumeKeepsBeingWritten() async throws {
        let fixture = try await VolumeFixture(
            size: 4 * 65536, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(uploadDelay: .milliseconds(250), backgroundRoundDelay: .seconds(3600)))
        let prefix = Volume.objectPrefix(uuid: fixture.record.uuid)
        func chunkZeroObjects() async throws -> Int {
            try await fixture.objects!.list(prefix: prefix).filter { $0.key.contains("/chunks/0-") }.count
        }
        fixture.volume.startUploader()
        try await fixture.write(0, pattern(4096, seed: 1))
        try fixture.failCleanRecords()
        for _ in 0..<600 where try await chunkZeroObjects() < 1 { try await Task.sleep(for: .milliseconds(50)) }
        await #expect(throws: BlockDeviceError.self) { try await fixture.volume.flush(on: fixture.loop).get() }
        try fixture.allowCleanRecords()
        // Chunk 0 holds no change after its snapshot, and the volume never rests (chunk 1 keeps
        // changing): it goes up again once its snapshot is sixty upload delays (15 s) old.
        var seed: UInt8 = 1
        let deadline = ContinuousClock.now + .seconds(90)
        while try await chunkZeroObjects() < 2, ContinuousClock.now < deadline {
            seed &+= 1
            try await fixture.write(65536, pattern(4096, seed: seed))
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await chunkZeroObjects() == 2, "the chunk whose round failed never went up again")
        try await fixture.waitUntilUploaded(within: 120, settled: true)
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, 4096) == pattern(4096, seed: 1))
        await fixture.close()
    }
}
