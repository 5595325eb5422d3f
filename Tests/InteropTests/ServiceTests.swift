import Foundation
import Glibc
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
        let installed = try await install("install", environment: ["DESTDIR": destdir, "PREFIX": "/usr"])
        try #require(installed.status == 0, "\(installed.errors)")
        let files = Set(FileManager.default.subpaths(atPath: destdir) ?? []).filter {
            var directory: ObjCBool = false
            return FileManager.default.fileExists(atPath: destdir + "/" + $0, isDirectory: &directory)
                && !directory.boolValue
        }
        #expect(
            files == [
                "usr/bin/blockgate", "usr/lib/systemd/system/blockgate.service",
                "usr/lib/systemd/system/blockgate-objstore.service", "usr/share/doc/blockgate/blockgate.yaml",
                "usr/share/doc/blockgate/nbdtab", "etc/blockgate/blockgate.yaml",
                "usr/share/bash-completion/completions/blockgate", "usr/share/zsh/site-functions/_blockgate",
                "usr/share/fish/vendor_completions.d/blockgate.fish",
            ])
        let unit = try String(contentsOfFile: destdir + "/usr/lib/systemd/system/blockgate.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/blockgate serve --config /etc/blockgate/blockgate.yaml"))
        let completion = try String(
            contentsOfFile: destdir + "/usr/share/bash-completion/completions/blockgate", encoding: .utf8)
        #expect(completion.contains("tape") && completion.contains("volume"))
        #expect(FileManager.default.isExecutableFile(atPath: destdir + "/usr/bin/blockgate"))

        let removed = try await install("uninstall", environment: ["DESTDIR": destdir, "PREFIX": "/usr"])
        #expect(removed.status == 0, "\(removed.errors)")
        let left = (FileManager.default.subpaths(atPath: destdir) ?? []).filter {
            var directory: ObjCBool = false
            return FileManager.default.fileExists(atPath: destdir + "/" + $0, isDirectory: &directory)
                && !directory.boolValue
        }
        #expect(left.isEmpty, "\(left)")
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

    @Test func theDaemonTellsSystemdWhenItIsReadyAndWhenItStops() async throws {
        let directory = NSTemporaryDirectory() + "blockgate-notify-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let notifications = try DatagramSocket(path: directory + "/notify.sock")
        let daemon = DaemonProcess(
            directory: directory, arguments: ["--log-level", "warning"],
            environment: ["NOTIFY_SOCKET": notifications.path])
        try daemon.start()
        let ready = try await Blocking.run { try notifications.receive(timeoutSeconds: 30) }
        #expect(ready.contains("READY=1") && ready.contains("STATUS=serving"), "\(ready)")
        let info = try await Tool.run([Tool.blockgate, "volume", "list", "--admin-socket", daemon.adminSocketPath])
        #expect(info.status == 0 && info.output.contains("demo"), "the daemon was not serving when READY=1 came")
        daemon.terminate()
        let stopping = try await Blocking.run { try notifications.receive(timeoutSeconds: 30) }
        #expect(stopping.contains("STOPPING=1"), "\(stopping)")
        #expect(try await Blocking.run { daemon.waitForExit() } == 0)
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
