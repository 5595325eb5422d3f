import Foundation
import Testing

/// The durability contract under kill -9: a write acknowledged before a FLUSH (or with FUA)
/// reads back after the daemon is killed at a random instant and restarted; no block is torn.
@Suite(.serialized) struct CrashTests {
    @Test func flushedWritesSurviveKill9AtRandomInstants() async throws {
        try await Self.trials(rounds: 5)
    }

    /// `rounds` kill -9 trials on a thin volume, each checking every flushed block.
    static func trials(rounds: Int) async throws {
        let directory = NSTemporaryDirectory() + "blockgate-crash-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let daemon = DaemonProcess(directory: directory, arguments: ["--log-level", "warning"])
        try await daemon.start()
        var ledger = DurabilityLedger(blocks: 2048)
        for round in 0..<rounds {
            let worker = ledger.writeDetached(daemon.uri)
            try await Task.sleep(for: .milliseconds(Int.random(in: 200...900)))
            try await daemon.kill9()
            ledger = await worker.value
            try await daemon.start()
            let (problems, versions, _) = try await ledger.verify(daemon.uri)
            #expect(problems.isEmpty, "round \(round): \(problems.prefix(5).joined(separator: "; "))")
            ledger.restart(serving: versions)
        }
        try await daemon.kill9()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
