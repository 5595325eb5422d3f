import Foundation
import Gateway
import Glibc
import Testing

/// Who may connect and what they may do: TCP clients outside the allowed networks, the
/// connection limit, read-only exports, the unix socket's permissions.
@Suite struct AccessControlTests {
    private func refused(_ uri: String) async -> Bool {
        (try? await LibNBD.connect(uri)) == nil
    }

    @Test func tcpClientsOutsideTheAllowedNetworksAreRefused() async throws {
        let fixture = try await GatewayFixture(configure: { $0.allowedNetworks = ["10.0.0.0/8"] })
        #expect(await refused(fixture.tcpURI("demo")))
        let viaSocket = try await LibNBD.connect(fixture.uri("demo"))
        #expect(viaSocket.size == 64 << 20)
        try await viaSocket.shutdown()
        await fixture.stop()
    }

    /// An export with an `export_allow` rule is hidden from and refused to TCP clients outside
    /// its networks, while other exports and unix socket clients are not affected.
    @Test func exportsWithRulesAreOpenOnlyToTheirNetworks() async throws {
        let fixture = try await GatewayFixture(configure: {
            $0.exportAllowedNetworks = ["demo": ["10.0.0.0/8"], "open": ["127.0.0.1/32"]]
        })
        try await fixture.gateway.manager.create(name: "open", size: 1 << 20)
        try await fixture.gateway.manager.create(name: "other", size: 1 << 20)
        let list = try await Tool.run(["nbdinfo", "--list", "--json", fixture.tcpURI("")])
        try #require(list.status == 0, "\(list.errors)")
        #expect(list.output.contains("\"open\"") && list.output.contains("\"other\""), "\(list.output)")
        #expect(!list.output.contains("\"demo\""), "a refused export is listed: \(list.output)")
        #expect(await refused(fixture.tcpURI("demo")))
        #expect(try fixture.gateway.manager.info(name: "demo").clients == 0, "a refused client was counted")
        for export in ["open", "other"] {
            let client = try await LibNBD.connect(fixture.tcpURI(export))
            #expect(client.size == 1 << 20)
            try await client.shutdown()
        }
        let viaSocket = try await LibNBD.connect(fixture.uri("demo"))
        #expect(viaSocket.size == 64 << 20)
        try await viaSocket.shutdown()
        await fixture.stop()
    }

    @Test func connectionsPastTheLimitAreRefusedUntilOneCloses() async throws {
        let fixture = try await GatewayFixture(configure: { $0.maximumConnections = 2 })
        let first = try await LibNBD.connect(fixture.uri("demo"))
        let second = try await LibNBD.connect(fixture.tcpURI("demo"))
        #expect(await refused(fixture.uri("demo")))
        try await first.shutdown()
        var third: LibNBD?
        for _ in 0..<100 where third == nil {
            third = try? await LibNBD.connect(fixture.uri("demo"))
            if third == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(third != nil, "a connection slot did not come back")
        try await second.shutdown()
        try await third?.shutdown()
        await fixture.stop()
    }

    @Test func readOnlyExportsServeReadsAndRefuseWrites() async throws {
        let fixture = try await GatewayFixture(configure: { $0.readOnlyExports = ["demo"] })
        let client = try await LibNBD.connect(fixture.uri("demo"))
        #expect(client.isReadOnly)
        #expect(try await client.read(0, 4096) == [UInt8](repeating: 0, count: 4096))
        do {
            try await client.write(0, [1, 2, 3])
            Issue.record("a write to a read-only export succeeded")
        } catch let failure as LibNBD.Failure {
            #expect(failure.errno == EPERM || failure.description.contains("read-only"))
        }
        try await client.shutdown()
        let info = try await Tool.run(["nbdinfo", fixture.uri("demo")])
        #expect(info.output.contains("is_read_only: true"), "\(info.output)")
        await fixture.stop()
    }

    @Test func theRequestSizeCapIsAdvertisedAsTheMaximumBlockSize() async throws {
        let fixture = try await GatewayFixture(configure: { $0.maximumRequestSize = 64 << 10 })
        let info = try await Tool.run(["nbdinfo", "--json", fixture.uri("demo")])
        try #require(info.status == 0, "\(info.errors)")
        #expect(info.output.contains("\"block_size_maximum\": 65536"), "\(info.output)")
        await fixture.stop()
    }

    @Test func theUnixSocketHasTheConfiguredMode() async throws {
        let fixture = try await GatewayFixture(configure: { $0.socketMode = 0o600 })
        var status = stat()
        #expect(stat(fixture.socketPath, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        await fixture.stop()
    }
}
