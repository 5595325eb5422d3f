import Foundation
import Glibc
import TestSupport
import Testing

/// Running blockgate as a service: what `make install` puts where, the systemd units (checked
/// by systemd-analyze), and the readiness protocol the daemon speaks to systemd.
@Suite struct ServiceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    private func install(_ action: String, environment: [String: String]) async throws -> Tool.Result {
        let assignments = environment.map { "\($0.key)=\($0.value)" }
        return try await Tool.run(["env"] + assignments + [Self.root + "/scripts/install.sh", action, Tool.blockgate])
    }

    @Test func installPutsEveryFileInPlaceAndUninstallRemovesThem() async throws {
        let destdir = NSTemporaryDirectory() + "blockgate-install-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: destdir) }
        let environment = ["DESTDIR": destdir, "PREFIX": "/usr", "MTX_DIR": "/usr/local/sbin"]
        let installed = try await install("install", environment: environment)
        try #require(installed.status == 0, "\(installed.errors)")
        let files = Set(FileManager.default.subpaths(atPath: destdir) ?? []).filter {
            var directory: ObjCBool = false
            return FileManager.default.fileExists(atPath: destdir + "/" + $0, isDirectory: &directory)
                && !directory.boolValue
        }
        #expect(
            files == [
                "usr/bin/blockgate", "usr/bin/blockgate-rsh", "usr/lib/systemd/system/blockgate.service",
                "usr/lib/systemd/system/blockgate-objstore.service", "usr/share/doc/blockgate/blockgate.yaml",
                "usr/share/doc/blockgate/nbdtab", "usr/share/doc/blockgate/README.md", "usr/share/doc/blockgate/cli.md",
                "usr/share/doc/blockgate/tape-format.md", "usr/share/doc/blockgate/tape-tools.md",
                "usr/share/doc/blockgate/rmt.md", "usr/share/doc/blockgate/bacula-mtx-changer.conf",
                "etc/blockgate/blockgate.yaml",
                "usr/share/bash-completion/completions/blockgate", "usr/share/zsh/site-functions/_blockgate",
                "usr/share/fish/vendor_completions.d/blockgate.fish",
            ])
        let unit = try String(contentsOfFile: destdir + "/usr/lib/systemd/system/blockgate.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/blockgate serve --config /etc/blockgate/blockgate.yaml"))
        #expect(unit.contains("Documentation=file:/usr/share/doc/blockgate/README.md"))
        let completion = try String(
            contentsOfFile: destdir + "/usr/share/bash-completion/completions/blockgate", encoding: .utf8)
        #expect(completion.contains("tape") && completion.contains("volume"))
        #expect(FileManager.default.isExecutableFile(atPath: destdir + "/usr/bin/blockgate"))
        // The programs blockgate also is, by the name it is run under.
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: destdir + "/usr/bin/blockgate-rsh") == "blockgate"
        )
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: destdir + "/usr/local/sbin/mtx")
                == "/usr/bin/blockgate")

        let removed = try await install("uninstall", environment: environment)
        #expect(removed.status == 0, "\(removed.errors)")
        let left = (FileManager.default.subpaths(atPath: destdir) ?? []).filter {
            var directory: ObjCBool = false
            return FileManager.default.fileExists(atPath: destdir + "/" + $0, isDirectory: &directory)
                && !directory.boolValue
        }
        #expect(left.isEmpty, "\(left)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: destdir + "/usr/local/sbin/mtx")) == nil)
    }

    @Test func theInstalledUnitsPassSystemdAnalyzeVerify() async throws {
        let prefix = NSTemporaryDirectory() + "blockgate-prefix-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        let installed = try await install("install", environment: ["PREFIX": prefix, "SYSCONFDIR": prefix + "/etc"])
        try #require(installed.status == 0, "\(installed.errors)")
        for unit in ["blockgate.service", "blockgate-objstore.service"] {
            let verified = try await Tool.run(["systemd-analyze", "verify", "\(prefix)/lib/systemd/system/\(unit)"])
            #expect(verified.status == 0 && verified.errors.isEmpty, "\(unit): \(verified.errors)")
        }
    }

    /// The daemon started as the unit starts it (`serve --config FILE`) with NOTIFY_SOCKET set:
    /// READY=1 once it serves, metrics counting the I/O done, STOPPING=1 and exit 0 on SIGTERM.
    @Test func theDaemonSpeaksToSystemdAndServesMetrics() async throws {
        let directory = NSTemporaryDirectory() + "blockgate-service-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let metricsPort = Loopback.freePort()
        let config = directory + "/blockgate.yaml"
        try """
        data_dir: \(directory)
        log_level: warning
        nbd:
          socket: \(directory)/nbd.sock
          listen: ""
        admin:
          socket: \(directory)/admin.sock
        metrics:
          listen: 127.0.0.1:\(metricsPort)
        demo_volume:
          size: 16M
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let notifications = try DatagramSocket(path: directory + "/notify.sock")
        let daemon = DaemonProcess(
            directory: directory, arguments: ["--config", config], environment: ["NOTIFY_SOCKET": notifications.path])
        try await daemon.start()
        let ready = try await Blocking.run { try notifications.receive(timeoutSeconds: 30) }
        #expect(ready.contains("READY=1") && ready.contains("STATUS=serving"), "\(ready)")
        let info = try await Tool.run([Tool.blockgate, "volume", "list", "--admin-socket", daemon.adminSocketPath])
        #expect(info.status == 0 && info.output.contains("demo"), "the daemon was not serving when READY=1 came")

        let client = try await LibNBD.connect(daemon.uri)
        try await client.write(0, [UInt8](repeating: 7, count: 65536))
        _ = try await client.read(0, 65536)
        try await client.flush()
        try await client.shutdown()
        let scrape = try await Tool.run(["curl", "-sf", "http://127.0.0.1:\(metricsPort)/metrics"])
        try #require(scrape.status == 0, "\(scrape.errors)")
        let metrics = scrape.output
        for line in [
            #"blockgate_nbd_requests_total{export="demo",command="write"} 1"#,
            #"blockgate_nbd_bytes_total{export="demo",command="read"} 65536"#,
            #"blockgate_nbd_request_duration_seconds_count{export="demo",command="flush"} 1"#,
            #"blockgate_tape_drive_loaded{drive="0"} 0"#,
        ] {
            #expect(metrics.contains(line), "no \(line) in\n\(metrics)")
        }
        #expect(metrics.contains("blockgate_cache_capacity_bytes "))
        #expect(metrics.contains(#"blockgate_volume_allocated_bytes{volume="demo"} 65536"#))

        daemon.terminate()
        let stopping = try await Blocking.run { try notifications.receive(timeoutSeconds: 30) }
        #expect(stopping.contains("STOPPING=1"), "\(stopping)")
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func reloadAppliesWhatCanChangeLiveAndNamesWhatNeedsARestart() async throws {
        let directory = NSTemporaryDirectory() + "blockgate-reload-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/blockgate.yaml"
        func write(cache: String, extra: String = "") throws {
            try "data_dir: \(directory)\nlog_level: warning\ncache:\n  size: \(cache)\n\(extra)"
                .write(toFile: config, atomically: true, encoding: .utf8)
        }
        try write(cache: "64M")
        let daemon = DaemonProcess(directory: directory, arguments: ["--config", config])
        try await daemon.start()
        let admin = ["--admin-socket", daemon.adminSocketPath]
        func capacity() async throws -> Int? {
            let status = try await Tool.run([Tool.blockgate, "cache", "status", "--json"] + admin)
            let json = try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [String: Any]
            return json?["capacity"] as? Int
        }
        #expect(try await capacity() == 64 << 20)

        try write(cache: "8M", extra: "nbd:\n  default_export: other\nmetrics:\n  listen: 127.0.0.1:1\n")
        let reloaded = try await Tool.run([Tool.blockgate, "reload"] + admin)
        #expect(reloaded.status == 0, "\(reloaded.errors)")
        #expect(reloaded.output.contains("cache size 8M") && reloaded.output.contains("default export other"))
        #expect(reloaded.output.contains("needs a restart: metrics.listen"), "\(reloaded.output)")
        #expect(try await capacity() == 8 << 20)

        try write(cache: "12M")
        daemon.send(SIGHUP)
        var seen: Int?
        for _ in 0..<100 {
            seen = try await capacity()
            if seen == 12 << 20 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(seen == 12 << 20, "SIGHUP did not reload the config")

        try "cache:\n  size: lots\n".write(toFile: config, atomically: true, encoding: .utf8)
        let broken = try await Tool.run([Tool.blockgate, "reload"] + admin)
        #expect(broken.status == 2 && broken.errors.contains("blockgate.yaml:2"), "\(broken.errors)")
        #expect(try await capacity() == 12 << 20)
        try await daemon.kill9()
    }
}

/// A unix datagram socket standing in for systemd's notification socket.
final class DatagramSocket: @unchecked Sendable {
    let path: String
    private let descriptor: Int32

    init(path: String) throws {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard descriptor >= 0, bound == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
    }

    deinit { close(descriptor) }

    /// The next datagram, waiting at most `timeoutSeconds`.
    func receive(timeoutSeconds: Int32) throws -> String {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, timeoutSeconds * 1000) == 1 else { throw POSIXError(.ETIMEDOUT) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count >= 0 else { throw POSIXError(.EIO) }
        return String(decoding: buffer.prefix(count), as: UTF8.self)
    }
}
