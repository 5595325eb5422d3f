import Foundation
import Gateway
import NIOCore
import ObjectStore
import ObjectStoreEmulator
import Synchronization
import Testing

/// A cached volume keeps every write through a flaky object store and a long outage: writes go
/// on into the cache, cached reads keep working, uploads resume afterwards, and the bucket ends
/// up holding exactly what was written.
@Suite(.serialized) struct ObjectStoreFaultTests {
    static let chunkSize = 1 << 20
    static let volumeSize = 48 << 20
    /// Written once before the faults and read back during the outage.
    static let readRegion = 0..<(8 << 20)

    /// What the writer has done, shared with the test while it runs.
    final class Progress: Sendable {
        let acknowledged = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
    }

    /// Writes random extents of random bytes outside `readRegion`, flushing now and then, until
    /// told to stop; returns the volume as the client knows it.
    static func write(_ uri: String, model start: [UInt8], progress: Progress) async throws -> [UInt8] {
        var model = start
        let client = try await LibNBD.connect(uri)
        var generator = SystemRandomNumberGenerator()
        while !progress.stop.load(ordering: .relaxed) {
            let length = Int.random(in: 1...32) * 4096
            let offset = Int.random(in: (readRegion.upperBound / 4096)..<((volumeSize - length) / 4096)) * 4096
            let bytes = (0..<length / 8).flatMap { _ in withUnsafeBytes(of: generator.next()) { Array($0) } }
            try await client.write(UInt64(offset), bytes)
            model.replaceSubrange(offset..<(offset + length), with: bytes)
            if progress.acknowledged.add(1, ordering: .relaxed).newValue % 16 == 0 { try await client.flush() }
        }
        try await client.flush()
        return model
    }

    /// Waits until `condition` holds, checking every 100 ms, for at most `seconds`.
    static func eventually(within seconds: Int, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    @Test func errorsAndAThirtySecondOutageLoseNothing() async throws {
        let peer = try await S3Peer(.emulator)
        let faults = try #require(peer.emulator?.faults)
        let fixture = try await GatewayFixture(
            objectStore: peer.url(), cacheSize: 64 << 20, uploadBuffer: 8 << 20, backpressureTimeoutSeconds: 120)
        try await fixture.gateway.manager.create(
            name: "cv", size: UInt64(Self.volumeSize), chunkSize: UInt64(Self.chunkSize), kind: .cached)
        var model = [UInt8](repeating: 0, count: Self.volumeSize)
        var generator = SystemRandomNumberGenerator()
        for index in Self.readRegion { model[index] = UInt8.random(in: 0...255, using: &generator) }
        let reader = try await LibNBD.connect(fixture.uri("cv"))
        try await reader.write(0, Array(model[Self.readRegion]), fua: true)

        faults.settings = .init(errorRate: 0.3)
        let progress = Progress()
        let writer = Task { [uri = fixture.uri("cv"), model] in
            try await Self.write(uri, model: model, progress: progress)
        }
        let throughErrors = try await Self.eventually(within: 120) {
            let objects = try fixture.gateway.manager.info(name: "cv").objects ?? 0
            return faults.injectedFailures > 0 && objects > 0
        }
        #expect(throughErrors, "uploads go on through 30 % errors")

        faults.settings = .init(outage: true)
        let failuresBefore = faults.injectedFailures
        for _ in 0..<3 {
            try await Task.sleep(for: .seconds(10))
            let cached = try await reader.read(0, Self.readRegion.count)
            #expect(cached == Array(model[Self.readRegion]), "cached reads go on during the outage")
        }
        #expect(faults.injectedFailures > failuresBefore, "the gateway kept trying during the outage")
        faults.settings = .init()

        let resumedFrom = progress.acknowledged.load(ordering: .relaxed)
        let resumed = try await Self.eventually(within: 60) {
            progress.acknowledged.load(ordering: .relaxed) > resumedFrom + 32
        }
        #expect(resumed, "writes resume after the outage")
        progress.stop.store(true, ordering: .relaxed)
        model = try await writer.value
        let drained = try await Self.eventually(within: 60) {
            let info = try await fixture.gateway.manager.flush(name: "cv")
            return info.dirtyBytes == 0 && info.pendingDeletes == 0
        }
        #expect(drained, "every chunk uploaded and every replaced object deleted")

        var served: [UInt8] = []
        for offset in stride(from: 0, to: Self.volumeSize, by: 8 << 20) {
            served += try await reader.read(UInt64(offset), 8 << 20)
        }
        #expect(served == model, "the volume reads back as written")
        try await peer.expectBucket(
            volumeUUID: fixture.gateway.manager.info(name: "cv").uuid, holds: model, chunkSize: Self.chunkSize)
        await fixture.stop()
        await peer.stop()
    }
}
