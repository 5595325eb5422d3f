import Foundation
import Gateway
import NIOCore
import ObjectStore
import ObjectStoreEmulator
import Synchronization
import TestSupport
import Testing

/// A cached volume keeps every write through a flaky object store and outages: writes go on into
/// the cache, then wait (backpressure, visible in the metrics) while the upload buffer is full,
/// cached reads keep working, uploads resume by themselves afterwards, and the bucket ends up
/// holding exactly what was written. `make test` runs one round; `make soak` runs rounds for
/// FAULT_MINUTES (SoakTests).
@Suite(.serialized) struct ObjectStoreFaultTests {
    static let chunkSize = 1 << 20
    static let volumeSize = 48 << 20
    static let volume = "faults"
    /// Written once before the faults and read back during the outages.
    static let readRegion = 0..<(8 << 20)

    /// How long each part of a round of faults lasts.
    struct Round {
        /// 30 % of requests fail for at least this long (and until uploads have got through).
        var errors: Duration
        /// The store is down for `outageChecks` × `outageCheckInterval`, cached reads checked each time.
        var outageChecks: Int
        var outageCheckInterval: Duration
        /// The store is healthy for at least this long (and until writes have resumed).
        var healthy: Duration

        static let quick = Round(errors: .zero, outageChecks: 3, outageCheckInterval: .seconds(10), healthy: .zero)
        static let soak = Round(
            errors: .seconds(60), outageChecks: 3, outageCheckInterval: .seconds(15), healthy: .seconds(15))
    }

    /// What the writer has done, shared with the test while it runs.
    final class Progress: Sendable {
        let acknowledged = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
    }

    @Test func errorsAndAThirtySecondOutageLoseNothing() async throws {
        try await Self.run(.quick, for: .zero)
    }

    /// Rounds of `round` until `duration` has passed (at least one), with a writer running all
    /// along; then the volume and the bucket are checked against what was written.
    static func run(_ round: Round, for duration: Duration) async throws {
        let peer = try await S3Peer(.emulator)
        let faults = try #require(peer.emulator?.faults)
        let fixture = try await GatewayFixture(
            objectStore: peer.url(), configure: { $0.metricsListen = "127.0.0.1:0" }, cacheSize: 64 << 20,
            uploadBuffer: 8 << 20, backpressureTimeoutSeconds: 120)
        let metrics = MetricsScrape(port: try #require(fixture.gateway.metrics?.port), volume: volume)
        try await fixture.gateway.manager.create(
            name: volume, size: UInt64(volumeSize), chunkSize: UInt64(chunkSize), kind: .cached)
        var model = [UInt8](repeating: 0, count: volumeSize)
        var generator = SystemRandomNumberGenerator()
        for index in readRegion { model[index] = UInt8.random(in: 0...255, using: &generator) }
        let reader = try await LibNBD.connect(fixture.uri(volume))
        try await reader.write(0, Array(model[readRegion]), fua: true)

        let timeoutsBefore = try await metrics.value("blockgate_backpressure_timeouts_total")
        let progress = Progress()
        let writer = Task { [uri = fixture.uri(volume), model] in
            try await write(uri, model: model, progress: progress)
        }
        let end = ContinuousClock.now + duration
        var number = 0
        repeat {
            number += 1
            try await faultRound(number, round, faults: faults, metrics: metrics, progress: progress) {
                let cached = try await reader.read(0, readRegion.count)
                #expect(cached == Array(model[readRegion]), "cached reads go on during the outage")
            }
        } while ContinuousClock.now < end

        progress.stop.store(true, ordering: .relaxed)
        model = try await writer.value
        let drained = try await eventually(within: 120) {
            let info = try await fixture.gateway.manager.flush(name: volume)
            return info.dirtyBytes == 0 && info.pendingDeletes == 0 && info.settlingDeletes == 0
        }
        #expect(drained, "every chunk uploaded and every replaced object deleted")
        #expect(
            try await metrics.value("blockgate_backpressure_timeouts_total") == timeoutsBefore,
            "no write failed with ENOSPC")
        var served: [UInt8] = []
        for offset in stride(from: 0, to: volumeSize, by: 8 << 20) {
            served += try await reader.read(UInt64(offset), 8 << 20)
        }
        #expect(served == model, "the volume reads back as written")
        try await peer.expectBucket(
            volumeUUID: fixture.gateway.manager.info(name: volume).uuid, holds: model, chunkSize: chunkSize)
        print(
            "fault soak: \(number) round(s), \(progress.acknowledged.load(ordering: .relaxed)) writes acknowledged, "
                + "\(faults.injectedFailures) requests failed on purpose, "
                + "\(Int(try await metrics.value("blockgate_uploads_total"))) uploads, "
                + "\(Int(try await metrics.value("blockgate_backpressure_waits_total"))) backpressure waits, "
                + "\(zip(served, model).filter { $0 != $1 }.count) bytes lost")
        try await reader.shutdown()
        await fixture.stop()
        await peer.stop()
    }

    /// Errors (with added latency every other round), an outage, then a healthy store.
    private static func faultRound(
        _ number: Int, _ round: Round, faults: FaultPlan, metrics: MetricsScrape, progress: Progress,
        checkCachedReads: () async throws -> Void
    ) async throws {
        let uploadsBefore = try await metrics.value("blockgate_uploads_total")
        // Counted from the round's start: a write held back since the errors stays one wait.
        let waitsBefore = try await metrics.value("blockgate_backpressure_waits_total")
        let failuresBefore = faults.injectedFailures
        faults.settings = .init(latency: number.isMultiple(of: 2) ? .milliseconds(50) : .zero, errorRate: 0.3)
        let errorsEnd = ContinuousClock.now + round.errors
        let throughErrors = try await eventually(within: 120) {
            try await metrics.value("blockgate_uploads_total") > uploadsBefore
                && faults.injectedFailures > failuresBefore
        }
        #expect(throughErrors, "round \(number): uploads go on through 30 % errors")
        try await Task.sleep(until: errorsEnd)

        faults.settings = .init(outage: true)
        let uploadFailuresBefore = try await metrics.value("blockgate_upload_failures_total")
        var heldSeen = false
        for _ in 0..<round.outageChecks {
            try await Task.sleep(for: round.outageCheckInterval)
            try await checkCachedReads()
            if try await metrics.value("blockgate_volume_held_writes") > 0 { heldSeen = true }
        }
        #expect(heldSeen, "round \(number): the metrics show writes held back during the outage")
        #expect(
            try await metrics.value("blockgate_backpressure_waits_total") > waitsBefore,
            "round \(number): the metrics count backpressure waits")
        #expect(
            try await metrics.value("blockgate_upload_failures_total") > uploadFailuresBefore,
            "round \(number): the gateway kept trying during the outage")

        faults.settings = .init()
        let healthyEnd = ContinuousClock.now + round.healthy
        let resumedFrom = progress.acknowledged.load(ordering: .relaxed)
        let resumed = try await eventually(within: 60) {
            progress.acknowledged.load(ordering: .relaxed) > resumedFrom + 32
        }
        #expect(resumed, "round \(number): writes resume after the outage without a restart")
        try await Task.sleep(until: healthyEnd)
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
        try await client.shutdown()
        return model
    }
}

/// Reads one volume's samples from the gateway's Prometheus endpoint with curl.
struct MetricsScrape {
    let port: Int
    let volume: String

    /// The sample `name{volume="…"}`, or 0 when the metric has not been recorded yet.
    func value(_ name: String) async throws -> Double {
        let scrape = try await Tool.run(["curl", "-sf", "http://127.0.0.1:\(port)/metrics"])
        try #require(scrape.status == 0, "\(scrape.errors)")
        let prefix = "\(name){volume=\"\(volume)\"} "
        let line = scrape.output.split(separator: "\n").first { $0.hasPrefix(prefix) }
        return line.flatMap { Double($0.dropFirst(prefix.count)) } ?? 0
    }
}
