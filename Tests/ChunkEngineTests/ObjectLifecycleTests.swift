import BlockDevice
import ChunkEngine
import Codecs
import Foundation
import Logging
import NIOCore
import ObjectStore
import Testing
import VolumeTestSupport

@testable import Metadata

/// When objects may be deleted, and which generations uploads use: no object is deleted while a
/// record might name it, nor on the strength of a database that may be incomplete; generations
/// grow across crashes without a listing of the store.
@Suite struct ObjectLifecycleTests {
    private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13) ^ seed | 1 }
    }

    private func objectKeys(_ fixture: VolumeFixture) async throws -> [String] {
        try await fixture.objects!.list(prefix: Volume.objectPrefix(uuid: fixture.record.uuid)).map(\.key).sorted()
    }

    /// Every generation a chunk record names is in the store.
    private func namedObjectsExist(_ fixture: VolumeFixture) async throws -> Bool {
        let keys = Set(try await objectKeys(fixture))
        return try fixture.store.chunks(volumeID: fixture.record.id).filter { $0.remoteGeneration > 0 }.allSatisfy {
            keys.contains("\(Volume.objectPrefix(uuid: fixture.record.uuid))chunks/\($0.index)-\($0.remoteGeneration)")
        }
    }

    /// A database that names none of the objects in the store (a failed recover, a restored
    /// older copy) opens without deleting any of them.
    @Test func objectsNoRecordNamesAreLeftInPlace() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        try await fixture.write(0, pattern(200_000, seed: 1))
        try await fixture.uploadAll()
        let before = try await objectKeys(fixture)
        #expect(before.count == 4)

        let other = try MetadataStore(path: fixture.directory + "/other.db")
        let journal = MetadataJournal(store: other)
        let record = try other.createVolume(
            name: "vol", kind: "cached", size: 1 << 20, chunkSize: 65536, createdAt: 0, uuid: fixture.record.uuid)
        let volume = try await Volume.open(
            record: record, path: fixture.directory + "/other.img", store: other, journal: journal, io: fixture.io,
            remote: fixture.remote, logger: Logger(label: "test"))
        try await volume.waitUntilUploaded()
        #expect(try await objectKeys(fixture) == before)
        await journal.shutdown()
        await fixture.close()
    }

    /// A chunk TRIM emptied, re-created by a write whose dirty mark is still being committed
    /// when a flush captures its records: the flush may retire the old object only together with
    /// a record that no longer names it, so that after a crash no record names a deleted object.
    @Test func aRecreatedChunkNeverNamesItsRetiredObject() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        try await fixture.write(0, pattern(65536, seed: 2))
        try await fixture.uploadAll()
        try await fixture.volume.dropCache()  // the chunk is in the store only
        try await fixture.volume.trim(offset: 0, length: 65536, fua: false, on: fixture.loop).get()
        let volume = fixture.volume
        let data = ByteBuffer(bytes: pattern(4096, seed: 3))
        // On the event loop, so that the write has queued its dirty mark (and nothing more)
        // when the flush captures.
        try await fixture.loop.flatSubmit {
            let write = volume.write(offset: 8192, data: data, fua: false, on: fixture.loop)
            let flush = volume.flush(on: fixture.loop)
            return write.and(flush).map { _ in }
        }.get()
        while fixture.volume.pendingDeletes > 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try await namedObjectsExist(fixture), "a record names a deleted object")
        try await fixture.reopen()  // as after a crash: no flush since the write
        let back = try await fixture.read(0, 65536)
        #expect(back.count == 65536)
        await fixture.close()
    }

    /// A crash in the middle of uploads that had stored their objects, then a start whose
    /// listing of the store fails: later uploads still use higher generations, so the store
    /// alone rebuilds the newest data.
    @Test func generationsGrowAcrossACrashWithoutAListing() async throws {
        var flaky: FlakyObjectStore!
        let fixture = try await VolumeFixture(
            size: 1 << 20, chunkSize: 65536, kind: .cached,
            settings: RemoteSettings(uploadSettleTime: .milliseconds(100)),
            wrapStore: { base in
                flaky = FlakyObjectStore(wrapping: base)
                return flaky
            })
        try await fixture.write(0, pattern(65536, seed: 4))
        fixture.volume.startUploader()
        try await fixture.volume.waitUntilUploaded()
        flaky.set(failPutsAfterStoring: true)
        try await fixture.write(0, pattern(65536, seed: 5))
        while flaky.storedThenFailed < 2 { try await Task.sleep(for: .milliseconds(20)) }
        await fixture.volume.stopUploader()

        flaky.set(failLists: true, failPutsAfterStoring: false)
        try await fixture.reopen()
        let newest = pattern(65536, seed: 6)
        try await fixture.write(0, newest)
        fixture.volume.startUploader()
        try await fixture.waitUntilUploaded(within: 120, settled: true)

        let (records, _, _) = try await Volume.chunksInStore(
            uuid: fixture.record.uuid, geometry: fixture.volume.geometry, store: fixture.objects!)
        let newestObject = try #require(records.first)
        let stored = try await fixture.objects!.get(
            ObjectKey("\(Volume.objectPrefix(uuid: fixture.record.uuid))chunks/0-\(newestObject.remoteGeneration)"),
            range: nil)
        var decoded = ByteBuffer()
        try ObjectCodec(scope: fixture.record.uuid).decodeWhole(
            ObjectBytes(stored), identity: .chunk(index: 0, generation: newestObject.remoteGeneration),
            logicalLength: 65536,
            into: &decoded)
        let newestIsNewest = Array(decoded.readableBytesView) == newest
        #expect(newestIsNewest, "the store's newest generation is not the newest data")
        // The uploads the crash interrupted are deleted once a newer one is named.
        #expect(try await objectKeys(fixture).count == 1)
        await fixture.close()
    }

    /// An upload takes the generation its chunk's dirty mark began, so it needs no commit of its
    /// own before its PUT: uploads go on while commits wait (as every commit waits behind a sync
    /// of a large cache file). Here another connection holds the database's write lock meanwhile.
    @Test func uploadsNeedNoCommitBeforeTheirPUTs() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536, kind: .cached)
        try await fixture.write(0, pattern(4 * 65536, seed: 11))
        let other = try SQLiteConnection(path: fixture.databasePath)
        try other.execute("BEGIN IMMEDIATE")
        fixture.volume.startUploader()
        let deadline = ContinuousClock.now + .seconds(10)
        var stored = 0
        while stored < 4, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            stored = try await objectKeys(fixture).count
        }
        #expect(stored == 4, "uploads waited for a commit before their PUTs")
        try other.execute("ROLLBACK")
        try await fixture.waitUntilUploaded(within: 120)
        #expect(try await namedObjectsExist(fixture))
        await fixture.volume.stopUploader()
        await fixture.close()
    }

    /// TRIM that empties an uploaded chunk costs one DELETE, of the object its record named: its
    /// dirty mark begins no generation, which no upload would take.
    @Test func aTrimmedUploadedChunkCostsOneDelete() async throws {
        var flaky: FlakyObjectStore!
        let fixture = try await VolumeFixture(
            size: 1 << 20, chunkSize: 65536, kind: .cached,
            wrapStore: { base in
                flaky = FlakyObjectStore(wrapping: base)
                return flaky
            })
        try await fixture.write(0, pattern(65536, seed: 12))
        try await fixture.uploadAll()
        try await fixture.volume.trim(offset: 0, length: 65536, fua: false, on: fixture.loop).get()
        try await fixture.volume.flush(on: fixture.loop).get()
        fixture.volume.startUploader()
        try await fixture.waitUntilUploaded(within: 120, settled: true)
        #expect(try await objectKeys(fixture).isEmpty)
        #expect(flaky.deletes == 1)
        await fixture.close()
    }

    /// An upload whose answer was lost may still land in the store after its retry succeeded:
    /// its object is deleted only once that upload has settled, so that the late PUT does not
    /// outlive the delete and leave an object no record names.
    @Test func anUploadWhoseAnswerWasLostIsDeletedOnlyOnceItSettles() async throws {
        var late: LatePutStore!
        let settle = TimeAmount.seconds(2)
        let fixture = try await VolumeFixture(
            size: 1 << 20, chunkSize: 65536, kind: .cached, settings: RemoteSettings(uploadSettleTime: settle),
            wrapStore: { base in
                late = LatePutStore(wrapping: base, window: settle)
                return late
            })
        late.loseAnswerOfFirstPut { _ in true }
        try await fixture.write(0, pattern(65536, seed: 10))
        fixture.volume.startUploader()
        try await fixture.waitUntilUploaded(within: 120, settled: true)
        #expect(late.landed == 0, "a delete came before the lost upload settled")
        let keys = try await objectKeys(fixture)
        #expect(keys.count == 1, "the store holds \(keys)")
        #expect(try await namedObjectsExist(fixture))
        await fixture.close()
    }

    /// A failed sync is never retried into a success: the volume refuses every later flush and
    /// FUA write until it is opened again.
    @Test(arguments: [Volume.Kind.thin, .cached])
    func aFailedSyncFencesTheVolume(_ kind: Volume.Kind) async throws {
        var failing: FailingSyncFileIO!
        let fixture = try await VolumeFixture(
            size: 1 << 20, chunkSize: 65536, kind: kind,
            wrap: { base in
                failing = FailingSyncFileIO(wrapping: base)
                return failing
            })
        try await fixture.write(0, pattern(8192, seed: 7))
        failing.failNextSyncs(1)
        await #expect(throws: BlockDeviceError.self) { try await fixture.volume.flush(on: fixture.loop).get() }
        try await fixture.write(65536, pattern(4096, seed: 8))
        await #expect(throws: BlockDeviceError.self) { try await fixture.volume.flush(on: fixture.loop).get() }
        await #expect(throws: BlockDeviceError.self) { try await fixture.write(0, pattern(4096, seed: 9), fua: true) }
        #expect(fixture.volume.fenced != nil)
        try await fixture.reopen()
        #expect(fixture.volume.fenced == nil)
        try await fixture.write(0, pattern(4096, seed: 9), fua: true)
        try await fixture.volume.flush(on: fixture.loop).get()
        await fixture.close()
    }
}
