import Codecs
import Foundation
import Logging
import NIOCore
import NIOPosix
import ObjectStore
import ObjectStoreEmulator
import TestSupport
import Testing

/// An S3 service for the gateway to use in a test: our emulator (in this process) or moto_server.
final class S3Peer: @unchecked Sendable {
    enum Kind: String, CaseIterable, Sendable, CustomStringConvertible {
        case emulator, moto
        var description: String { rawValue }
    }

    static let credentials = SigV4Signer.Credentials(accessKeyID: "interop", secretAccessKey: "interop/secret")
    let port: Int
    /// The emulator, to switch its faults (nil for moto).
    let emulator: S3Emulator?
    private let channel: (any Channel)?
    private let moto: MotoServer?
    private let pool: NIOThreadPool
    private let directory: String

    init(_ kind: Kind, latency: TimeAmount = .zero) async throws {
        directory = NSTemporaryDirectory() + "blockgate-s3-\(UUID().uuidString.prefix(8))"
        pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        switch kind {
        case .emulator:
            var logger = Logger(label: "emulator")
            logger.logLevel = .warning
            let emulator = S3Emulator(
                directory: directory, credentials: Self.credentials, faults: FaultPlan(.init(latency: latency)),
                group: MultiThreadedEventLoopGroup.singleton, pool: pool, logger: logger)
            let channel = try await emulator.listen(host: "127.0.0.1", port: 0)
            self.emulator = emulator
            self.channel = channel
            moto = nil
            port = channel.localAddress!.port!
        case .moto:
            let moto = try await MotoServer(packageRoot: Tool.packageRoot)
            self.moto = moto
            emulator = nil
            channel = nil
            port = moto.port
        }
    }

    /// The gateway's `--object-store` URL for a bucket of this service.
    func url(bucket: String = "blockgate") -> String { "s3://\(bucket)?endpoint=http://127.0.0.1:\(port)" }

    /// A client of the same bucket, to look at what the gateway stored.
    func client(bucket: String = "blockgate") -> S3ObjectStore {
        S3ObjectStore(
            configuration: .init(host: "127.0.0.1", port: port, bucket: bucket, credentials: Self.credentials),
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "peer"))
    }

    func stop() async {
        try? await channel?.close()
        moto?.stop()
        try? await pool.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

extension S3Peer {
    /// Expects the bucket to hold one object per chunk of a volume that holds data, with the
    /// chunk's bytes, and none for an all-zero chunk.
    func expectBucket(volumeUUID uuid: String, holds volume: [UInt8], chunkSize: Int) async throws {
        let client = client()
        let prefix = "volumes/\(uuid)/chunks/"
        var objects: [Int: String] = [:]
        for key in try await client.list(prefix: prefix).map(\.key) {
            let index = try #require(Int(key.dropFirst(prefix.count).split(separator: "-")[0]))
            #expect(objects[index] == nil, "chunk \(index) has two objects")
            objects[index] = key
        }
        #expect(!objects.isEmpty)
        for index in 0..<(volume.count / chunkSize) {
            let expected = volume[(index * chunkSize)..<((index + 1) * chunkSize)]
            guard let key = objects[index] else {
                #expect(expected.allSatisfy { $0 == 0 }, "chunk \(index) holds data but has no object")
                continue
            }
            let stored = try await client.get(try ObjectKey(key), range: nil)
            let generation = try #require(UInt64(key.split(separator: "-").last!))
            var decoded = ByteBuffer()
            try ObjectCodec(scope: uuid).decodeWhole(
                ObjectBytes(stored), identity: .chunk(index: index, generation: generation), logicalLength: chunkSize,
                into: &decoded
            )
            #expect(Array(decoded.readableBytesView) == Array(expected), "object of chunk \(index) differs")
        }
    }
}
