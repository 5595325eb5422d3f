import Foundation
import Gateway
import LocalIO
import Logging
import NIOPosix

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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        merged["PATH"] = "/usr/bin:/usr/sbin:/bin:" + (merged["PATH"] ?? "")
        merged.merge(environment) { $1 }
        process.environment = merged
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, output: String(decoding: outData, as: UTF8.self),
            errors: String(decoding: errData, as: UTF8.self))
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
