import Foundation
import ObjectStore
import Testing

/// kill -9 of a daemon while it uploads a cached volume: after a restart and a drain, what the
/// volume serves keeps every flushed write, and the bucket holds exactly that, one object per
/// chunk, though PUTs of the killed daemon may land after the restart.
@Suite(.serialized) struct UploadCrashTests {
    static let chunkSize = 64 << 10
    static let blocks = 2048

    @Test func flushedWritesReachTheObjectStoreAfterKill9DuringUploads() async throws {
        try await Self.trials(rounds: 3)
    }

    /// `rounds` kill -9 trials on a cached volume during uploads, each checking every flushed
    /// block after a drain; then the bucket must hold exactly what the volume serves.
    static func trials(rounds: Int) async throws {
        let peer = try await S3Peer(.emulator, latency: .milliseconds(20))
        let directory = NSTemporaryDirectory() + "blockgate-upload-crash-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // PUTs of a killed daemon land within milliseconds here; a few seconds covers a busy machine.
        let config = directory + "/blockgate.yaml"
        try "cache:\n  upload_settle_seconds: 5\n".write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = DaemonProcess(
            directory: directory,
            arguments: [
                "--config", config, "--log-level", "warning", "--object-store", peer.url(), "--cache-size", "4M",
            ],
            environment: [
                "AWS_ACCESS_KEY_ID": S3Peer.credentials.accessKeyID,
                "AWS_SECRET_ACCESS_KEY": S3Peer.credentials.secretAccessKey,
            ])
        try await daemon.start()
        let admin = ["--admin-socket", daemon.adminSocketPath]
        let create = try await Tool.run(
            [Tool.blockgate, "volume", "create", "cv", "--size", "8M", "--chunk-size", "64K", "--kind", "cached"]
                + admin)
        try #require(create.status == 0, "\(create.errors)")
        let uri = daemon.uri(export: "cv")
        var ledger = DurabilityLedger(blocks: Self.blocks)
        var served: [UInt8] = []
        for round in 0..<rounds {
            let worker = ledger.writeDetached(uri)
            // On a busy machine the writer may connect late (its calls queue for the shared
            // blocking threads): wait until a chunk of the volume is in the store, so that no
            // round kills a daemon that never had data to lose.
            var stored = 0
            for _ in 0..<600 where stored == 0 {
                let info = try await Tool.run([Tool.blockgate, "volume", "info", "cv", "--json"] + admin)
                let fields = try? JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any]
                stored = fields?["objects"] as? Int ?? 0
                if stored == 0 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(stored > 0, "round \(round): nothing reached the store within a minute (did the writer connect?)")
            try await Task.sleep(for: .milliseconds(Int.random(in: 500...1500)))
            try await daemon.kill9()
            ledger = await worker.value
            try await daemon.start()
            let drain = try await Tool.run([Tool.blockgate, "volume", "flush", "cv", "--wait-upload"] + admin)
            #expect(drain.status == 0, "\(drain.errors)")
            let (problems, versions, data) = try await ledger.verify(uri)
            #expect(problems.isEmpty, "round \(round): \(problems.prefix(5).joined(separator: "; "))")
            ledger.restart(serving: versions)
            served = data
        }
        // Garbage of every round waits for its uploads to settle (a daemon killed within seconds
        // deletes none), so the last daemon may have thousands of objects to delete.
        var json: [String: Any] = [:]
        for _ in 0..<1200 {
            let info = try await Tool.run([Tool.blockgate, "volume", "info", "cv", "--json"] + admin)
            json = try #require(try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any])
            if json["settling_deletes"] as? Int == 0 && json["pending_deletes"] as? Int == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(json["dirty_bytes"] as? Int == 0)
        #expect(json["settling_deletes"] as? Int == 0, "objects still wait for their uploads to settle")
        #expect(json["pending_deletes"] as? Int == 0, "objects are still being deleted")
        try await peer.expectBucket(
            volumeUUID: json["uuid"] as? String ?? "?", holds: served, chunkSize: Self.chunkSize)
        try await daemon.kill9()
        try? FileManager.default.removeItem(atPath: directory)
        await peer.stop()
    }
}
