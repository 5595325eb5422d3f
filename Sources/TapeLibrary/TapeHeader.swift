/// The tape's global header (docs/tape-format.md): identity, geometry, the file table (filemark
/// positions and record index), the head position and the open file's durable length.
public struct TapeHeader: Sendable, Equatable {
    /// One sealed file: where its records start and how many bytes it holds.
    public struct File: Sendable, Equatable {
        public var firstRecord: Int
        public var length: UInt64

        public init(firstRecord: Int, length: UInt64) {
            self.firstRecord = firstRecord
            self.length = length
        }
    }

    static let magic = Array("BGTAPEH1".utf8)
    /// Version 2: two copies of each group header (version 1 tapes load, and are written as 2).
    static let version: UInt32 = 2
    /// Most sealed files a header slot has room for.
    public static let maximumFiles = (TapeGeometry.headerSlotSize - fixedSize) / 16
    /// Bytes of a header without its file table.
    static let fixedSize = 88

    public var sequence: UInt64
    public var barcode: String
    public var geometry: TapeGeometry
    public var worm: Bool
    /// The file the head is at; `files.count` means end of data.
    public var headFile: Int
    /// Sealed files, each ended by a filemark.
    public var files: [File]
    /// First record of the open (unsealed) file.
    public var openFirstRecord: Int
    /// Bytes of the open file made durable by the last commit.
    public var openLength: UInt64

    /// A blank tape.
    public init(barcode: String, geometry: TapeGeometry, worm: Bool) {
        self.sequence = 0
        self.barcode = barcode
        self.geometry = geometry
        self.worm = worm
        self.headFile = 0
        self.files = []
        self.openFirstRecord = 0
        self.openLength = 0
    }

    /// Where a file's records start: a sealed file's own start, else the open file's.
    public func firstRecord(ofFile file: Int) -> Int {
        file < files.count ? files[file].firstRecord : openFirstRecord
    }

    /// The first record after every sealed file.
    public var endOfSealedRecords: Int {
        guard let last = files.last else { return 0 }
        return last.firstRecord + geometry.recordCount(forLength: last.length)
    }

    /// The header slot's bytes.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.append(Self.magic)
        writer.append(Self.version)
        writer.append(UInt32(Self.fixedSize + files.count * 16))
        writer.append(sequence)
        writer.append(Array(barcode.utf8) + [UInt8](repeating: 0, count: 16 - barcode.utf8.count))
        writer.append(geometry.capacity)
        writer.append(UInt32(geometry.recordSize))
        writer.append(UInt32(geometry.groupRecords))
        writer.append(UInt32(worm ? 1 : 0))
        writer.append(UInt32(headFile))
        writer.append(UInt32(files.count))
        writer.append(UInt64(openFirstRecord))
        writer.append(openLength)
        for file in files {
            writer.append(UInt64(file.firstRecord))
            writer.append(file.length)
        }
        writer.appendChecksum()
        return writer.bytes
    }

    /// Decodes a header slot.
    /// - Throws: `TapeFormatError` for a wrong magic or version, a failed CRC, or values that
    ///   do not fit together.
    public init(decoding bytes: [UInt8]) throws(TapeFormatError) {
        var reader = ByteReader(bytes)
        guard try reader.read(count: 8) == Self.magic else { throw TapeFormatError("no tape header") }
        let version = try reader.read(UInt32.self)
        guard version == 1 || version == Self.version else {
            throw TapeFormatError("tape format version \(version) is not 1 or 2; a newer blockgate wrote it")
        }
        _ = try reader.read(UInt32.self)
        sequence = try reader.read(UInt64.self)
        let barcodeBytes = try reader.read(count: 16).prefix { $0 != 0 }
        barcode = String(decoding: barcodeBytes, as: UTF8.self)
        let capacity = try reader.read(UInt64.self)
        let recordSize = Int(try reader.read(UInt32.self))
        let groupRecords = Int(try reader.read(UInt32.self))
        worm = try reader.read(UInt32.self) & 1 == 1
        headFile = Int(try reader.read(UInt32.self))
        let fileCount = Int(try reader.read(UInt32.self))
        guard fileCount <= Self.maximumFiles else { throw TapeFormatError("file count \(fileCount) is too large") }
        openFirstRecord = Int(try reader.read(UInt64.self))
        openLength = try reader.read(UInt64.self)
        files = []
        for _ in 0..<fileCount {
            let first = Int(try reader.read(UInt64.self))
            files.append(File(firstRecord: first, length: try reader.read(UInt64.self)))
        }
        try reader.readChecksum(of: "tape header")
        guard recordSize > 0, recordSize % 4096 == 0, (1...TapeGeometry.maximumGroupRecords).contains(groupRecords),
            capacity % UInt64(recordSize) == 0
        else {
            throw TapeFormatError("record size \(recordSize) or group size \(groupRecords) is not valid")
        }
        geometry = TapeGeometry(capacity: capacity, recordSize: recordSize, groupRecords: groupRecords)
        guard headFile <= fileCount,
            openFirstRecord <= geometry.records,
            openLength <= UInt64(geometry.records - openFirstRecord) * UInt64(recordSize)
        else { throw TapeFormatError("head or open file lies outside the tape") }
    }
}
