import ChunkEngine
import Foundation
import LocalIO
import Logging
import Metadata
import NIOCore
import NIOPosix
import ObjectStore

/// A volume in a scratch directory, with real SQLite, real file I/O and, for a cached volume, an
/// embedded object store in the same directory.
public final class VolumeFixture: @unchecked Sendable {
    public let directory: String
    public let store: MetadataStore
    public let journal: MetadataJournal
    public let io: any FileIO
    public let record: VolumeRecord
    public let objects: FileObjectStore?
    public let remote: RemoteContext?
    private let pool: NIOThreadPool
    public var volume: Volume
    public let loop = MultiThreadedEventLoopGroup.singleton.next()

    public init(
        size: UInt64, chunkSize: Int = 65536, backend: FileIOBackendChoice = .uring, kind: Volume.Kind = .thin,
        settings: RemoteSettings = RemoteSettings(), wrap: (any FileIO) -> any FileIO = { $0 },
        wrapStore: (any ObjectStore) -> any ObjectStore = { $0 }
    ) async throws {
        directory = NSTemporaryDirectory() + "blockgate-volume-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try MetadataStore(path: "\(directory)/meta.db")
        journal = MetadataJournal(store: store)
        io = wrap(try makeFileIO(backend, logger: Logger(label: "test")))
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        if kind == .cached {
            let objects = FileObjectStore(root: "\(directory)/objects", pool: pool)
            try await objects.prepare()
            self.objects = objects
            remote = RemoteContext(
                store: wrapStore(objects), settings: settings, group: MultiThreadedEventLoopGroup.singleton)
        } else {
            objects = nil
            remote = nil
        }
        record = try store.createVolume(
            name: "vol", kind: kind.rawValue, size: size, chunkSize: UInt32(chunkSize), createdAt: 0,
            uuid: UUID().uuidString.lowercased())
        volume = try await Volume.open(
            record: record, path: "\(directory)/vol.img", store: store, journal: journal, io: io, remote: remote,
            logger: Logger(label: "test"))
    }

    /// A fixture whose file I/O also keeps what a power loss could leave (see `PowerLossFileIO`).
    public static func withPowerLoss(
        size: UInt64, chunkSize: Int = 65536, kind: Volume.Kind = .thin, settings: RemoteSettings = RemoteSettings()
    ) async throws -> (VolumeFixture, PowerLossFileIO) {
        var powerLoss: PowerLossFileIO!
        let fixture = try await VolumeFixture(
            size: size, chunkSize: chunkSize, kind: kind, settings: settings,
            wrap: { base in
                powerLoss = PowerLossFileIO(wrapping: base)
                return powerLoss
            })
        return (fixture, powerLoss)
    }

    /// Uploads every dirty chunk, then stops the uploader (cached volumes).
    public func uploadAll() async throws {
        volume.startUploader()
        try await volume.waitUntilUploaded()
        await volume.stopUploader()
    }

    /// Opens the volume again from its file and database, as a restarted daemon would, without
    /// flushing the current instance (what a kill -9 leaves behind).
    public func reopen() async throws {
        await volume.stopUploader()
        volume = try await Volume.open(
            record: record, path: "\(directory)/vol.img", store: store, journal: journal, io: io, remote: remote,
            logger: Logger(label: "test"))
    }

    /// The volume's file.
    public var path: String { "\(directory)/vol.img" }

    public func close() async {
        await volume.stopUploader()
        await journal.shutdown()
        await io.shutdown()
        try? await pool.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: directory)
    }

    public func write(_ offset: UInt64, _ bytes: [UInt8], fua: Bool = false) async throws {
        var buffer = ByteBuffer()
        buffer.writeBytes(bytes)
        try await volume.write(offset: offset, data: buffer, fua: fua, on: loop).get()
    }

    /// Whether `count` bytes at `offset` all equal `byte` (a Bool, so that a failing expectation
    /// does not print the bytes).
    public func holds(_ byte: UInt8, at offset: UInt64, count: Int) async throws -> Bool {
        try await read(offset, count).allSatisfy { $0 == byte }
    }

    public func read(_ offset: UInt64, _ length: Int) async throws -> [UInt8] {
        switch try await volume.read(offset: offset, length: length, on: loop).get() {
        case .data(let buffer): return Array(buffer.readableBytesView)
        case .segments(let segments):
            return segments.flatMap { segment -> [UInt8] in
                switch segment {
                case .data(let buffer): Array(buffer.readableBytesView)
                case .hole(let length): [UInt8](repeating: 0, count: length)
                }
            }
        }
    }
}
