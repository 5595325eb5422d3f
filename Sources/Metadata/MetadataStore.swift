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
        let beginUpload: SQLiteStatement
        let raiseNextGeneration: SQLiteStatement
        let nameObject: SQLiteStatement
        let owePreviousObjects: SQLiteStatement
        let oweAllObjects: SQLiteStatement
        let retireObject: SQLiteStatement
        let forgetObject: SQLiteStatement
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
                "INSERT INTO chunks (volume_id, idx, valid, dirty, present, remote_generation, unsynced) "
                    + "VALUES (?, ?, ?, ?, ?, ?, ?) "
                    + "ON CONFLICT (volume_id, idx) DO UPDATE SET valid = excluded.valid, dirty = excluded.dirty, "
                    + "present = excluded.present, remote_generation = excluded.remote_generation, "
                    + "unsynced = excluded.unsynced"),
            deleteChunk: try connection.prepare("DELETE FROM chunks WHERE volume_id = ? AND idx = ?"),
            chunksOfVolume: try connection.prepare(
                "SELECT idx, valid, dirty, present, remote_generation, unsynced FROM chunks WHERE volume_id = ? "
                    + "ORDER BY idx"),
            beginUpload: try connection.prepare(
                "INSERT OR IGNORE INTO chunk_objects (volume_id, idx, generation, owed) VALUES (?, ?, ?, 0)"),
            raiseNextGeneration: try connection.prepare(
                "UPDATE volumes SET next_generation = max(next_generation, ?) WHERE id = ?"),
            nameObject: try connection.prepare(
                "DELETE FROM chunk_objects WHERE volume_id = ? AND idx = ? AND generation = ?"),
            owePreviousObjects: try connection.prepare(
                "UPDATE chunk_objects SET owed = 1 WHERE volume_id = ? AND idx = ? AND generation < ?"),
            oweAllObjects: try connection.prepare("UPDATE chunk_objects SET owed = 1 WHERE volume_id = ? AND idx = ?"),
            retireObject: try connection.prepare(
                "INSERT INTO chunk_objects (volume_id, idx, generation, owed) SELECT ?1, ?2, ?3, 1 "
                    + "WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE volume_id = ?1 AND idx = ?2 AND remote_generation = ?3) "
                    + "ON CONFLICT (volume_id, idx, generation) DO UPDATE SET owed = 1"),
            forgetObject: try connection.prepare(
                "DELETE FROM chunk_objects WHERE volume_id = ? AND idx = ? AND generation = ? AND owed = 1"))
        state = Mutex(statements)
    }

    // MARK: - Volumes

    /// Adds a volume, with its chunk map when it is rebuilt from elsewhere, in one transaction:
    /// either all of it is recorded or none.
    /// - Parameters:
    ///   - chunks: the chunk records it starts with.
    ///   - nextGeneration: the first upload generation it may use.
    ///   - objectFormat: how its chunk objects are written.
    /// - Throws: `MetadataError` if the name is taken.
    public func createVolume(
        name: String, kind: String, size: UInt64, chunkSize: UInt32, createdAt: Int64, uuid: String = "",
        chunks: [ChunkRecord] = [], nextGeneration: UInt64 = 1, objectFormat: ObjectFormatRecord = .init()
    ) throws(MetadataError) -> VolumeRecord {
        try state.withLock { (statements: inout Statements) throws(MetadataError) -> VolumeRecord in
            let connection = statements.connection
            return try connection.transaction { () throws(MetadataError) -> VolumeRecord in
                var exists = false
                try connection.prepare("SELECT 1 FROM volumes WHERE name = ?").bind([.text(name)])
                    .forEachRow { _ in exists = true }
                guard !exists else { throw MetadataError("a volume named '\(name)' already exists") }
                try connection.prepare(
                    "INSERT INTO volumes (name, kind, size, chunk_size, created_at, uuid, next_generation, "
                        + "format_since, compression, cipher, wrapped_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ).bind([
                    .text(name), .text(kind), .integer(Int64(size)), .integer(Int64(chunkSize)), .integer(createdAt),
                    .text(uuid), .integer(Int64(nextGeneration)), .integer(Int64(objectFormat.formatSince)),
                    .text(objectFormat.compression), .text(objectFormat.cipher), .blob(objectFormat.wrappedKey),
                ])
                .run()
                let record = VolumeRecord(
                    id: connection.lastInsertRowID, name: name, kind: kind, size: size, chunkSize: chunkSize,
                    createdAt: createdAt, uuid: uuid, objectFormat: objectFormat)
                for chunk in chunks { try Self.apply(.store(volumeID: record.id, chunk), with: statements) }
                return record
            }
        }
    }

    /// The first upload generation a cached volume may use: above every generation it has begun.
    public func nextGeneration(volumeID: Int64) throws(MetadataError) -> UInt64 {
        UInt64(try integer("SELECT next_generation FROM volumes WHERE id = ?", volumeID, orElse: 1))
    }

    /// The one integer a query about a volume answers (`orElse` when it returns no row).
    private func integer(_ query: String, _ volumeID: Int64, orElse absent: Int64) throws(MetadataError) -> Int64 {
        try state.withLock { (statements: inout Statements) throws(MetadataError) -> Int64 in
            var value = absent
            try statements.connection.prepare(query).bind([.integer(volumeID)]).forEachRow { row in
                value = row.integer(0)
            }
            return value
        }
    }

    /// Objects of a volume that no record names and none ever will again: safe to delete from
    /// the store (then `.forget` them).
    public func owedObjects(volumeID: Int64) throws(MetadataError) -> [(index: Int64, generation: UInt64)] {
        try state.withLock {
            (statements: inout Statements) throws(MetadataError) -> [(index: Int64, generation: UInt64)] in
            var objects: [(index: Int64, generation: UInt64)] = []
            try statements.connection.prepare(
                "SELECT o.idx, o.generation FROM chunk_objects o WHERE o.volume_id = ?1 AND o.owed = 1 "
                    + "AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.volume_id = ?1 AND c.idx = o.idx "
                    + "AND c.remote_generation = o.generation) ORDER BY o.idx, o.generation"
            ).bind([.integer(volumeID)]).forEachRow { row in
                objects.append((row.integer(0), UInt64(row.integer(1))))
            }
            return objects
        }
    }

    /// Every volume, by name.
    public func volumes() throws(MetadataError) -> [VolumeRecord] {
        try state.withLock { (statements: inout Statements) throws(MetadataError) -> [VolumeRecord] in
            var records: [VolumeRecord] = []
            try statements.connection.prepare(
                "SELECT id, name, kind, size, chunk_size, created_at, uuid, format_since, compression, cipher, "
                    + "wrapped_key FROM volumes ORDER BY name"
            ).forEachRow { row in
                records.append(
                    VolumeRecord(
                        id: row.integer(0), name: row.text(1), kind: row.text(2), size: UInt64(row.integer(3)),
                        chunkSize: UInt32(row.integer(4)), createdAt: row.integer(5), uuid: row.text(6),
                        objectFormat: ObjectFormatRecord(
                            formatSince: UInt64(row.integer(7)), compression: row.text(8), cipher: row.text(9),
                            wrappedKey: row.blob(10))))
            }
            return records
        }
    }

    /// Records new wrappings of volumes' data keys (a master key rotation), all or none.
    public func setWrappedKeys(_ keys: [(volumeID: Int64, wrappedKey: [UInt8])]) throws(MetadataError) {
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            try statements.connection.transaction { () throws(MetadataError) in
                for (volumeID, wrapped) in keys {
                    try statements.connection.prepare("UPDATE volumes SET wrapped_key = ? WHERE id = ?")
                        .bind([.blob(wrapped), .integer(volumeID)]).run()
                }
            }
        }
    }

    /// Removes a volume and its chunk map.
    public func deleteVolume(id: Int64) throws(MetadataError) {
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            try statements.connection.transaction { () throws(MetadataError) in
                try statements.connection.prepare("DELETE FROM chunks WHERE volume_id = ?").bind([.integer(id)]).run()
                try statements.connection.prepare("DELETE FROM chunk_objects WHERE volume_id = ?").bind([.integer(id)])
                    .run()
                try statements.connection.prepare("DELETE FROM volumes WHERE id = ?").bind([.integer(id)]).run()
            }
        }
    }

    // MARK: - Chunks

    /// The chunk map of a volume, in index order.
    public func chunks(volumeID: Int64) throws(MetadataError) -> [ChunkRecord] {
        var records: [ChunkRecord] = []
        try forEachChunk(volumeID: volumeID) { records.append($0) }
        return records
    }

    /// How many chunk records a volume has.
    public func chunkCount(volumeID: Int64) throws(MetadataError) -> Int64 {
        try integer("SELECT count(*) FROM chunks WHERE volume_id = ?", volumeID, orElse: 0)
    }

    /// Calls `body` with each chunk record of a volume, in index order, one at a time (a large
    /// map is never held whole).
    public func forEachChunk(volumeID: Int64, _ body: (ChunkRecord) throws(MetadataError) -> Void)
        throws(MetadataError)
    {
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            try statements.chunksOfVolume.bind([.integer(volumeID)]).forEachRow { row throws(MetadataError) in
                try body(
                    ChunkRecord(
                        index: row.integer(0), valid: row.blob(1), dirty: row.integer(2) != 0, present: row.blob(3),
                        remoteGeneration: UInt64(row.integer(4)), unsynced: row.integer(5) != 0))
            }
        }
    }

    /// Applies a batch of chunk changes in one durable transaction, in order.
    public func apply(_ changes: [ChunkChange]) throws(MetadataError) {
        guard !changes.isEmpty else { return }
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            try statements.connection.transaction { () throws(MetadataError) in
                for change in changes { try Self.apply(change, with: statements) }
            }
        }
    }

    private static func apply(_ change: ChunkChange, with statements: Statements) throws(MetadataError) {
        switch change {
        case .markDirty(let volumeID, let index):
            try statements.markDirty.bind([.integer(volumeID), .integer(index)]).run()
        case .store(let volumeID, let record):
            try statements.upsertChunk.bind([
                .integer(volumeID), .integer(record.index), .blob(record.valid), .integer(record.dirty ? 1 : 0),
                .blob(record.present), .integer(Int64(record.remoteGeneration)), .integer(record.unsynced ? 1 : 0),
            ]).run()
            guard record.remoteGeneration > 0 else { return }
            // The named generation is no longer an upload under way; uploads begun before it
            // can never be named now (generations only grow).
            let key: [SQLiteStatement.Value] = [
                .integer(volumeID), .integer(record.index), .integer(Int64(record.remoteGeneration)),
            ]
            try statements.nameObject.bind(key).run()
            try statements.owePreviousObjects.bind(key).run()
        case .delete(let volumeID, let index):
            try statements.deleteChunk.bind([.integer(volumeID), .integer(index)]).run()
            try statements.oweAllObjects.bind([.integer(volumeID), .integer(index)]).run()
        case .beginUpload(let volumeID, let index, let generation):
            try statements.beginUpload.bind([.integer(volumeID), .integer(index), .integer(Int64(generation))]).run()
            try statements.raiseNextGeneration.bind([.integer(Int64(generation + 1)), .integer(volumeID)]).run()
        case .retire(let volumeID, let index, let generation):
            try statements.retireObject.bind([.integer(volumeID), .integer(index), .integer(Int64(generation))]).run()
        case .forget(let volumeID, let index, let generation):
            try statements.forgetObject.bind([.integer(volumeID), .integer(index), .integer(Int64(generation))]).run()
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
    /// How its chunk objects are written (cached volumes).
    public let objectFormat: ObjectFormatRecord

    public init(
        id: Int64, name: String, kind: String, size: UInt64, chunkSize: UInt32, createdAt: Int64, uuid: String = "",
        objectFormat: ObjectFormatRecord = .init()
    ) {
        self.id = id
        self.name = name
        self.kind = kind
        self.size = size
        self.chunkSize = chunkSize
        self.createdAt = createdAt
        self.uuid = uuid
        self.objectFormat = objectFormat
    }

    /// The same volume, its objects written as `objectFormat` says.
    public func with(objectFormat: ObjectFormatRecord) -> VolumeRecord {
        VolumeRecord(
            id: id, name: name, kind: kind, size: size, chunkSize: chunkSize, createdAt: createdAt, uuid: uuid,
            objectFormat: objectFormat)
    }
}

/// How a cached volume's chunk objects are written, as stored (docs/object-format.md).
public struct ObjectFormatRecord: Sendable, Equatable {
    /// The first generation written in format 1; older ones are raw (format 0).
    public var formatSince: UInt64
    /// The compression of its frames by name (`off`, `lz4`, `zstd:3`).
    public var compression: String
    /// The cipher of its frames by name (`off`, `aes-256-gcm`, `chacha20-poly1305`).
    public var cipher: String
    /// The volume's data key wrapped by the master key (empty when not encrypted).
    public var wrappedKey: [UInt8]

    public init(formatSince: UInt64 = 1, compression: String = "off", cipher: String = "off", wrappedKey: [UInt8] = [])
    {
        self.formatSince = formatSince
        self.compression = compression
        self.cipher = cipher
        self.wrappedKey = wrappedKey
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
    /// No sync covered the chunk's local blocks when the record was written (cached volumes):
    /// the file may hold blocks of it beyond `present`, which opening the volume punches out.
    public let unsynced: Bool

    public init(
        index: Int64, valid: [UInt8], dirty: Bool, present: [UInt8] = [], remoteGeneration: UInt64 = 0,
        unsynced: Bool = false
    ) {
        self.index = index
        self.valid = valid
        self.dirty = dirty
        self.present = present
        self.remoteGeneration = remoteGeneration
        self.unsynced = unsynced
    }
}

/// One change to the chunk map.
public enum ChunkChange: Sendable, Equatable {
    /// Record that a chunk is about to change (creating its row if needed), before the change.
    case markDirty(volumeID: Int64, index: Int64)
    /// Store a chunk's bitmap and dirty flag.
    case store(volumeID: Int64, ChunkRecord)
    /// Forget a chunk (it holds no valid block); every object of it becomes owed for deletion.
    case delete(volumeID: Int64, index: Int64)
    /// An upload of a chunk as `generation` is about to start: the object may exist from now on,
    /// and no later upload of the volume may use this generation again.
    case beginUpload(volumeID: Int64, index: Int64, generation: UInt64)
    /// No record names this generation of the chunk any more, nor will one again: delete it. A
    /// generation the chunk's record names is never retired.
    case retire(volumeID: Int64, index: Int64, generation: UInt64)
    /// A retired object was deleted from the store.
    case forget(volumeID: Int64, index: Int64, generation: UInt64)
}
