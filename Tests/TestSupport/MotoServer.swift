import Foundation
import Glibc

/// moto_server, an independent S3 implementation, as a child process on a free loopback port
/// (from the repository's .venv, which scripts/install-deps.sh creates).
public final class MotoServer: @unchecked Sendable {
    public let port: Int
    private let process: ChildProcess

    /// Starts moto_server and waits until it accepts connections.
    public init(packageRoot: String) async throws {
        let python = packageRoot + "/.venv/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw ChildProcess.Failure("no moto_server in .venv: run scripts/install-deps.sh test")
        }
        port = Loopback.freePort()
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(null) }
        process = try ChildProcess(
            executable: python, arguments: ["-m", "moto.server", "-H", "127.0.0.1", "-p", "\(port)"],
            environment: ProcessInfo.processInfo.environment, output: null, errors: null)
        for _ in 0..<150 {
            if Loopback.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        stop()
        throw ChildProcess.Failure("moto_server did not start on port \(port)")
    }

    /// Kills the server.
    public func stop() {
        guard process.isRunning else { return }
        process.signal(SIGKILL)
        process.wait()
    }
}

/// Loopback socket helpers for tests.
public enum Loopback {
    /// A TCP port nobody listens on now.
    public static func freePort() -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    public static func accepts(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == 0
    }
}
