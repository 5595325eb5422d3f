import Foundation
import Gateway
import Testing

/// Volumes come and go as exports without a restart; the CLI reports and refuses clearly.
@Suite(.serialized) struct VolumeLifecycleTests {
    @Test func exportsAppearAndDisappearWithTheirVolumes() async throws {
        let fixture = try await GatewayFixture()
        #expect(try await Tool.run(["nbdinfo", "--size", fixture.uri("late")]).status != 0)
        try await fixture.gateway.manager.create(name: "late", size: 1 << 20)
        #expect(try await Tool.run(["nbdinfo", "--size", fixture.uri("late")]).output.contains("1048576"))
        let attached = try await LibNBD.connect(fixture.uri("late"))
        await #expect(throws: GatewayError.self) {
            try await fixture.gateway.manager.delete(name: "late", force: false)
        }
        withExtendedLifetime(attached) {}
        try await fixture.gateway.manager.delete(name: "late", force: true)
        await #expect(throws: (any Error).self) { try await attached.read(0, 512) }
        #expect(try await Tool.run(["nbdinfo", "--size", fixture.uri("late")]).status != 0)
        await fixture.stop()
    }

    @Test func cliCreatesListsInspectsAndDeletes() async throws {
        let fixture = try await GatewayFixture()
        let admin = ["--admin-socket", fixture.adminSocketPath]
        let create = try await Tool.run(
            [Tool.blockgate, "volume", "create", "cli1", "--size", "16M", "--chunk-size", "64K"] + admin)
        #expect(create.status == 0, "\(create.errors)")
        let info = try await Tool.run([Tool.blockgate, "volume", "info", "cli1", "--json"] + admin)
        let json = try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as! [String: Any]
        #expect(json["name"] as? String == "cli1")
        #expect(json["kind"] as? String == "thin")
        #expect(json["size"] as? Int == 16 << 20)
        #expect(json["chunk_size"] as? Int == 65536)
        #expect(json["allocated_chunks"] as? Int == 0)
        #expect(json["allocated_bytes"] as? Int == 0)
        let list = try await Tool.run([Tool.blockgate, "volume", "list"] + admin)
        #expect(list.output.contains("cli1") && list.output.contains("demo"))
        let listJSON = try await Tool.run([Tool.blockgate, "volume", "list", "--json"] + admin)
        #expect((try JSONSerialization.jsonObject(with: Data(listJSON.output.utf8)) as! [Any]).count == 2)
        #expect(try await Tool.run([Tool.blockgate, "volume", "delete", "cli1"] + admin).status == 0)
        #expect(try await Tool.run([Tool.blockgate, "volume", "info", "cli1"] + admin).status == 1)
        await fixture.stop()
    }

    @Test func cliFindsTheAdminSocketThroughEnvironmentAndConfig() async throws {
        let fixture = try await GatewayFixture()
        let byEnvironment = try await Tool.run(
            [Tool.blockgate, "volume", "list"], environment: ["BLOCKGATE_ADMIN_SOCKET": fixture.adminSocketPath])
        #expect(byEnvironment.status == 0 && byEnvironment.output.contains("demo"), "\(byEnvironment.errors)")
        let config = fixture.directory + "/cli.yaml"
        try "admin:\n  socket: \(fixture.adminSocketPath)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let byConfig = try await Tool.run([Tool.blockgate, "volume", "info", "demo", "--config", config])
        #expect(byConfig.status == 0 && byConfig.output.contains("demo"), "\(byConfig.errors)")
        await fixture.stop()
    }

    @Test(arguments: [("posix", "POSIX pread/pwrite"), ("auto", "local I/O: io_uring")])
    func theDaemonSaysWhichIOBackendRuns(_ backend: String, _ line: String) async throws {
        let directory = NSTemporaryDirectory() + "blockgate-backend-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let daemon = DaemonProcess(directory: directory, arguments: ["--io-backend", backend])
        try await daemon.start()
        let client = try await LibNBD.connect(daemon.uri)
        try await client.write(4096, [UInt8](repeating: 0x3C, count: 8192))
        let back = try await client.read(4096, 8192)
        #expect(back.allSatisfy { $0 == 0x3C })
        try await daemon.kill9()
        let log = try String(contentsOfFile: daemon.logPath, encoding: .utf8)
        #expect(log.contains(line), "\(log)")
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func cliErrorsSayWhatToDoAndExitWithMeaningfulCodes() async throws {
        let fixture = try await GatewayFixture()
        let admin = ["--admin-socket", fixture.adminSocketPath]
        let badSize = try await Tool.run([Tool.blockgate, "volume", "create", "x", "--size", "lots"] + admin)
        #expect(badSize.status == 2 && badSize.errors.contains("10G"), "\(badSize.errors)")
        let badName = try await Tool.run([Tool.blockgate, "volume", "create", "../etc", "--size", "1M"] + admin)
        #expect(badName.status == 2 && badName.errors.contains("not a valid volume name"), "\(badName.errors)")
        let missing = try await Tool.run([Tool.blockgate, "volume", "info", "nope"] + admin)
        #expect(missing.status == 1 && missing.errors.contains("volume list"), "\(missing.errors)")
        let taken = try await Tool.run([Tool.blockgate, "volume", "create", "demo", "--size", "1M"] + admin)
        #expect(taken.status == 1 && taken.errors.contains("already exists"), "\(taken.errors)")
        let usage = try await Tool.run([Tool.blockgate, "volume", "create"] + admin)
        #expect(usage.status == 2, "\(usage.errors)")
        let unreachable = try await Tool.run([
            Tool.blockgate, "volume", "list", "--admin-socket", "/nonexistent/admin.sock",
        ])
        #expect(unreachable.status == 3 && unreachable.errors.contains("blockgate serve"), "\(unreachable.errors)")
        await fixture.stop()
    }
}
