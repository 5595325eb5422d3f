import Foundation
import Glibc
import Logging
import NIOCore
import NIOPosix
import ObjectStore
import ObjectStoreEmulator
import TestSupport

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
    /// How long a test's request may wait for its answer: long, because the whole suite runs at
    /// once on two cores and a put waits for its fsync on a disk the other tests keep busy.
    static let requestTimeout = TimeAmount.seconds(60)
    let store: any ObjectStore
    let directory: String
    let emulator: S3Emulator?
    private let channel: (any Channel)?
    private let moto: MotoServer?
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
            let moto = try await MotoServer(packageRoot: Self.packageRoot)
            self.moto = moto
            emulator = nil
            channel = nil
            port = moto.port
            store = Self.s3(port: port, retry: retry, logger: logger)
        }
        try await store.prepare()
    }

    static func s3(port: Int, retry: RetryPolicy, logger: Logger, credentials: SigV4Signer.Credentials = credentials)
        -> S3ObjectStore
    {
        S3ObjectStore(
            configuration: .init(
                host: "127.0.0.1", port: port, bucket: "test-bucket", credentials: credentials, timeout: requestTimeout,
                retry: retry),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger)
    }

    func close() async {
        if let s3 = store as? S3ObjectStore { await s3.shutdown() }
        try? await channel?.close()
        moto?.stop()
        try? await pool.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
