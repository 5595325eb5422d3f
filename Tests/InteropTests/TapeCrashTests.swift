import Foundation
import Synchronization
import Testing

/// kill -9 of a daemon while a client writes to a tape drive: after a restart, the sealed files
/// are intact and the file the crash cut short is sealed at (at least) its last flush.
@Suite(.serialized) struct TapeCrashTests {
    private func bytes(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 >> 5) &* 17 &+ seed &* 3 &+ $0) }
    }

    @Test func sealedFilesAndTheFlushedPartOfTheOpenFileSurviveKill9() async throws {
        let directory = NSTemporaryDirectory() + "blockgate-tape-crash-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let daemon = DaemonProcess(directory: directory, arguments: ["--log-level", "warning"])
        try await daemon.start()
        let admin = ["--admin-socket", daemon.adminSocketPath]
        func cli(_ arguments: String...) async throws -> String {
            let result = try await Tool.run([Tool.blockgate] + arguments + admin)
            try #require(result.status == 0, "blockgate \(arguments.joined(separator: " ")): \(result.errors)")
            return result.output
        }
        _ = try await cli("tape", "create", "CRASH0001", "--size", "64M")
        _ = try await cli("tape", "load", "CRASH0001", "--drive", "0")
        let uri = daemon.uri(export: "drive/0")

        // As `tar -cf /dev/nbdX; sync; nbd-client -d`: writes and a disconnect, no FLUSH. Once the
        // daemon has taken the disconnect (the drive shows no client; status waits for the seal),
        // the file survives a kill -9.
        let sealed = bytes(300_000, seed: 1)
        let first = try await LibNBD.connect(uri)
        try await first.write(0, sealed)
        try await first.shutdown()
        for _ in 0..<200 {
            let status = try await cli("drive", "status", "0", "--json")
            if status.contains("\"attached\" : false") { break }
        }
        try await daemon.kill9()
        try await daemon.start()

        // The open file: 64 KiB writes, a flush after every fourth, until the daemon dies (the
        // connection stays open, so nothing seals the file).
        let piece = 65536
        let flushed = Atomic<Int>(0)
        let writer = Task {
            guard let client = try? await LibNBD.connect(uri) else { return }
            var offset = 0
            while true {
                if offset < 48 << 20 {
                    guard (try? await client.write(UInt64(offset), self.bytes(piece, seed: offset / piece))) != nil
                    else { return }
                    offset += piece
                }
                if offset % (4 * piece) == 0 {
                    guard (try? await client.flush()) != nil else { return }
                    flushed.store(offset, ordering: .sequentiallyConsistent)
                }
            }
        }
        for _ in 0..<600 where flushed.load(ordering: .sequentiallyConsistent) < 1 << 20 {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
        try await daemon.kill9()
        await writer.value
        let durable = flushed.load(ordering: .sequentiallyConsistent)
        #expect(durable > 0, "the writer flushed nothing before the kill")

        try await daemon.start()
        let info =
            try JSONSerialization.jsonObject(
                with: Data(try await cli("tape", "info", "CRASH0001", "--json").utf8)) as? [String: Any]
        // The file the crash cut short is sealed at its durable length: the head is after it.
        let files = info?["files"] as? [Int] ?? []
        #expect(files.count == 2 && files.first == sealed.count && (files.last ?? 0) >= durable, "files: \(files)")
        #expect((info?["open_bytes"] as? Int ?? 0) == 0)
        _ = try await cli("drive", "rewind", "0")
        let reader = try await LibNBD.connect(uri)
        #expect(try await reader.read(0, sealed.count) == sealed)
        try await reader.shutdown()
        _ = try await cli("drive", "fsf", "0")
        let openReader = try await LibNBD.connect(uri)
        let back = try await openReader.read(0, durable)
        let expected = stride(from: 0, to: durable, by: piece).flatMap { bytes(piece, seed: $0 / piece) }
        #expect(back == expected, "the open file differs within its \(durable) flushed bytes")
        try await openReader.shutdown()
        try await daemon.kill9()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
