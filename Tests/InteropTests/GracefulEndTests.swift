import Foundation
import Gateway
import NBDProtocol
import NBDTestSupport
import NIOCore
import ObjectStore
import ObjectStoreEmulator
import Testing

/// Ends that must lose nothing: a stopping daemon writes every reply it owes before it closes a
/// connection, and a recover that fails leaves the object store as it was.
@Suite struct GracefulEndTests {
    /// SIGTERM's path (Gateway.stop) with 64 MiB of replies still to write: all of them arrive.
    @Test func stoppingWritesEveryReplyOwed() async throws {
        let fixture = try await GatewayFixture(demoSize: 64 << 20)
        let socket = fixture.socketPath
        let connection = try await Blocking.run {
            let client = try RawNBDClient(unixSocket: socket)
            try client.negotiate(export: "demo", structuredReplies: false)
            for cookie in 1...4 {
                try client.send(
                    NBDRequestHeader(
                        flags: [], command: .read, cookie: UInt64(cookie), offset: UInt64(cookie - 1) << 24,
                        length: 16 << 20))
            }
            return Connection(client: client)
        }
        try await Task.sleep(for: .milliseconds(300))
        let stopping = Task { await fixture.stop() }
        let received = try await Blocking.run {
            var received = 0
            for _ in 1...4 { received += try connection.client.receiveReply().data.count }
            return received
        }
        await stopping.value
        #expect(received == 64 << 20)
    }

    /// A blocking client handed between the threads of one test, used by one at a time.
    private struct Connection: @unchecked Sendable {
        let client: RawNBDClient
    }

    /// `volume recover` while the store fails the chunk listing (every retry of it) fails, records nothing, and the
    /// next start deletes none of the volume's objects; a later recover gets everything back.
    @Test func aFailedRecoverDeletesNothing() async throws {
        let peer = try await S3Peer(.emulator)
        let faults = try #require(peer.emulator?.faults)
        let original = try await GatewayFixture(objectStore: peer.url())
        try await original.gateway.manager.create(name: "kept", size: 8 << 20, chunkSize: 1 << 20, kind: .cached)
        let data = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 7) | 1 }
        let writer = try await LibNBD.connect(original.uri("kept"))
        try await writer.write(0, data)
        try await writer.shutdown()
        try await original.drain("kept")
        let uuid = try original.gateway.manager.info(name: "kept").uuid
        await original.stop()  // the data directory is lost
        let prefix = "volumes/\(uuid)/"
        let stored = try await peer.client().list(prefix: prefix).count
        #expect(stored == 8)

        let fresh = try await GatewayFixture(objectStore: peer.url())
        faults.settings.rules = [FaultPlan.Rule(.list, prefix: prefix + "chunks/", count: 6)]
        await #expect(throws: GatewayError.self) { try await fresh.gateway.manager.recover(name: "kept") }
        #expect(fresh.gateway.manager.names.contains("kept") == false)
        await fresh.stop(keepingData: true)
        let restarted = try await GatewayFixture(objectStore: peer.url(), directory: fresh.directory)
        try await Task.sleep(for: .milliseconds(500))  // time for any sweep to run
        #expect(try await peer.client().list(prefix: prefix).count == stored, "objects were deleted")
        try await restarted.gateway.manager.recover(name: "kept")
        let reader = try await LibNBD.connect(restarted.uri("kept"))
        let back = try await reader.read(0, 8 << 20)
        try await reader.shutdown()
        #expect(back == data)
        await restarted.stop()
        await peer.stop()
    }
}
