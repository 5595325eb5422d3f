import Foundation

/// A client's record of what it wrote to a volume of 4 KiB blocks and what it made durable, and
/// the checks the durability contract implies after a crash: a write acknowledged before a FLUSH
/// (or with FUA) reads back; no block is torn or foreign.
struct DurabilityLedger: Sendable {
    static let blockSize = 4096
    let blocks: Int
    /// Per block, the version made durable, and versions written since.
    var durable: [UInt64]
    var sinceFlush: [Set<UInt64>]
    var nextVersion: UInt64 = 1

    init(blocks: Int) {
        self.blocks = blocks
        durable = [UInt64](repeating: 0, count: blocks)
        sinceFlush = [Set<UInt64>](repeating: [], count: blocks)
    }

    mutating func flushed() {
        for block in sinceFlush.indices where !sinceFlush[block].isEmpty {
            durable[block] = sinceFlush[block].max()!
            sinceFlush[block] = []
        }
    }

    /// Takes what a restarted daemon serves as the durable state the next round builds on.
    mutating func restart(serving versions: [UInt64]) {
        durable = versions
        sinceFlush = [Set<UInt64>](repeating: [], count: blocks)
    }

    /// The bytes of a block version: block number and version up front, a fill derived from both.
    static func content(block: Int, version: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: UInt64(block) &* 31 &+ version), count: blockSize)
        withUnsafeBytes(of: UInt64(block).bigEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: version.bigEndian) { bytes.replaceSubrange(8..<16, with: $0) }
        return bytes
    }

    /// Writes versions of random blocks with flushes between, until the connection breaks.
    mutating func write(_ uri: String) async {
        guard let client = try? await LibNBD.connect(uri) else { return }
        while true {
            for _ in 0..<Int.random(in: 1...40) {
                let block = Int.random(in: 0..<blocks)
                let version = nextVersion
                nextVersion += 1
                let fua = Int.random(in: 0..<20) == 0
                sinceFlush[block].insert(version)
                guard
                    (try? await client.write(
                        UInt64(block * Self.blockSize), Self.content(block: block, version: version), fua: fua))
                        != nil
                else { return }
                if fua {
                    durable[block] = version
                    sinceFlush[block] = []
                }
            }
            guard (try? await client.flush()) != nil else { return }
            flushed()
        }
    }

    /// Blocks whose content is torn, older than their last durable version, or unknown; the
    /// version each block holds; and the bytes read.
    func verify(_ uri: String) async throws -> (problems: [String], versions: [UInt64], data: [UInt8]) {
        let client = try await LibNBD.connect(uri)
        let data = try await client.read(0, blocks * Self.blockSize)
        var problems: [String] = []
        var versions = [UInt64](repeating: 0, count: blocks)
        for block in 0..<blocks {
            let bytes = Array(data[(block * Self.blockSize)..<((block + 1) * Self.blockSize)])
            let allowed = sinceFlush[block].union([durable[block]])
            if bytes.allSatisfy({ $0 == 0 }) {
                if !allowed.contains(0) { problems.append("block \(block) lost version \(durable[block])") }
                continue
            }
            let version = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            versions[block] = version
            if bytes != Self.content(block: block, version: version) {
                problems.append("block \(block) is torn or foreign")
            } else if !allowed.contains(version) {
                problems.append("block \(block) holds version \(version), allowed \(allowed.sorted())")
            }
        }
        return (problems, versions, data)
    }

    /// Runs `write` on a copy, detached, and hands back the ledger when the connection breaks.
    func writeDetached(_ uri: String) -> Task<DurabilityLedger, Never> {
        Task.detached { [self] in
            var copy = self
            await copy.write(uri)
            return copy
        }
    }
}
