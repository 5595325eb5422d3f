import BlockDevice
import ChunkEngine
import Codecs
import Foundation
import LocalIO
import Logging
import Metadata
import NBDServer
import NIOConcurrencyHelpers
import NIOCore
import ObjectStore

/// Owns the volumes: creates, opens, lists, flushes, recovers and deletes them, and offers them
/// to the NBD server as exports of the same name (appearing and disappearing without a restart).
public final class VolumeManager: NBDExportCatalog, Sendable {
    private let volumesDirectory: String
    private let store: MetadataStore
    private let journal: MetadataJournal
    private let io: any FileIO
    private let connections: ConnectionRegistry
    private let defaultExportBox: NIOLockedValueBox<String>
    /// The export a client gets when it asks for the default one ("").
    public var defaultExport: String {
        get { defaultExportBox.withLockedValue { $0 } }
        set { defaultExportBox.withLockedValue { $0 = newValue } }
    }
    private let defaultChunkSize: UInt64
    private let remote: RemoteContext
    /// Where tape containers keep their data: the library's shelf.
    private let shelf: RemoteContext
    /// The local cache of the cached volumes.
    public let cache: CacheManager
    /// How new cached volumes write their objects unless told otherwise.
    private let defaultFormat: ObjectFormatChoice
    /// How each tape pool's tapes write theirs.
    private let poolFormats: [String: ObjectFormatChoice.Request]
    /// The key that wraps every data key; nil when none is configured (then no volume can be
    /// encrypted, and an encrypted one cannot be opened).
    private let masterKey: NIOLockedValueBox<MasterKey?>
    private let logger: Logger
    private let volumes = NIOLockedValueBox([String: OpenVolume]())

    private struct OpenVolume {
        let record: VolumeRecord
        let volume: Volume
    }

    public init(
        dataDirectory: String, store: MetadataStore, journal: MetadataJournal, io: any FileIO,
        connections: ConnectionRegistry, defaultExport: String, defaultChunkSize: UInt64, remote: RemoteContext,
        shelf: RemoteContext? = nil,
        cache: CacheManager, masterKey: MasterKey? = nil, defaultFormat: ObjectFormatChoice = .init(),
        poolFormats: [String: ObjectFormatChoice.Request] = [:], logger: Logger
    ) {
        self.volumesDirectory = dataDirectory + "/volumes"
        self.store = store
        self.journal = journal
        self.io = io
        self.connections = connections
        self.defaultExportBox = NIOLockedValueBox(defaultExport)
        self.defaultChunkSize = defaultChunkSize
        self.remote = remote
        self.shelf = shelf ?? remote
        self.cache = cache
        self.masterKey = NIOLockedValueBox(masterKey)
        self.defaultFormat = defaultFormat
        self.poolFormats = poolFormats
        self.logger = logger
    }

    /// Opens every volume the database knows (recovering any that were not shut down cleanly).
    public func openAll() async throws {
        try FileManager.default.createDirectory(atPath: volumesDirectory, withIntermediateDirectories: true)
        let records = try store.volumes()
        // A missing or wrong master key stops the start before any volume is open.
        for record in records { _ = try dataKey(of: record) }
        for record in records {
            try await open(record)
        }
    }

    private func open(_ record: VolumeRecord) async throws {
        let volume = try await Volume.open(
            record: record, path: path(of: record), store: store, journal: journal, io: io,
            remote: remote(for: record.name), dataKey: try dataKey(of: record), logger: logger)
        volumes.withLockedValue { $0[record.name] = OpenVolume(record: record, volume: volume) }
        cache.add(volume)
    }

    /// The data key of an encrypted volume, unwrapped.
    /// - Throws: `GatewayError` when there is no master key, or it is not the one that wrapped it.
    private func dataKey(of record: VolumeRecord) throws(GatewayError) -> DataKey? {
        let wrapped = record.objectFormat.wrappedKey
        guard !wrapped.isEmpty else { return nil }
        guard let masterKey = masterKey.withLockedValue({ $0 }) else {
            throw GatewayError(
                .invalid,
                "volume '\(record.name)' is encrypted: start blockgate with its master key (--key-file, or objects.key_file in the config)"
            )
        }
        do {
            return try masterKey.unwrap(wrapped, scope: record.uuid)
        } catch {
            throw GatewayError(
                .invalid,
                "volume '\(record.name)' cannot be opened: the master key given (id \(String(masterKey.id, radix: 16))) is not the one its data key was wrapped with"
            )
        }
    }

    /// Names of the volumes.
    public var names: [String] { volumes.withLockedValue { $0.keys.filter { !Self.isContainer($0) }.sorted() } }

    /// Creates a volume: thin (local disk) or cached (object store, with a local cache).
    /// - Throws: `GatewayError` for a bad name or size, or a name in use.
    @discardableResult
    public func create(
        name: String, size: UInt64, chunkSize: UInt64? = nil, kind: Volume.Kind = .thin,
        format: ObjectFormatChoice.Request = .init()
    ) async throws(GatewayError) -> VolumeInfo {
        try Self.validate(name: name)
        return try await createVolume(name: name, size: size, chunkSize: chunkSize, kind: kind, format: format)
    }

    @discardableResult
    private func createVolume(
        name: String, size: UInt64, chunkSize: UInt64?, kind: Volume.Kind, format request: ObjectFormatChoice.Request
    ) async throws(GatewayError) -> VolumeInfo {
        let chunkSize = chunkSize ?? defaultChunkSize
        guard chunkSize <= UInt64(Int.max), ChunkGeometry.isValidChunkSize(Int(chunkSize)) else {
            throw GatewayError(
                .invalid, "chunk size \(ByteSize.format(chunkSize)) is not allowed; use a power of two from 64K to 64M")
        }
        guard size % UInt64(ChunkGeometry.blockSize) == 0 else {
            throw GatewayError(
                .invalid,
                "size \(size) is not a multiple of 4096 bytes; round it, e.g. to \(ByteSize.format((size / 4096 + 1) * 4096))"
            )
        }
        guard size <= 1 << 50 else {
            throw GatewayError(.invalid, "size \(ByteSize.format(size)) exceeds the 1P limit")
        }
        if volumes.withLockedValue({ $0[name] != nil }) {
            throw GatewayError(.conflict, "a volume named '\(name)' already exists")
        }
        let uuid = UUID().uuidString.lowercased()
        let objectFormat = kind == .cached ? try objectFormat(request, uuid: uuid) : ObjectFormatRecord()
        let manifest = VolumeManifest(
            name: name, kind: kind, size: size, chunkSize: chunkSize, createdAt: Int64(Date().timeIntervalSince1970),
            uuid: uuid, objectFormat: VolumeManifest.Format(objectFormat))
        do {
            if kind == .cached {
                try await manifest.store(in: remote(for: name).store, sealedWith: masterKey.withLockedValue { $0 })
            }
            let record = try store.createVolume(
                name: name, kind: kind.rawValue, size: size, chunkSize: UInt32(chunkSize),
                createdAt: manifest.createdAt, uuid: manifest.uuid, objectFormat: objectFormat)
            try await open(record)
            logger.info(
                "created \(kind.rawValue) volume '\(name)' of \(ByteSize.format(size)) (chunks of \(ByteSize.format(chunkSize)))"
            )
            return info(record: record, volume: try lookup(name, containers: true).volume)
        } catch let error as MetadataError where error.message.contains("already exists") {
            throw GatewayError(.conflict, error.message)
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError(.failed, "cannot create volume '\(name)': \(error)")
        }
    }

    /// How a new cached volume writes its objects: what was asked, else the defaults; with a fresh
    /// data key wrapped by the master key when it is encrypted.
    private func objectFormat(_ request: ObjectFormatChoice.Request, uuid: String) throws(GatewayError)
        -> ObjectFormatRecord
    {
        let masterKey = masterKey.withLockedValue { $0 }
        let compression = request.compression ?? defaultFormat.compression
        let cipher = request.cipher ?? defaultFormat.cipher ?? (masterKey == nil ? .off : .aes256GCM)
        var wrapped: [UInt8] = []
        if cipher != .off {
            guard let masterKey else {
                throw GatewayError(
                    .invalid,
                    "encryption (\(cipher)) needs a master key: start blockgate with --key-file FILE (make one with `blockgate key generate FILE`), or create the volume with --encryption off"
                )
            }
            do {
                wrapped = try masterKey.wrap(.generate(), scope: uuid)
            } catch {
                throw GatewayError(.failed, "cannot wrap the new volume's data key: \(error)")
            }
        }
        return ObjectFormatRecord(
            compression: compression.description, cipher: cipher.description, wrappedKey: wrapped)
    }

    /// Rebuilds a cached volume from the object store alone (its manifest and chunk objects),
    /// for a data directory that lost it.
    /// - Throws: `GatewayError.notFound` when no manifest names it, `.conflict` when it exists.
    @discardableResult
    public func recover(name: String) async throws(GatewayError) -> VolumeInfo {
        if volumes.withLockedValue({ $0[name] != nil }) {
            throw GatewayError(.conflict, "volume '\(name)' exists here already; delete it first to recover it")
        }
        do {
            let masterKey = masterKey.withLockedValue { $0 }
            let (found, unopened) = try await VolumeManifest.find(
                name: name, in: remote.store, masterKey: masterKey, logger: logger)
            guard let manifest = found else {
                let sealed =
                    unopened == 0
                    ? ""
                    : masterKey == nil
                        ? " (\(unopened) sealed manifest(s) need the master key: start blockgate with --key-file)"
                        : " (\(unopened) sealed manifest(s) do not open with this master key: is it the right one?)"
                throw GatewayError(.notFound, "the object store holds no manifest of a volume named '\(name)'\(sealed)")
            }
            // Everything is read from the store before anything is recorded, and the volume is
            // recorded with its chunks in one transaction: a failed recover leaves no volume
            // behind (whose empty chunk map could otherwise be taken for the truth).
            let geometry = ChunkGeometry(volumeSize: manifest.size, chunkSize: Int(manifest.chunkSize))
            let (chunks, nextGeneration, formatSince) = try await Volume.chunksInStore(
                uuid: manifest.uuid, geometry: geometry, store: remote.store,
                formatSince: manifest.objectFormat?.formatSince)
            var objectFormat = manifest.objectFormat?.record ?? ObjectFormatRecord()
            objectFormat.formatSince = formatSince
            let record = try store.createVolume(
                name: name, kind: Volume.Kind.cached.rawValue, size: manifest.size,
                chunkSize: UInt32(manifest.chunkSize), createdAt: manifest.createdAt, uuid: manifest.uuid,
                chunks: chunks, nextGeneration: nextGeneration, objectFormat: objectFormat)
            try await open(record)
            logger.notice("recovered cached volume '\(name)' from the object store: \(chunks.count) chunk(s)")
            return try info(name: name)
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError(.failed, "cannot recover volume '\(name)': \(error)")
        }
    }

    /// Every volume, by name.
    public func list() -> [VolumeInfo] {
        userVolumes().map { info(record: $0.record, volume: $0.volume) }
    }

    /// One volume.
    /// - Throws: `GatewayError.notFound`.
    public func info(name: String) throws(GatewayError) -> VolumeInfo {
        let open = try lookup(name)
        return info(record: open.record, volume: open.volume)
    }

    /// One volume, with what its objects take in the store (a listing of the store).
    public func detailedInfo(name: String) async throws(GatewayError) -> VolumeInfo {
        let open = try lookup(name)
        var info = info(record: open.record, volume: open.volume)
        guard open.volume.kind == .cached else { return info }
        do {
            let (logical, stored) = try await open.volume.storedBytes()
            info.logicalBytes = logical
            info.storedBytes = stored
        } catch {
            logger.warning("volume '\(name)': cannot list its objects to measure them: \(error)")
        }
        return info
    }

    /// Re-wraps the data key of every encrypted volume (and the manifests) with the master key in
    /// `newKeyFile`, without rewriting any data; from then on that key is the one to start with.
    /// The manifests are rewritten first and the database last, in one transaction, so that a
    /// rotation cut short leaves the database on the old key and can be run again.
    func rotateMasterKey(newKeyFile path: String) async throws(GatewayError) -> String {
        let newKey: MasterKey
        do {
            newKey = try MasterKey(keyFile: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        } catch let error as ObjectFormatError {
            throw GatewayError(.invalid, "\(path): \(error.message)")
        } catch {
            throw GatewayError(.invalid, "cannot read the new key file \(path): \(error.localizedDescription)")
        }
        guard let oldKey = masterKey.withLockedValue({ $0 }) else {
            throw GatewayError(
                .invalid, "blockgate runs without a master key: there is nothing to rotate (start it with --key-file)")
        }
        var rewrapped: [(VolumeRecord, [UInt8])] = []
        do {
            for open in volumes.withLockedValue({ Array($0.values) }) {
                let record = open.record
                var format = record.objectFormat
                if !format.wrappedKey.isEmpty {
                    format.wrappedKey = try newKey.wrap(
                        try oldKey.unwrap(format.wrappedKey, scope: record.uuid), scope: record.uuid)
                    rewrapped.append((record, format.wrappedKey))
                }
                guard open.volume.kind == .cached else { continue }
                let manifest = VolumeManifest(
                    name: record.name, kind: .cached, size: record.size, chunkSize: UInt64(record.chunkSize),
                    createdAt: record.createdAt, uuid: record.uuid, objectFormat: VolumeManifest.Format(format))
                try await manifest.store(in: remote(for: record.name).store, sealedWith: newKey)
            }
            try store.setWrappedKeys(rewrapped.map { ($0.0.id, $0.1) })
        } catch {
            throw GatewayError(.failed, "key rotation failed, the old key stays in force (run it again): \(error)")
        }
        masterKey.withLockedValue { $0 = newKey }
        volumes.withLockedValue { volumes in
            for (record, wrapped) in rewrapped {
                guard let open = volumes[record.name] else { continue }
                var format = record.objectFormat
                format.wrappedKey = wrapped
                volumes[record.name] = OpenVolume(record: record.with(objectFormat: format), volume: open.volume)
            }
        }
        logger.notice(
            "master key rotated to key id \(String(newKey.id, radix: 16)): \(rewrapped.count) data key(s) re-wrapped")
        return
            "re-wrapped \(rewrapped.count) data key(s) with key id \(String(newKey.id, radix: 16)); start blockgate with \(path) from now on"
    }

    /// Makes every completed write of a volume durable (locally), and has a cached volume's
    /// uploader catch up for a second; with `uploadWait`, waits as long at most for the uploads
    /// to end (`volume flush --wait-upload` asks again and again, showing progress between).
    public func flush(name: String, uploadWait: Duration? = nil) async throws(GatewayError) -> VolumeInfo {
        let open = try lookup(name)
        do {
            try await open.volume.flush(on: remote.group.next()).get()
            if let uploadWait { try await open.volume.waitUntilUploaded(within: uploadWait) }
        } catch {
            throw GatewayError(.failed, "flush of volume '\(name)' failed: \(error)")
        }
        open.volume.hurryUploads()
        return info(record: open.record, volume: open.volume)
    }

    /// Deletes a volume and its data (for a cached volume, its objects too, in the background).
    /// - Parameter force: close attached clients instead of refusing.
    /// - Throws: `GatewayError.conflict` while clients are attached (without `force`).
    public func delete(name: String, force: Bool) async throws(GatewayError) {
        try await delete(name: name, force: force, containers: false)
    }

    private func delete(name: String, force: Bool, containers: Bool) async throws(GatewayError) {
        let open = try lookup(name, containers: containers)
        let clients = connections.clientCount(export: name)
        if clients > 0 && !force {
            throw GatewayError(
                .conflict,
                "volume '\(name)' has \(clients) client(s) attached; disconnect them first (nbd-client -d) or pass --force"
            )
        }
        connections.closeConnections(export: name)
        volumes.withLockedValue { _ = $0.removeValue(forKey: name) }
        await cache.remove(open.volume)
        do {
            try store.deleteVolume(id: open.record.id)
        } catch {
            throw GatewayError(.failed, "cannot delete volume '\(name)': \(error)")
        }
        try? FileManager.default.removeItem(atPath: path(of: open.record))
        if open.volume.kind == .cached {
            let objects = remote(for: name).store
            let uuid = open.record.uuid
            let logger = self.logger
            Task {
                do {
                    for object in try await objects.list(prefix: Volume.objectPrefix(uuid: uuid)) {
                        try await objects.delete(try ObjectKey(object.key))
                    }
                    try await objects.delete(try VolumeManifest.key(uuid: uuid))
                } catch {
                    logger.warning("objects of deleted volume '\(name)' remain in the object store: \(error)")
                }
            }
        }
        logger.info("deleted volume '\(name)'")
    }

    /// Flushes every volume (at shutdown).
    public func flushAll(on eventLoop: any EventLoop) async {
        for open in volumes.withLockedValue({ Array($0.values) }) {
            do {
                try await open.volume.flush(on: eventLoop).get()
            } catch {
                logger.error("flush of volume '\(open.record.name)' at shutdown failed: \(error)")
            }
        }
    }

    // MARK: - NBDExportCatalog

    public func listExports() -> [NBDExportListing] {
        userVolumes().map(listing)
    }

    public func describeExport(named name: String) -> Result<NBDExportListing, NBDExportError> {
        resolve(name).map(listing)
    }

    public func openExport(named name: String) -> Result<NBDExportSession, NBDExportError> {
        resolve(name).map { NBDExportSession(name: $0.record.name, device: $0.volume) }
    }

    // MARK: - Helpers

    private func resolve(_ name: String) -> Result<OpenVolume, NBDExportError> {
        let defaultExport = self.defaultExport
        let wanted = name.isEmpty ? defaultExport : name
        guard let open = volumes.withLockedValue({ $0[wanted] }), !Self.isContainer(wanted) else {
            let message =
                name.isEmpty
                ? "no default export: volume '\(defaultExport)' does not exist; ask for an export by name"
                : "no export named '\(name)'"
            return .failure(NBDExportError(.unknown, message))
        }
        return .success(open)
    }

    private func listing(_ open: OpenVolume) -> NBDExportListing {
        NBDExportListing(
            name: open.record.name, description: "\(open.record.kind) volume, \(ByteSize.format(open.record.size))",
            size: open.record.size, capabilities: open.volume.capabilities)
    }

    private func userVolumes() -> [OpenVolume] {
        volumes.withLockedValue { $0.values.filter { !Self.isContainer($0.record.name) } }
            .sorted { $0.record.name < $1.record.name }
    }

    private func lookup(_ name: String, containers: Bool = false) throws(GatewayError) -> OpenVolume {
        guard let open = volumes.withLockedValue({ $0[name] }), containers || !Self.isContainer(name) else {
            throw GatewayError(.notFound, "no volume named '\(name)'; `blockgate volume list` shows the volumes")
        }
        return open
    }

    private func path(of record: VolumeRecord) -> String {
        "\(volumesDirectory)/\(record.id).img"
    }

    private func info(record: VolumeRecord, volume: Volume) -> VolumeInfo {
        let usage = volume.usage
        let cache = volume.cacheUsage
        return VolumeInfo(
            name: record.name, kind: record.kind, uuid: record.uuid, size: record.size,
            chunkSize: UInt64(record.chunkSize),
            allocatedChunks: usage.chunks, allocatedBytes: usage.bytes, diskBytes: (try? volume.diskUsage()) ?? 0,
            clients: connections.clientCount(export: record.name), createdAt: record.createdAt,
            cachedBytes: volume.kind == .cached ? cache.cachedBytes : nil,
            dirtyBytes: volume.kind == .cached ? UInt64(cache.dirtyChunks) * UInt64(record.chunkSize) : nil,
            objects: volume.kind == .cached ? volume.uploadedChunks : nil,
            pendingDeletes: volume.kind == .cached ? volume.pendingDeletes : nil,
            settlingDeletes: volume.kind == .cached ? volume.settlingDeletes : nil,
            heldWrites: volume.kind == .cached ? volume.heldWrites : nil, fenced: volume.fenced,
            compression: volume.objectCodec.map { $0.compression.description },
            encryption: volume.objectCodec.map { $0.cipher.description },
            integrityFailures: volume.kind == .cached ? volume.integrityFailures : nil,
            degraded: volume.kind == .cached ? volume.integrityFailures > 0 : nil)
    }

    // MARK: - Tape containers

    /// Volumes named with this prefix hold tapes: they are not exports and not listed as volumes.
    static let containerPrefix = "tape:"

    static func isContainer(_ name: String) -> Bool { name.hasPrefix(containerPrefix) }

    /// The object store a volume keeps its data in: the shelf for tape containers.
    private func remote(for name: String) -> RemoteContext { Self.isContainer(name) ? shelf : remote }

    /// Creates the cached volume that holds a tape of `pool`, its objects written as the pool's
    /// settings say (else as the defaults).
    func createContainer(barcode: String, size: UInt64, pool: String) async throws(GatewayError) -> Volume {
        let name = Self.containerPrefix + barcode
        try await createVolume(
            name: name, size: size, chunkSize: 1 << 20, kind: .cached, format: poolFormats[pool] ?? .init())
        return try lookup(name, containers: true).volume
    }

    /// The cached volume holding a tape.
    func container(barcode: String) throws(GatewayError) -> Volume {
        try lookup(Self.containerPrefix + barcode, containers: true).volume
    }

    /// Makes a tape's container durable in the object store and drops its local cache. The data
    /// objects its records name then go to the pool's storage class and, with Object Lock, are
    /// locked until `retainUntil` (for ever is a century). Returns the storage class ("" when
    /// unchanged).
    func archiveContainer(barcode: String, policy: ShelfPolicy, retainUntil: Int64?) async throws -> String {
        let volume = try container(barcode: barcode)
        try await volume.flush(on: remote.group.next()).get()
        try await volume.waitUntilUploaded()
        let lockUntil = policy.objectLock ? retainUntil.map(Self.lockDate) : nil
        if policy.storageClass != nil || lockUntil != nil {
            guard let archiving = shelf.store as? any ObjectArchiving else {
                throw GatewayError(.invalid, "the shelf is not an S3 store: it has no storage classes or Object Lock")
            }
            for key in try volume.namedObjects() {
                try await archiving.archive(key, storageClass: policy.storageClass, retainUntil: lockUntil)
            }
        }
        try await volume.dropCache()
        return policy.storageClass ?? ""
    }

    /// Asks the shelf to restore a tape's data objects from a cold storage class; returns what to
    /// tell the user of it, or nil when there is nothing to wait for.
    func restoreContainer(barcode: String, policy: ShelfPolicy, storageClass: String) async throws -> String? {
        guard ColdStorageClass.needsRestore(storageClass) else { return nil }
        let volume = try container(barcode: barcode)
        guard let archiving = shelf.store as? any ObjectArchiving else {
            throw GatewayError(.invalid, "the shelf is not an S3 store: it cannot restore from \(storageClass)")
        }
        var waiting = 0
        for key in try volume.namedObjects()
        where try await archiving.restore(key, days: policy.restoreDays) == .inProgress {
            waiting += 1
        }
        return waiting == 0 ? nil : policy.retrievalNote(storageClass, restoring: waiting)
    }

    /// The date a lock until `retainUntil` (unix seconds; `Int64.max` for ever) is given.
    private static func lockDate(_ retainUntil: Int64) -> Date {
        retainUntil == .max
            ? Date().addingTimeInterval(100 * 365 * 86400) : Date(timeIntervalSince1970: TimeInterval(retainUntil))
    }

    /// Deletes a tape's container and its objects.
    func deleteContainer(barcode: String) async throws(GatewayError) {
        try await delete(name: Self.containerPrefix + barcode, force: true, containers: true)
    }

    /// Volume names are export names: 1–64 of A–Z a–z 0–9 . _ -, not starting with '.' or '-'.
    static func validate(name: String) throws(GatewayError) {
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || "._-".unicodeScalars.contains($0)
        }
        guard (1...64).contains(name.count), allowed, !name.hasPrefix("."), !name.hasPrefix("-") else {
            throw GatewayError(
                .invalid,
                "'\(name)' is not a valid volume name; use 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
            )
        }
    }
}

/// What `volume info` and `volume list` report about a volume.
public struct VolumeInfo: Codable, Sendable, Equatable {
    public var name: String
    public var kind: String
    /// The volume's identity; a cached volume's objects live under `volumes/<uuid>/`.
    public var uuid: String
    public var size: UInt64
    public var chunkSize: UInt64
    public var allocatedChunks: Int
    public var allocatedBytes: UInt64
    public var diskBytes: UInt64
    public var clients: Int
    public var createdAt: Int64
    /// Cached volumes: bytes held in the local cache.
    public var cachedBytes: UInt64?
    /// Cached volumes: bytes of chunks changed and not yet uploaded.
    public var dirtyBytes: UInt64?
    /// Cached volumes: chunks stored in the object store.
    public var objects: Int?
    /// Cached volumes: replaced objects due for deletion from the object store, not yet deleted.
    public var pendingDeletes: Int?
    /// Cached volumes: replaced objects whose upload may still land (its answer was lost, or a
    /// crashed blockgate sent it), deleted once it has settled.
    public var settlingDeletes: Int?
    /// Cached volumes: writes waiting right now for the upload buffer to drain (backpressure).
    public var heldWrites: Int?
    /// Why the volume refuses every flush (a sync of its file failed), until blockgate restarts.
    public var fenced: String?
    /// Cached volumes: how chunk objects are compressed and encrypted.
    public var compression: String?
    public var encryption: String?
    /// Cached volumes: reads from the store that failed verification (the volume is degraded
    /// when there are any: data in the store is damaged or was altered; see the log).
    public var integrityFailures: UInt64?
    /// Cached volumes (`volume info` only): the bytes of data the chunk objects in use hold, and
    /// what they take in the store.
    public var logicalBytes: UInt64?
    public var storedBytes: UInt64?
    /// Cached volumes: whether any read failed verification.
    public var degraded: Bool?

    enum CodingKeys: String, CodingKey {
        case name, kind, uuid, size, clients, objects, fenced, compression, encryption, degraded
        case chunkSize = "chunk_size"
        case allocatedChunks = "allocated_chunks"
        case allocatedBytes = "allocated_bytes"
        case diskBytes = "disk_bytes"
        case createdAt = "created_at"
        case cachedBytes = "cached_bytes"
        case dirtyBytes = "dirty_bytes"
        case pendingDeletes = "pending_deletes"
        case settlingDeletes = "settling_deletes"
        case heldWrites = "held_writes"
        case integrityFailures = "integrity_failures"
        case logicalBytes = "logical_bytes"
        case storedBytes = "stored_bytes"
    }
}
