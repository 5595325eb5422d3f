import Synchronization

/// The gateway's durable metadata in one SQLite database (WAL, synchronous=FULL, so a returned
/// commit survives power loss): volumes and the chunk map of each.
/// Every call is synchronous and may block on disk; call it off the event loops.
public final class MetadataStore: Sendable {
    struct Statements {
        let connection: SQLiteConnection
        let markDirty: SQLiteStatement
        let upsertChunk: SQLiteStatement
        let deleteChunk: SQLiteStatement
        let chunksOfVolume: SQLiteStatement
    }
    let state: Mutex<Statements>

    /// Opens the database at `path`, creating and migrating it as needed.
    /// - Throws: `MetadataError` when the file cannot be opened or is of an unknown schema.
    public init(path: String) throws(MetadataError) {
        let connection = try SQLiteConnection(path: path)
        try connection.execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000"
        )
        try Schema.migrate(connection)
        let statements = Statements(
            connection: connection,
            markDirty: try connection.prepare(
                "INSERT INTO chunks (volume_id, idx, valid, dirty) VALUES (?, ?, x'', 1) "
                    + "ON CONFLICT (volume_id, idx) DO UPDATE SET dirty = 1"),
            upsertChunk: try connection.prepare(
                "INSERT INTO chunks (volume_id, idx, valid, dirty, present, remote_generation) VALUES (?, ?, ?, ?, ?, ?) "
                    + "ON CONFLICT (volume_id, idx) DO UPDATE SET valid = excluded.valid, dirty = excluded.dirty, "
                    + "present = excluded.present, remote_generation = excluded.remote_generation"),
            deleteChunk: try connection.prepare("DELETE FROM chunks WHERE volume_id = ? AND idx = ?"),
            chunksOfVolume: try connection.prepare(
                "SELECT idx, valid, dirty, present, remote_generation FROM chunks WHERE volume_id = ? ORDER BY idx"))
        state = Mutex(statements)
    }

    // MARK: - Volumes

    /// Adds a volume.
    /// - Throws: `MetadataError` if the name is taken.
    public func createVolume(
        name: String, kind: String, size: UInt64, chunkSize: UInt32, createdAt: Int64, uuid: String = ""
    ) throws(MetadataError) -> VolumeRecord {
        try state.withLock { (statements: inout Statements) throws(MetadataError) -> VolumeRecord in
            let connection = statements.connection
            var exists = false
            try connection.prepare("SELECT 1 FROM volumes WHERE name = ?").bind([.text(name)])
                .forEachRow { _ in exists = true }
            guard !exists else { throw MetadataError("a volume named '\(name)' already exists") }
            try connection.prepare(
                "INSERT INTO volumes (name, kind, size, chunk_size, created_at, uuid) VALUES (?, ?, ?, ?, ?, ?)"
            ).bind([
                .text(name), .text(kind), .integer(Int64(size)), .integer(Int64(chunkSize)), .integer(createdAt),
                .text(uuid),
            ])
            .run()
            return VolumeRecord(
                id: connection.lastInsertRowID, name: name, kind: kind, size: size, chunkSize: chunkSize,
                createdAt: createdAt, uuid: uuid)
        }
    }

    /// Every volume, by name.
    public func volumes() throws(MetadataError) -> [VolumeRecord] {
        try state.withLock { (statements: inout Statements) throws(MetadataError) -> [VolumeRecord] in
            var records: [VolumeRecord] = []
            try statements.connection.prepare(
                "SELECT id, name, kind, size, chunk_size, created_at, uuid FROM volumes ORDER BY name"
            ).forEachRow { row in
                records.append(
                    VolumeRecord(
                        id: row.integer(0), name: row.text(1), kind: row.text(2), size: UInt64(row.integer(3)),
                        chunkSize: UInt32(row.integer(4)), createdAt: row.integer(5), uuid: row.text(6)))
            }
            return records
        }
    }

    /// Removes a volume and its chunk map.
    public func deleteVolume(id: Int64) throws(MetadataError) {
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            try statements.connection.transaction { () throws(MetadataError) in
                try statements.connection.prepare("DELETE FROM chunks WHERE volume_id = ?").bind([.integer(id)]).run()
                try statements.connection.prepare("DELETE FROM volumes WHERE id = ?").bind([.integer(id)]).run()
            }
        }
    }

    // MARK: - Chunks

    /// The chunk map of a volume, in index order.
    public func chunks(volumeID: Int64) throws(MetadataError) -> [ChunkRecord] {
        try state.withLock { (statements: inout Statements) throws(MetadataError) -> [ChunkRecord] in
            var records: [ChunkRecord] = []
            try statements.chunksOfVolume.bind([.integer(volumeID)]).forEachRow { row in
                records.append(
                    ChunkRecord(
                        index: row.integer(0), valid: row.blob(1), dirty: row.integer(2) != 0, present: row.blob(3),
                        remoteGeneration: UInt64(row.integer(4))))
            }
            return records
        }
    }

    /// Applies a batch of chunk changes in one durable transaction, in order.
    public func apply(_ changes: [ChunkChange]) throws(MetadataError) {
        guard !changes.isEmpty else { return }
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            try statements.connection.transaction { () throws(MetadataError) in
                for change in changes {
                    switch change {
                    case .markDirty(let volumeID, let index):
                        try statements.markDirty.bind([.integer(volumeID), .integer(index)]).run()
                    case .store(let volumeID, let record):
                        try statements.upsertChunk.bind([
                            .integer(volumeID), .integer(record.index), .blob(record.valid),
                            .integer(record.dirty ? 1 : 0), .blob(record.present),
                            .integer(Int64(record.remoteGeneration)),
                        ]).run()
                    case .delete(let volumeID, let index):
                        try statements.deleteChunk.bind([.integer(volumeID), .integer(index)]).run()
                    }
                }
            }
        }
    }
}

/// A volume as stored.
public struct VolumeRecord: Sendable, Equatable {
    public let id: Int64
    public let name: String
    public let kind: String
    public let size: UInt64
    public let chunkSize: UInt32
    public let createdAt: Int64
    /// The volume's key prefix in the object store (cached volumes; empty for thin ones).
    public let uuid: String

    public init(
        id: Int64, name: String, kind: String, size: UInt64, chunkSize: UInt32, createdAt: Int64, uuid: String = ""
    ) {
        self.id = id
        self.name = name
        self.kind = kind
        self.size = size
        self.chunkSize = chunkSize
        self.createdAt = createdAt
        self.uuid = uuid
    }
}

/// One chunk of a volume's map as stored: its valid bitmap and whether it may differ from it.
public struct ChunkRecord: Sendable, Equatable {
    /// The chunk's index in the volume.
    public let index: Int64
    /// The valid bitmap, one bit per 4 KiB block, least significant bit first; empty means none.
    public let valid: [UInt8]
    /// Writes may have happened since this record was stored: recover the bitmap from the data.
    public let dirty: Bool
    /// Blocks whose current data is in the local cache (cached volumes), same layout as `valid`.
    public let present: [UInt8]
    /// The uploaded generation that holds the chunk, 0 when none (cached volumes).
    public let remoteGeneration: UInt64

    public init(index: Int64, valid: [UInt8], dirty: Bool, present: [UInt8] = [], remoteGeneration: UInt64 = 0) {
        self.index = index
        self.valid = valid
        self.dirty = dirty
        self.present = present
        self.remoteGeneration = remoteGeneration
    }
}

/// One change to the chunk map.
public enum ChunkChange: Sendable, Equatable {
    /// Record that a chunk is about to change (creating its row if needed), before the change.
    case markDirty(volumeID: Int64, index: Int64)
    /// Store a chunk's bitmap and dirty flag.
    case store(volumeID: Int64, ChunkRecord)
    /// Forget a chunk (it holds no valid block).
    case delete(volumeID: Int64, index: Int64)
}
