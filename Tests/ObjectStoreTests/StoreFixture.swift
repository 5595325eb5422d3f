import Foundation
import Glibc
import Logging
import NIOCore
import NIOPosix
import ObjectStore
import ObjectStoreEmulator

/// The object-store backends the same tests run against.
enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The embedded file store.
    case file
    /// Our S3 client against our emulator.
    case emulator
    /// Our S3 client against moto_server, an independent S3 implementation.
    case moto

    var description: String { rawValue }
}

/// One backend set up in a scratch directory, torn down by `close()`.
final class StoreFixture: @unchecked Sendable {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let credentials = SigV4Signer.Credentials(accessKeyID: "testkey", secretAccessKey: "test/secret+key")
    let store: any ObjectStore
    let directory: String
    let emulator: S3Emulator?
    private let channel: (any Channel)?
    private let moto: Process?
    private let pool: NIOThreadPool
    let port: Int

    init(
        _ backend: Backend,
        retry: RetryPolicy = RetryPolicy(baseDelay: .milliseconds(10), maximumDelay: .milliseconds(200))
    ) async throws {
        directory = NSTemporaryDirectory() + "blockgate-objects-\(UUID().uuidString.prefix(8))"
        pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        let group = MultiThreadedEventLoopGroup.singleton
        var logger = Logger(label: "objects")
        logger.logLevel = .warning
        switch backend {
        case .file:
            store = FileObjectStore(root: directory, pool: pool)
            emulator = nil
            channel = nil
            moto = nil
            port = 0
        case .emulator:
            let emulator = S3Emulator(
                directory: directory, credentials: Self.credentials, group: group, pool: pool, logger: logger)
            let channel = try await emulator.listen(host: "127.0.0.1", port: 0)
            self.emulator = emulator
            self.channel = channel
            moto = nil
            port = channel.localAddress!.port!
            store = Self.s3(port: port, retry: retry, logger: logger)
        case .moto:
            port = Self.freePort()
            let python = Self.packageRoot + "/.venv/bin/python3"
            guard FileManager.default.isExecutableFile(atPath: python) else {
                throw ObjectStoreError(.unavailable, "no moto_server in .venv: run scripts/install-deps.sh test")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = ["-m", "moto.server", "-H", "127.0.0.1", "-p", "\(port)"]
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            moto = process
            emulator = nil
            channel = nil
            store = Self.s3(port: port, retry: retry, logger: logger)
            try await Self.waitForPort(port)
        }
        try await store.prepare()
    }

    static func s3(port: Int, retry: RetryPolicy, logger: Logger, credentials: SigV4Signer.Credentials = credentials)
        -> S3ObjectStore
    {
        S3ObjectStore(
            configuration: .init(
                host: "127.0.0.1", port: port, bucket: "test-bucket", credentials: credentials, timeout: .seconds(10),
                retry: retry),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger)
    }

    func close() async {
        if let s3 = store as? S3ObjectStore { await s3.shutdown() }
        try? await channel?.close()
        if let moto {
            kill(moto.processIdentifier, SIGKILL)
            moto.waitUntilExit()
        }
        try? await pool.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func freePort() -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(descriptor) }
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

    private static func waitForPort(_ port: Int) async throws {
        for _ in 0..<150 {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            Glibc.close(descriptor)
            if connected == 0 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ObjectStoreError(.unavailable, "moto_server did not start on port \(port)")
    }
}
