import BlockDevice
import ChunkEngine
import Foundation
import LocalIO
import Logging
import Metadata
import NBDServer
import NIOConcurrencyHelpers
import NIOCore

/// Owns the volumes: creates, opens, lists and deletes them, and offers them to the NBD server
/// as exports of the same name (appearing and disappearing without a restart).
public final class VolumeManager: NBDExportCatalog, Sendable {
    private let volumesDirectory: String
    private let store: MetadataStore
    private let journal: MetadataJournal
    private let io: any FileIO
    private let connections: ConnectionRegistry
    private let defaultExport: String
    private let defaultChunkSize: UInt64
    private let logger: Logger
    private let volumes = NIOLockedValueBox([String: OpenVolume]())

    private struct OpenVolume {
        let record: VolumeRecord
        let volume: ThinVolume
    }

    public init(
        dataDirectory: String, store: MetadataStore, journal: MetadataJournal, io: any FileIO,
        connections: ConnectionRegistry, defaultExport: String, defaultChunkSize: UInt64, logger: Logger
    ) {
        self.volumesDirectory = dataDirectory + "/volumes"
        self.store = store
        self.journal = journal
        self.io = io
        self.connections = connections
        self.defaultExport = defaultExport
        self.defaultChunkSize = defaultChunkSize
        self.logger = logger
    }

    /// Opens every volume the database knows (recovering any that were not shut down cleanly).
    public func openAll() throws {
        try FileManager.default.createDirectory(atPath: volumesDirectory, withIntermediateDirectories: true)
        for record in try store.volumes() {
            let volume = try ThinVolume.open(
                record: record, path: path(of: record), store: store, journal: journal, io: io, logger: logger)
            volumes.withLockedValue { $0[record.name] = OpenVolume(record: record, volume: volume) }
        }
    }

    /// Names of the volumes.
    public var names: [String] { volumes.withLockedValue { $0.keys.sorted() } }

    /// Creates a thin volume.
    /// - Throws: `GatewayError` for a bad name or size, or a name in use.
    @discardableResult
    public func create(name: String, size: UInt64, chunkSize: UInt64? = nil) throws(GatewayError) -> VolumeInfo {
        try Self.validate(name: name)
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
        do {
            let record = try store.createVolume(
                name: name, kind: "thin", size: size, chunkSize: UInt32(chunkSize),
                createdAt: Int64(Date().timeIntervalSince1970))
            let volume = try ThinVolume.open(
                record: record, path: path(of: record), store: store, journal: journal, io: io, logger: logger)
            volumes.withLockedValue { $0[name] = OpenVolume(record: record, volume: volume) }
            logger.info(
                "created volume '\(name)' of \(ByteSize.format(size)) (chunks of \(ByteSize.format(chunkSize)))")
            return info(record: record, volume: volume)
        } catch let error as MetadataError where error.message.contains("already exists") {
            throw GatewayError(.conflict, error.message)
        } catch {
            throw GatewayError(.failed, "cannot create volume '\(name)': \(error)")
        }
    }

    /// Every volume, by name.
    public func list() -> [VolumeInfo] {
        volumes.withLockedValue { $0.values.sorted { $0.record.name < $1.record.name } }
            .map { info(record: $0.record, volume: $0.volume) }
    }

    /// One volume.
    /// - Throws: `GatewayError.notFound`.
    public func info(name: String) throws(GatewayError) -> VolumeInfo {
        let open = try lookup(name)
        return info(record: open.record, volume: open.volume)
    }

    /// Deletes a volume and its data.
    /// - Parameter force: close attached clients instead of refusing.
    /// - Throws: `GatewayError.conflict` while clients are attached (without `force`).
    public func delete(name: String, force: Bool) throws(GatewayError) {
        let open = try lookup(name)
        let clients = connections.clientCount(export: name)
        if clients > 0 && !force {
            throw GatewayError(
                .conflict,
                "volume '\(name)' has \(clients) client(s) attached; disconnect them first (nbd-client -d) or pass --force"
            )
        }
        connections.closeConnections(export: name)
        volumes.withLockedValue { _ = $0.removeValue(forKey: name) }
        do {
            try store.deleteVolume(id: open.record.id)
        } catch {
            throw GatewayError(.failed, "cannot delete volume '\(name)': \(error)")
        }
        try? FileManager.default.removeItem(atPath: path(of: open.record))
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
        volumes.withLockedValue { $0.values.sorted { $0.record.name < $1.record.name } }.map(listing)
    }

    public func describeExport(named name: String) -> Result<NBDExportListing, NBDExportError> {
        resolve(name).map(listing)
    }

    public func openExport(named name: String) -> Result<NBDExportSession, NBDExportError> {
        resolve(name).map { NBDExportSession(name: $0.record.name, device: $0.volume) }
    }

    // MARK: - Helpers

    private func resolve(_ name: String) -> Result<OpenVolume, NBDExportError> {
        let wanted = name.isEmpty ? defaultExport : name
        guard let open = volumes.withLockedValue({ $0[wanted] }) else {
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
            name: open.record.name, description: "thin volume, \(ByteSize.format(open.record.size))",
            size: open.record.size, capabilities: open.volume.capabilities)
    }

    private func lookup(_ name: String) throws(GatewayError) -> OpenVolume {
        guard let open = volumes.withLockedValue({ $0[name] }) else {
            throw GatewayError(.notFound, "no volume named '\(name)'; `blockgate volume list` shows the volumes")
        }
        return open
    }

    private func path(of record: VolumeRecord) -> String {
        "\(volumesDirectory)/\(record.id).img"
    }

    private func info(record: VolumeRecord, volume: ThinVolume) -> VolumeInfo {
        let usage = volume.usage
        return VolumeInfo(
            name: record.name, kind: record.kind, size: record.size, chunkSize: UInt64(record.chunkSize),
            allocatedChunks: usage.chunks, allocatedBytes: usage.bytes, diskBytes: (try? volume.diskUsage()) ?? 0,
            clients: connections.clientCount(export: record.name), createdAt: record.createdAt)
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
    public var size: UInt64
    public var chunkSize: UInt64
    public var allocatedChunks: Int
    public var allocatedBytes: UInt64
    public var diskBytes: UInt64
    public var clients: Int
    public var createdAt: Int64

    enum CodingKeys: String, CodingKey {
        case name, kind, size, clients
        case chunkSize = "chunk_size"
        case allocatedChunks = "allocated_chunks"
        case allocatedBytes = "allocated_bytes"
        case diskBytes = "disk_bytes"
        case createdAt = "created_at"
    }
}
