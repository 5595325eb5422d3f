import Foundation
import Gateway
import ObjectStore
import TapeLibrary
import Testing

/// Tapes on the shelf kept as their pool says: retention that refuses deletion, Object Lock in
/// the store, a colder storage class at export and a restore from it at retrieval; against our
/// emulator and moto_server.
@Suite struct TapeShelfTests {
    private func bytes(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 >> 2) &* 29 &+ seed) }
    }

    /// Writes a file on a new tape of `pool` in drive 0, ejects it and exports it.
    private func shelve(
        _ fixture: GatewayFixture, barcode: String, pool: String, data: [UInt8]
    ) async throws -> TapeInfo {
        let library = fixture.gateway.library
        try await library.create(barcode: barcode, size: 16 << 20, worm: false, pool: pool)
        try await library.load(barcode: barcode, drive: "0")
        let client = try await LibNBD.connect(fixture.uri("drive/0"))
        try await client.write(0, data)
        try await client.shutdown()
        for _ in 0..<100 {
            if (try? await library.eject(drive: "0")) != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await library.export(barcode: barcode)
        return try await library.info(barcode: barcode, readHeader: false)
    }

    @Test(arguments: S3Peer.Kind.allCases)
    func shelvedTapesAreKeptLockedAndRestoredFromAColdClass(_ kind: S3Peer.Kind) async throws {
        let peer = try await S3Peer(kind)
        let bucket = "shelf-\(kind)"
        let fixture = try await GatewayFixture(
            shelf: { _ in peer.url(bucket: bucket) },
            configure: { config in
                config.library.pools["vault"] = PoolPolicy(retentionDays: 30)
                var cold = ShelfPolicy()
                cold.storageClass = "GLACIER"
                cold.objectLock = true
                config.shelfPolicies["vault"] = cold
                config.library.pools["locked"] = PoolPolicy(retentionDays: 2)
                var locked = ShelfPolicy()
                locked.objectLock = true
                config.shelfPolicies["locked"] = locked
                config.library.pools["forever"] = PoolPolicy(worm: true)
            })
        let library = fixture.gateway.library
        let store = peer.client(bucket: bucket)
        let data = bytes(300_000, seed: 5)

        let before = Int64(Date().timeIntervalSince1970)
        let vault = try await shelve(fixture, barcode: "VAULT001", pool: "vault", data: data)
        #expect(vault.storageClass == "GLACIER" && vault.location == "shelf")
        let until = try #require(vault.retainUntil)
        #expect((before + 30 * 86400...before + 30 * 86400 + 60).contains(until))
        await #expect(throws: TapeLibraryError.self) { try await library.delete(barcode: "VAULT001", force: true) }

        // The store has the data objects in GLACIER: unreadable until restored.
        let chunks = try await store.list(prefix: "volumes/").filter { $0.key.contains("/chunks/") }
        #expect(!chunks.isEmpty)
        for chunk in chunks {
            await #expect(throws: ObjectStoreError.self) {
                _ = try await store.get(try ObjectKey(chunk.key), range: nil)
            }
        }
        let note = try #require(try await library.retrieve(barcode: "VAULT001"))
        #expect(note.contains("GLACIER") && note.contains("3-5 hours"), "\(note)")
        let retrieved = try await library.info(barcode: "VAULT001", readHeader: false)
        #expect(retrieved.state == "retrieved" && retrieved.retainUntil == until)
        try await library.load(barcode: "VAULT001", drive: "1")
        try await library.rewind(drive: "1")
        let reader = try await LibNBD.connect(fixture.uri("drive/1"))
        #expect(try await reader.read(0, data.count) == data)
        try await reader.shutdown()

        // A pool with Object Lock and no storage class: PutObjectRetention; the emulator then
        // refuses to delete or overwrite the objects (moto, versioned, would keep the locked
        // version under a delete marker).
        let locked = try await shelve(fixture, barcode: "LOCKED01", pool: "locked", data: bytes(70_000, seed: 9))
        #expect(locked.storageClass == nil && locked.retainUntil != nil)
        // Positioning the retrieved tape wrote nothing: its objects are the ones exported.
        let vaultPrefix = try #require(chunks.first?.key.components(separatedBy: "chunks/").first)
        let vaultNow = try await store.list(prefix: vaultPrefix).filter { $0.key.contains("/chunks/") }
        #expect(vaultNow.map(\.key) == chunks.map(\.key))
        let lockedChunks = try await store.list(prefix: "volumes/").filter {
            $0.key.contains("/chunks/") && !$0.key.hasPrefix(vaultPrefix)
        }
        #expect(!lockedChunks.isEmpty)
        if kind == .emulator, let first = lockedChunks.first {
            let key = try ObjectKey(first.key)
            await #expect(throws: ObjectStoreError.self) { try await store.delete(key) }
            await #expect(throws: ObjectStoreError.self) { try await store.put(key, data: .init(string: "x")) }
            #expect(try await store.get(key, range: nil).readableBytes == Int(first.size))
        }

        let worm = try await library.create(barcode: "WORM0001", size: 16 << 20, worm: false, pool: "forever")
        #expect(worm.worm)
        await fixture.stop()
        await peer.stop()
    }

    @Test func aColdClassOrObjectLockNeedsAnS3Shelf() async throws {
        await #expect {
            _ = try await GatewayFixture(configure: { config in
                var cold = ShelfPolicy()
                cold.storageClass = "GLACIER"
                config.shelfPolicies["vault"] = cold
            })
        } throws: { error in
            "\(error)".contains("need an S3 shelf")
        }
    }
}
