/// A tape as stored: identity, capacity, pool, WORM, where it is (`TapeLocation` in the tape
/// library gives `location` its meaning) and whether it came back from the shelf (read-only).
public struct TapeRecord: Sendable, Equatable {
    public var barcode: String
    public var capacity: UInt64
    public var pool: String
    public var worm: Bool
    public var location: String
    public var retrieved: Bool
    public var createdAt: Int64
    /// Until when (unix seconds) the tape may not be deleted; `Int64.max` for ever; nil when
    /// nothing keeps it.
    public var retainUntil: Int64?
    /// The storage class its objects were moved to at export ("": the store's default).
    public var storageClass: String

    public init(
        barcode: String, capacity: UInt64, pool: String, worm: Bool, location: String, retrieved: Bool = false,
        createdAt: Int64, retainUntil: Int64? = nil, storageClass: String = ""
    ) {
        self.barcode = barcode
        self.capacity = capacity
        self.pool = pool
        self.worm = worm
        self.location = location
        self.retrieved = retrieved
        self.createdAt = createdAt
        self.retainUntil = retainUntil
        self.storageClass = storageClass
    }
}

extension MetadataStore {
    /// Adds a tape and records its barcode as used for ever.
    /// - Throws: `MetadataError` if the barcode was ever used.
    public func createTape(_ tape: TapeRecord) throws(MetadataError) {
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            let connection = statements.connection
            try connection.transaction { () throws(MetadataError) in
                var used = false
                try connection.prepare("SELECT 1 FROM barcodes_used WHERE barcode = ?").bind([.text(tape.barcode)])
                    .forEachRow { _ in used = true }
                guard !used else {
                    throw MetadataError("barcode \(tape.barcode) has been used; barcodes are never reused")
                }
                try connection.prepare("INSERT INTO barcodes_used (barcode) VALUES (?)").bind([.text(tape.barcode)])
                    .run()
                try connection.prepare(
                    "INSERT INTO tapes (barcode, capacity, pool, worm, location, retrieved, created_at) "
                        + "VALUES (?, ?, ?, ?, ?, ?, ?)"
                ).bind([
                    .text(tape.barcode), .integer(Int64(tape.capacity)), .text(tape.pool),
                    .integer(tape.worm ? 1 : 0), .text(tape.location), .integer(tape.retrieved ? 1 : 0),
                    .integer(tape.createdAt),
                ]).run()
            }
        }
    }

    /// Every tape, by barcode.
    public func tapes() throws(MetadataError) -> [TapeRecord] {
        try state.withLock { (statements: inout Statements) throws(MetadataError) -> [TapeRecord] in
            var records: [TapeRecord] = []
            try statements.connection.prepare(
                "SELECT barcode, capacity, pool, worm, location, retrieved, created_at, retain_until, storage_class "
                    + "FROM tapes ORDER BY barcode"
            ).forEachRow { row in
                records.append(
                    TapeRecord(
                        barcode: row.text(0), capacity: UInt64(row.integer(1)), pool: row.text(2),
                        worm: row.integer(3) != 0, location: row.text(4), retrieved: row.integer(5) != 0,
                        createdAt: row.integer(6), retainUntil: row.isNull(7) ? nil : row.integer(7),
                        storageClass: row.text(8)))
            }
            return records
        }
    }

    /// Records where a tape is now, and whether it is a retrieved (read-only) tape.
    public func moveTape(barcode: String, to location: String, retrieved: Bool) throws(MetadataError) {
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            try statements.connection.prepare("UPDATE tapes SET location = ?, retrieved = ? WHERE barcode = ?")
                .bind([.text(location), .integer(retrieved ? 1 : 0), .text(barcode)]).run()
        }
    }

    /// Records that a tape went to the shelf, kept until `retainUntil` (nil: not kept), its
    /// objects in `storageClass`.
    public func shelveTape(barcode: String, retainUntil: Int64?, storageClass: String) throws(MetadataError) {
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            try statements.connection.prepare(
                "UPDATE tapes SET location = 'shelf', retrieved = 0, retain_until = ?, storage_class = ? "
                    + "WHERE barcode = ?"
            ).bind([retainUntil.map { .integer($0) } ?? .null, .text(storageClass), .text(barcode)]).run()
        }
    }

    /// Removes a tape; its barcode stays used.
    public func deleteTape(barcode: String) throws(MetadataError) {
        try state.withLock { (statements: inout Statements) throws(MetadataError) in
            try statements.connection.prepare("DELETE FROM tapes WHERE barcode = ?").bind([.text(barcode)]).run()
        }
    }
}

extension MetadataStore {
    /// Whether a barcode was ever used.
    public func barcodeUsed(_ barcode: String) throws(MetadataError) -> Bool {
        try state.withLock { (statements: inout Statements) throws(MetadataError) -> Bool in
            var used = false
            try statements.connection.prepare("SELECT 1 FROM barcodes_used WHERE barcode = ?").bind([.text(barcode)])
                .forEachRow { _ in used = true }
            return used
        }
    }
}
