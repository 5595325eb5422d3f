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
        try executeOnSideConnection(sql, database: databasePath)
    }

    /// Ends `failCleanRecords`.
    public func allowCleanRecords() throws {
        try executeOnSideConnection(
            "DROP TRIGGER fail_clean_insert; DROP TRIGGER fail_clean_update;", database: databasePath)
    }
}
