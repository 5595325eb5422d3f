/// What `tape info` and `tape list` report about a tape.
public struct TapeInfo: Codable, Sendable, Equatable {
    public var barcode: String
    public var capacity: UInt64
    public var pool: String
    public var worm: Bool
    /// Where it is: "slot N", "drive NAME", "station" or "shelf".
    public var location: String
    /// "library", "shelf" (archived) or "retrieved" (back from the shelf, read-only).
    public var state: String
    /// Length of each sealed file, when the tape's header has been read.
    public var files: [UInt64]?
    /// Records in use and the bytes they take.
    public var records: Int?
    public var bytesUsed: UInt64?
    /// Bytes written to the open (unsealed) file.
    public var openBytes: UInt64?
    /// Records that failed their CRC check since the daemon started; empty when all read well.
    public var badRecords: [Int]?
    /// Bytes not yet uploaded to the shelf.
    public var uploadPending: UInt64
    public var createdAt: Int64
    /// Until when (unix seconds) the tape cannot be deleted (`Int64.max`: for ever), set at export.
    public var retainUntil: Int64?
    /// The storage class its objects went to at export, when not the store's default.
    public var storageClass: String?

    enum CodingKeys: String, CodingKey {
        case barcode, capacity, pool, worm, location, state, files, records
        case bytesUsed = "bytes_used"
        case openBytes = "open_bytes"
        case badRecords = "bad_records"
        case uploadPending = "upload_pending"
        case createdAt = "created_at"
        case retainUntil = "retain_until"
        case storageClass = "storage_class"
    }
}

/// What `drive status` reports.
public struct DriveStatus: Codable, Sendable, Equatable {
    public var drive: String
    public var barcode: String?
    /// The slot the tape was loaded from (nil when it came from the station).
    public var homeSlot: Int?
    /// A client is attached to the drive's export.
    public var attached: Bool
    /// The file the head is at, and (while a client writes) how far it got, in 512-byte blocks.
    public var file: Int?
    public var block: Int?
    /// Beginning of tape, end of data, (early warning of) end of tape.
    public var bot: Bool?
    public var eod: Bool?
    public var eot: Bool?
    public var readOnly: Bool?

    enum CodingKeys: String, CodingKey {
        case drive, barcode, attached, file, block, bot, eod, eot
        case homeSlot = "home_slot"
        case readOnly = "read_only"
    }
}

/// What `library status` reports: what is in each slot, drive and the station.
public struct LibraryStatus: Codable, Sendable, Equatable {
    public struct Slot: Codable, Sendable, Equatable {
        public var slot: Int
        public var barcode: String?
    }

    public var slots: [Slot]
    public var drives: [DriveStatus]
    public var station: String?
    /// Tapes on the shelf.
    public var shelf: [String]
}
