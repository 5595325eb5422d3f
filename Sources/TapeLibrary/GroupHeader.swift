/// The header of a block group (docs/tape-format.md): per record, its file, valid bytes, CRC-32C
/// and markers.
public struct GroupHeader: Sendable, Equatable {
    /// One record's entry; all zeros for an unused record.
    public struct Entry: Sendable, Equatable {
        public var file: Int
        public var length: Int
        public var crc: UInt32
        public var markers: Markers

        public init(file: Int, length: Int, crc: UInt32, markers: Markers) {
            self.file = file
            self.length = length
            self.crc = crc
            self.markers = markers
        }

        public static let unused = Entry(file: 0, length: 0, crc: 0, markers: [])
    }

    /// What a record is.
    public struct Markers: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// The record holds data.
        public static let record = Markers(rawValue: 1 << 0)
        /// A filemark follows the record: it is the last of a sealed file.
        public static let filemark = Markers(rawValue: 1 << 1)
    }

    static let magic = Array("BGTAPEG1".utf8)

    public var group: Int
    public var entries: [Entry]

    /// A group whose records are all unused.
    public init(group: Int, records: Int) {
        self.group = group
        self.entries = Array(repeating: .unused, count: records)
    }

    /// The group header's bytes, padded to `TapeGeometry.groupHeaderSize`.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.append(Self.magic)
        writer.append(UInt64(group))
        for entry in entries {
            writer.append(UInt32(entry.file))
            writer.append(UInt32(entry.length))
            writer.append(entry.crc)
            writer.append(entry.markers.rawValue)
        }
        writer.appendChecksum()
        return writer.bytes + [UInt8](repeating: 0, count: TapeGeometry.groupHeaderSize - writer.bytes.count)
    }

    /// Decodes the header of group `group`; a never-written (all-zero) header decodes as unused.
    /// - Throws: `TapeFormatError` for a wrong magic or group number or a failed CRC.
    public init(decoding bytes: [UInt8], group: Int, records: Int) throws(TapeFormatError) {
        self.init(group: group, records: records)
        if bytes.allSatisfy({ $0 == 0 }) { return }
        var reader = ByteReader(bytes)
        guard try reader.read(count: 8) == Self.magic else {
            throw TapeFormatError("block group \(group) has no group header")
        }
        let stored = Int(try reader.read(UInt64.self))
        var entries: [Entry] = []
        for _ in 0..<records {
            let file = Int(try reader.read(UInt32.self))
            let length = Int(try reader.read(UInt32.self))
            let crc = try reader.read(UInt32.self)
            entries.append(
                Entry(file: file, length: length, crc: crc, markers: Markers(rawValue: try reader.read(UInt32.self))))
        }
        try reader.readChecksum(of: "group header \(group)")
        guard stored == group else { throw TapeFormatError("block group \(group) holds the header of group \(stored)") }
        self.entries = entries
    }
}
