import Foundation
import Gateway
import Glibc
import LocalIO
import Logging
import NIOPosix
import TestSupport

/// A real gateway in this process, in a scratch directory, with TCP on a free loopback port.
final class GatewayFixture: @unchecked Sendable {
    let directory: String
    let gateway: Gateway

    init(
        ioBackend: FileIOBackendChoice = .auto, demoSize: UInt64 = 64 << 20, objectStore: String? = nil,
        shelf: ((String) -> String)? = nil, tls: GatewayConfig.TLSSettings = GatewayConfig.TLSSettings(),
        configure: (inout GatewayConfig) -> Void = { _ in },
        cacheSize: UInt64 = 64 << 20, uploadBuffer: UInt64 = 16 << 20, backpressureTimeoutSeconds: Int64 = 60,
        directory: String? = nil
    ) async throws {
        self.directory = directory ?? NSTemporaryDirectory() + "blockgate-interop-\(UUID().uuidString.prefix(8))"
        let directory = self.directory
        var config = GatewayConfig()
        config.dataDirectory = directory
        config.nbdListen = "127.0.0.1:0"
        config.ioBackend = ioBackend
        config.demoVolume = GatewayConfig.DemoVolume(name: "demo", size: demoSize)
        config.demoTapes = nil
        config.objectStore = objectStore
        config.shelf = shelf?(directory)
        config.tls = tls
        configure(&config)
        config.accessKey = S3Peer.credentials.accessKeyID
        config.secretKey = S3Peer.credentials.secretAccessKey
        config.cacheSize = cacheSize
        config.uploadBuffer = uploadBuffer
        config.backpressureTimeoutSeconds = backpressureTimeoutSeconds
        config.uploadSettleSeconds = 2
        var logger = Logger(label: "interop")
        logger.logLevel = .warning
        gateway = try await Gateway.start(config: config, logger: logger)
    }

    var socketPath: String { directory + "/nbd.sock" }
    var adminSocketPath: String { directory + "/admin.sock" }

    /// An NBD URI for an export over the unix socket.
    func uri(_ export: String) -> String { "nbd+unix:///\(export)?socket=\(socketPath)" }

    /// An NBD URI for an export over TCP.
    func tcpURI(_ export: String) -> String { "nbd://127.0.0.1:\(gateway.tcpPort!)/\(export)" }

    /// Stops the gateway; its data directory goes too unless `keepingData` (to start again on it).
    func stop(keepingData: Bool = false) async {
        await gateway.stop()
        if !keepingData { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Flushes a volume and waits until none of it is left to upload and every replaced object
    /// is deleted (those whose uploads settle first among them).
    func drain(_ name: String) async throws {
        var info = try await gateway.manager.flush(name: name)
        while (info.dirtyBytes ?? 0) > 0 || (info.pendingDeletes ?? 0) > 0 || (info.settlingDeletes ?? 0) > 0 {
            try await Task.sleep(for: .milliseconds(50))
            info = try gateway.manager.info(name: name)
        }
    }
}

/// Runs blocking work (libnbd calls, waiting for a process) on threads of its own, so that tests
/// never hold the cooperative threads the gateway's tasks need.
enum Blocking {
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }
}

/// Runs an external program and collects its output.
struct Tool {
    struct Result {
        let status: Int32
        let output: String
        let errors: String
    }

    /// Runs `arguments[0]` (found on PATH, with /usr/bin first) and waits, on a thread of its
    /// own (a test must not block the few threads the gateway's tasks run on).
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        try await Blocking.run { try runBlocking(arguments, environment: environment) }
    }

    private static func runBlocking(_ arguments: [String], environment: [String: String]) throws -> Result {
        var merged = ProcessInfo.processInfo.environment
        merged["PATH"] = "/usr/bin:/usr/sbin:/bin:" + (merged["PATH"] ?? "")
        merged.merge(environment) { $1 }
        var output: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        guard pipe(&output) == 0, pipe(&errors) == 0 else {
            throw ChildProcess.Failure("cannot make pipes for \(arguments)")
        }
        // No other child may hold a write end: the reads below end when this child's do.
        for descriptor in output + errors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        let process: ChildProcess
        do {
            process = try ChildProcess(
                executable: "/usr/bin/env", arguments: arguments, environment: merged, output: output[1],
                errors: errors[1])
        } catch {
            for descriptor in output + errors { close(descriptor) }
            throw error
        }
        close(output[1])
        close(errors[1])
        let outData = readToEnd(output[0])
        let errData = readToEnd(errors[0])
        let status = process.wait()
        return Result(
            status: status, output: String(decoding: outData, as: UTF8.self),
            errors: String(decoding: errData, as: UTF8.self))
    }

    /// Reads a descriptor until its end, then closes it.
    private static func readToEnd(_ descriptor: Int32) -> [UInt8] {
        defer { close(descriptor) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count > 0 {
                data += buffer[0..<count]
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return data
            }
        }
    }

    /// The repository root (for the built executable and scripts).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The blockgate executable of this build: beside the test runner (so that a sanitizer
    /// build tests its own executable), else in .build/debug.
    static let blockgate: String = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("blockgate").path
        return FileManager.default.isExecutableFile(atPath: beside) ? beside : packageRoot + "/.build/debug/blockgate"
    }()
}
