import CSQLite
import Metadata

/// Failed metadata commits, made by SQLite itself: triggers, created through a connection of
/// the test's own, abort every transaction that records a chunk as clean, the way a full disk
/// or an I/O error fails a commit (SQLite rolls the whole transaction back).
extension VolumeFixture {
    /// From now on every commit that records a chunk clean fails, until `allowCleanRecords`.
    public func failCleanRecords() throws {
        var sql = ""
        for event in ["INSERT", "UPDATE"] {
            sql += """
                CREATE TRIGGER fail_clean_\(event.lowercased()) BEFORE \(event) ON chunks WHEN NEW.dirty = 0
                BEGIN SELECT RAISE(ABORT, 'injected fault: the commit fails'); END;
                """
        }
        try executeInDatabase(sql)
    }

    /// Ends `failCleanRecords`.
    public func allowCleanRecords() throws {
        try executeInDatabase("DROP TRIGGER fail_clean_insert; DROP TRIGGER fail_clean_update;")
    }

    private func executeInDatabase(_ sql: String) throws {
        var connection: OpaquePointer?
        defer { sqlite3_close(connection) }
        guard sqlite3_open_v2(databasePath, &connection, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else {
            throw MetadataError("cannot open \(databasePath)")
        }
        sqlite3_busy_timeout(connection, 5000)
        guard sqlite3_exec(connection, sql, nil, nil, nil) == SQLITE_OK else {
            throw MetadataError("cannot change \(databasePath): \(String(cString: sqlite3_errmsg(connection)))")
        }
    }
}
