/// The database schema, as numbered migrations; `PRAGMA user_version` records how many ran.
enum Schema {
    static let migrations: [String] = [
        """
        CREATE TABLE volumes (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            size INTEGER NOT NULL,
            chunk_size INTEGER NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE chunks (
            volume_id INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            valid BLOB NOT NULL,
            dirty INTEGER NOT NULL,
            PRIMARY KEY (volume_id, idx)
        ) WITHOUT ROWID;
        """,
        // Cached volumes: a volume's key prefix in the object store; per chunk, which blocks
        // are in the local cache and which uploaded generation holds the chunk (0: none).
        """
        ALTER TABLE volumes ADD COLUMN uuid TEXT NOT NULL DEFAULT '';
        ALTER TABLE chunks ADD COLUMN present BLOB NOT NULL DEFAULT x'';
        ALTER TABLE chunks ADD COLUMN remote_generation INTEGER NOT NULL DEFAULT 0;
        """,
        // The tape library: tapes (each kept in a container volume named `tape:<barcode>`),
        // where each one is, and every barcode ever used (barcodes are never reused).
        """
        CREATE TABLE tapes (
            barcode TEXT PRIMARY KEY,
            capacity INTEGER NOT NULL,
            pool TEXT NOT NULL,
            worm INTEGER NOT NULL,
            location TEXT NOT NULL,
            retrieved INTEGER NOT NULL,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE barcodes_used (barcode TEXT PRIMARY KEY) WITHOUT ROWID;
        """,
        // Cached volumes: the next upload generation, raised before each upload so that
        // generations grow across crashes without listing the store; and every chunk object that
        // exists or may exist in the store without the chunk's record naming it: an upload under
        // way (owed = 0, it may yet be named) or a generation no record will ever name again
        // (owed = 1, to delete). Only owed objects are ever deleted.
        """
        ALTER TABLE volumes ADD COLUMN next_generation INTEGER NOT NULL DEFAULT 1;
        CREATE TABLE chunk_objects (
            volume_id INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            generation INTEGER NOT NULL,
            owed INTEGER NOT NULL,
            PRIMARY KEY (volume_id, idx, generation)
        ) WITHOUT ROWID;
        """,
        // Cached volumes: how their chunk objects are written (docs/object-format.md). Objects of
        // generations from format_since on are in format 1; the cached volumes already here wrote
        // raw objects (format 0) below their next generation, and go on to format 1 from there.
        // Compression and cipher by name; the volume's data key wrapped by the master key.
        """
        ALTER TABLE volumes ADD COLUMN format_since INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE volumes ADD COLUMN compression TEXT NOT NULL DEFAULT 'off';
        ALTER TABLE volumes ADD COLUMN cipher TEXT NOT NULL DEFAULT 'off';
        ALTER TABLE volumes ADD COLUMN wrapped_key BLOB NOT NULL DEFAULT x'';
        UPDATE volumes SET format_since = next_generation WHERE kind = 'cached';
        """,
        // Tapes on the shelf: until when their pool keeps them (unix seconds; NULL: not kept,
        // the largest integer: for ever) and the storage class their objects went to at export
        // ('' for the store's default).
        """
        ALTER TABLE tapes ADD COLUMN retain_until INTEGER;
        ALTER TABLE tapes ADD COLUMN storage_class TEXT NOT NULL DEFAULT '';
        """,
        // Cached volumes: a chunk whose local blocks no sync covered when its row was written
        // (a round that only named an upload): an unclean stop leaves blocks in the file that
        // `present` does not count, which opening the volume punches out.
        """
        ALTER TABLE chunks ADD COLUMN unsynced INTEGER NOT NULL DEFAULT 0;
        """,
    ]

    /// Brings the database up to the newest schema.
    static func migrate(_ connection: SQLiteConnection) throws(MetadataError) {
        var version: Int64 = 0
        try connection.prepare("PRAGMA user_version").forEachRow { row in version = row.integer(0) }
        guard version <= migrations.count else {
            throw MetadataError(
                "the metadata database has schema version \(version), newer than this blockgate knows "
                    + "(\(migrations.count)); run a newer blockgate")
        }
        for index in Int(version)..<migrations.count {
            try connection.transaction { () throws(MetadataError) in
                try connection.execute(migrations[index])
                try connection.execute("PRAGMA user_version = \(index + 1)")
            }
        }
    }
}
