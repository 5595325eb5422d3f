import CSQLite
import Metadata

/// Runs statements on the database at `path` through a connection of the test's own, beside the
/// one its `MetadataStore` holds (waiting up to 5 s for that one's transactions).
func executeOnSideConnection(_ sql: String, database path: String) throws {
    var connection: OpaquePointer?
    defer { sqlite3_close(connection) }
    guard sqlite3_open_v2(path, &connection, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else {
        throw MetadataError("cannot open \(path)")
    }
    sqlite3_busy_timeout(connection, 5000)
    guard sqlite3_exec(connection, sql, nil, nil, nil) == SQLITE_OK else {
        throw MetadataError("cannot run '\(sql.prefix(60))' on \(path): \(String(cString: sqlite3_errmsg(connection)))")
    }
}
