import ChunkEngine
import Foundation
import Gateway
import ObjectStore
import Testing

/// Cached volumes through the whole gateway, on our emulator and on moto_server.
@Suite(.serialized) struct CachedVolumeInteropTests {
    @Test(arguments: S3Peer.Kind.allCases)
    func dataOutgrowsTheCacheAndIsRecoveredFromTheObjectStoreAlone(_ kind: S3Peer.Kind) async throws {
        let peer = try await S3Peer(kind)
        let fixture = try await GatewayFixture(objectStore: peer.url(), cacheSize: 4 << 20, uploadBuffer: 8 << 20)
        try await fixture.gateway.manager.create(name: "cv", size: 32 << 20, chunkSize: 1 << 20, kind: .cached)
        let source = fixture.directory + "/source.img"
        try await Tool.run(["dd", "if=/dev/urandom", "of=\(source)", "bs=1M", "count=16"])
        let upload = try await Tool.run(["nbdcopy", source, fixture.uri("cv")])
        #expect(upload.status == 0, "\(upload.errors)")
        try await fixture.drain("cv")
        // The evictor runs in the background: the chunks the last uploads left clean go on its
        // next pass (every 50 ms).
        for _ in 0..<200 where (try fixture.gateway.manager.info(name: "cv").cachedBytes ?? 0) > 5 << 20 {
            try await Task.sleep(for: .milliseconds(50))
        }
        let info = try fixture.gateway.manager.info(name: "cv")
        #expect(info.objects == 16)
        #expect((info.cachedBytes ?? 0) <= 5 << 20, "the 4M cache holds \(info.cachedBytes ?? 0) bytes")
        let back = fixture.directory + "/back.img"
        #expect(try await Tool.run(["nbdcopy", fixture.uri("cv"), back]).status == 0)
        #expect(try await Tool.run(["cmp", "-n", "\(16 << 20)", source, back]).status == 0)
        #expect(fixture.gateway.manager.cache.status().misses > 0)
        let kept = fixture.directory + "/kept.img"
        try FileManager.default.copyItem(atPath: source, toPath: kept)
        let keptPath = NSTemporaryDirectory() + "blockgate-kept-\(UUID().uuidString.prefix(8)).img"
        try FileManager.default.moveItem(atPath: kept, toPath: keptPath)
        await fixture.stop()

        // A new gateway on an empty data directory rebuilds the volume from the bucket.
        let fresh = try await GatewayFixture(objectStore: peer.url(), cacheSize: 4 << 20)
        let recovered = try await fresh.gateway.manager.recover(name: "cv")
        #expect(recovered.size == 32 << 20 && recovered.objects == 16)
        let again = fresh.directory + "/again.img"
        #expect(try await Tool.run(["nbdcopy", fresh.uri("cv"), again]).status == 0)
        #expect(try await Tool.run(["cmp", "-n", "\(16 << 20)", keptPath, again]).status == 0)
        #expect(try await Tool.run(["cmp", "-i", "\(16 << 20)", again, "/dev/zero", "-n", "\(16 << 20)"]).status == 0)
        try? FileManager.default.removeItem(atPath: keptPath)
        await fresh.stop()
        await peer.stop()
    }

    /// `volume.flush` with `upload_wait` answers once the uploads have ended (within the wait):
    /// one request after a write finds nothing left to upload. A wait out of range is refused.
    @Test func aFlushWaitsForTheUploadsWhenAsked() async throws {
        let peer = try await S3Peer(.emulator)
        let fixture = try await GatewayFixture(objectStore: peer.url())
        try await fixture.gateway.manager.create(name: "waited", size: 16 << 20, chunkSize: 1 << 20, kind: .cached)
        let source = fixture.directory + "/source.img"
        try await Tool.run(["dd", "if=/dev/urandom", "of=\(source)", "bs=1M", "count=8"])
        #expect(try await Tool.run(["nbdcopy", source, fixture.uri("waited")]).status == 0)
        let client = AdminClient(socketPath: fixture.adminSocketPath)
        let answer = try await Blocking.run {
            try client.send(AdminRequest(op: .volumeFlush, name: "waited", uploadWait: 120))
        }
        #expect(answer.error == nil)
        #expect(answer.volume?.dirtyBytes == 0, "the answer came when every chunk was uploaded")
        #expect(answer.volume?.objects == 8)
        let refused = try await Blocking.run {
            try client.send(AdminRequest(op: .volumeFlush, name: "waited", uploadWait: -1))
        }
        #expect(refused.error?.message.contains("upload_wait") == true, "\(String(describing: refused.error))")
        await fixture.stop()
        await peer.stop()
    }
}
