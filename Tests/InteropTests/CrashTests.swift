import Foundation
import Glibc
import Testing

/// The durability contract under kill -9: a write acknowledged before a FLUSH (or with FUA)
/// reads back after the daemon is killed at a random instant and restarted; no block is torn.
@Suite(.serialized) struct CrashTests {
    static let blocks = 2048
    static let blockSize = 4096

    /// What the client knows: per block, the version made durable and versions written since.
    struct Ledger {
        var durable = [UInt64](repeating: 0, count: CrashTests.blocks)
        var sinceFlush = [Set<UInt64>](repeating: [], count: CrashTests.blocks)
        var nextVersion: UInt64 = 1

        mutating func flushed() {
            for block in sinceFlush.indices where !sinceFlush[block].isEmpty {
                durable[block] = sinceFlush[block].max()!
                sinceFlush[block] = []
            }
        }
    }

    static func content(block: Int, version: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: UInt64(block) &* 31 &+ version), count: blockSize)
        withUnsafeBytes(of: UInt64(block).bigEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: version.bigEndian) { bytes.replaceSubrange(8..<16, with: $0) }
        return bytes
    }

    /// Writes versions of random blocks with flushes between, until the connection breaks.
    static func workload(_ uri: String, ledger: inout Ledger) async {
        guard let client = try? await LibNBD.connect(uri) else { return }
        while true {
            for _ in 0..<Int.random(in: 1...40) {
                let block = Int.random(in: 0..<blocks)
                let version = ledger.nextVersion
                ledger.nextVersion += 1
                let fua = Int.random(in: 0..<20) == 0
                ledger.sinceFlush[block].insert(version)
                guard
                    (try? await client.write(
                        UInt64(block * blockSize), content(block: block, version: version), fua: fua)) != nil
                else { return }
                if fua {
                    ledger.durable[block] = version
                    ledger.sinceFlush[block] = []
                }
            }
            guard (try? await client.flush()) != nil else { return }
            ledger.flushed()
        }
    }

    /// Blocks whose content is torn, older than their last durable version, or unknown; and
    /// the version each block holds.
    static func verify(_ uri: String, ledger: Ledger) async throws -> (problems: [String], versions: [UInt64]) {
        let client = try await LibNBD.connect(uri)
        let data = try await client.read(0, blocks * blockSize)
        var problems: [String] = []
        var versions = [UInt64](repeating: 0, count: blocks)
        for block in 0..<blocks {
            let bytes = Array(data[(block * blockSize)..<((block + 1) * blockSize)])
            let allowed = ledger.sinceFlush[block].union([ledger.durable[block]])
            if bytes.allSatisfy({ $0 == 0 }) {
                if !allowed.contains(0) { problems.append("block \(block) lost version \(ledger.durable[block])") }
                continue
            }
            let version = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            versions[block] = version
            if bytes != content(block: block, version: version) {
                problems.append("block \(block) is torn or foreign")
            } else if !allowed.contains(version) {
                problems.append("block \(block) holds version \(version), allowed \(allowed.sorted())")
            }
        }
        return (problems, versions)
    }

    @Test func flushedWritesSurviveKill9AtRandomInstants() async throws {
        let directory = NSTemporaryDirectory() + "blockgate-crash-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let daemon = DaemonProcess(directory: directory, arguments: ["--log-level", "warning"])
        try daemon.start()
        var ledger = Ledger()
        for round in 0..<5 {
            let uri = daemon.uri
            let start = ledger
            let worker = Task.detached { () -> Ledger in
                var copy = start
                await CrashTests.workload(uri, ledger: &copy)
                return copy
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 200...900)))
            daemon.kill9()
            ledger = await worker.value
            try daemon.start()
            let (problems, versions) = try await Self.verify(daemon.uri, ledger: ledger)
            let count = problems.count
            let first = problems.prefix(5).joined(separator: "; ")
            #expect(count == 0, "round \(round): \(first)")
            // What the restarted daemon serves is what the next round builds on.
            ledger.durable = versions
            ledger.sinceFlush = [Set<UInt64>](repeating: [], count: Self.blocks)
        }
        daemon.kill9()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
