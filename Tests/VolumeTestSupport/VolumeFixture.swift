import ChunkEngine
import Codecs
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
    /// The volume's file.
    public let path: String
    /// The metadata database.
    public let databasePath: String
    /// The data key of an encrypted volume.
    public let dataKey: DataKey?

    /// - Parameters:
    ///   - objectFormat: how a cached volume's objects are written; its data key is `dataKey`.
    public init(
        size: UInt64, chunkSize: Int = 65536, backend: FileIOBackendChoice = .uring, kind: Volume.Kind = .thin,
        settings: RemoteSettings = RemoteSettings(), objectFormat: ObjectFormatRecord = .init(),
        dataKey: DataKey? = nil, wrap: (any FileIO) -> any FileIO = { $0 },
        wrapStore: (any ObjectStore) -> any ObjectStore = { $0 }
    ) async throws {
        directory = NSTemporaryDirectory() + "blockgate-volume-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        databasePath = "\(directory)/meta.db"
        store = try MetadataStore(path: databasePath)
        journal = MetadataJournal(store: store)
        io = wrap(try makeFileIO(backend, logger: Logger(label: "test")))
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        (objects, remote) = try await Self.objectStore(
            in: directory, cached: kind == .cached, pool: pool, settings: settings, wrap: wrapStore)
        record = try store.createVolume(
            name: "vol", kind: kind.rawValue, size: size, chunkSize: UInt32(chunkSize), createdAt: 0,
            uuid: UUID().uuidString.lowercased(), objectFormat: objectFormat)
        path = "\(directory)/vol.img"
        self.dataKey = dataKey
        volume = try await Volume.open(
            record: record, path: path, store: store, journal: journal, io: io, remote: remote, dataKey: dataKey,
            logger: Logger(label: "test"))
    }

    /// Runs `body` on the volume kept in `directory` (see `init(existing:)`), then closes it,
    /// leaving the directory in place.
    public static func opening<T>(
        existing directory: String, database: String = "meta.db", file: String = "vol.img",
        settings: RemoteSettings = RemoteSettings(), wrapStore: (any ObjectStore) -> any ObjectStore = { $0 },
        _ body: (VolumeFixture) async throws -> T
    ) async throws -> T {
        let fixture = try await VolumeFixture(
            existing: directory, database: database, file: file, settings: settings, wrapStore: wrapStore)
        do {
            let result = try await body(fixture)
            await fixture.close(removing: false)
            return result
        } catch {
            await fixture.close(removing: false)
            throw error
        }
    }

    /// Opens the one volume kept in `directory` (its database `database`, its file `file`, and
    /// if it is cached the embedded store `objects/`, as `wrapStore` wraps it), as a restarted
    /// daemon would.
    public init(
        existing directory: String, database: String = "meta.db", file: String = "vol.img",
        settings: RemoteSettings = RemoteSettings(), wrapStore: (any ObjectStore) -> any ObjectStore = { $0 }
    ) async throws {
        self.directory = directory
        databasePath = "\(directory)/\(database)"
        store = try MetadataStore(path: databasePath)
        journal = MetadataJournal(store: store)
        io = try makeFileIO(.uring, logger: Logger(label: "test"))
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        guard let record = try store.volumes().first else {
            throw MetadataError("\(directory)/\(database) records no volume")
        }
        self.record = record
        (objects, remote) = try await Self.objectStore(
            in: directory, cached: record.kind == Volume.Kind.cached.rawValue, pool: pool, settings: settings,
            wrap: wrapStore)
        path = "\(directory)/\(file)"
        dataKey = nil
        volume = try await Volume.open(
            record: record, path: path, store: store, journal: journal, io: io, remote: remote,
            logger: Logger(label: "test"))
    }

    /// The embedded store of a cached volume in `directory`, and the context its volume uses.
    private static func objectStore(
        in directory: String, cached: Bool, pool: NIOThreadPool, settings: RemoteSettings,
        wrap: (any ObjectStore) -> any ObjectStore
    ) async throws -> (FileObjectStore?, RemoteContext?) {
        guard cached else { return (nil, nil) }
        let objects = FileObjectStore(root: "\(directory)/objects", pool: pool)
        try await objects.prepare()
        return (
            objects,
            RemoteContext(store: wrap(objects), settings: settings, group: MultiThreadedEventLoopGroup.singleton)
        )
    }

    /// A fixture whose file I/O keeps what a power loss could leave (`world.powerLoss`), and
    /// whose file I/O and object store are recorded, so that crash states can be captured at any
    /// instant (see `CrashWorld`).
    public static func exploring(
        size: UInt64, chunkSize: Int = 65536, kind: Volume.Kind = .thin, settings: RemoteSettings = RemoteSettings()
    ) async throws -> (VolumeFixture, CrashWorld) {
        let recorder = CrashRecorder()
        var powerLoss: PowerLossFileIO!
        var recording: RecordingObjectStore?
        let fixture = try await VolumeFixture(
            size: size, chunkSize: chunkSize, kind: kind, settings: settings,
            wrap: { base in
                powerLoss = PowerLossFileIO(wrapping: base, recorder: recorder)
                return powerLoss
            },
            wrapStore: { base in
                recording = RecordingObjectStore(wrapping: base, recorder: recorder)
                return recording!
            })
        return (fixture, CrashWorld(fixture: fixture, recorder: recorder, powerLoss: powerLoss, objects: recording))
    }

    /// Uploads every dirty chunk, then stops the uploader (cached volumes).
    public func uploadAll() async throws {
        volume.startUploader()
        try await volume.waitUntilUploaded()
        await volume.stopUploader()
    }

    /// Waits for `waitUntilUploaded` (and, if `settled`, until no delete waits for its upload to
    /// settle either), failing if it takes over `seconds` (a test must not hang).
    public func waitUntilUploaded(within seconds: Int, settled: Bool = false) async throws {
        let volume = volume
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                // Settling objects become due in the same step that counts them pending.
                repeat {
                    while settled, volume.settlingDeletes > 0 { try await Task.sleep(for: .milliseconds(20)) }
                    try await volume.waitUntilUploaded()
                } while settled && volume.settlingDeletes > 0
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return false
            }
            let done = try await group.next()!
            group.cancelAll()
            guard done else {
                throw VolumeFixtureError(
                    "uploads did not converge in \(seconds) s: \(volume.cacheUsage.dirtyChunks) dirty chunk(s), "
                        + "\(volume.pendingDeletes) delete(s) pending, \(volume.settlingDeletes) settling")
            }
        }
    }

    /// Opens the volume again from its file and database, as a restarted daemon would, without
    /// flushing the current instance (what a kill -9 leaves behind).
    public func reopen() async throws {
        await volume.stopReadAhead()
        await volume.stopUploader()
        volume = try await Volume.open(
            record: record, path: path, store: store, journal: journal, io: io, remote: remote, dataKey: dataKey,
            logger: Logger(label: "test"))
    }

    /// Stops the volume's work and (unless told not to) removes its directory.
    public func close(removing: Bool = true) async {
        await volume.stopReadAhead()
        await volume.stopUploader()
        await journal.shutdown()
        await io.shutdown()
        try? await pool.shutdownGracefully()
        if removing { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Writes `bytes` from memory that starts 4 KiB-aligned, as the NBD server receives large
    /// payloads (so that a cached volume may write them around the page cache).
    public func write(_ offset: UInt64, _ bytes: [UInt8], fua: Bool = false) async throws {
        var buffer = ByteBuffer.aligned(capacity: bytes.count)
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

/// A fixture's step that did not finish.
public struct VolumeFixtureError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
