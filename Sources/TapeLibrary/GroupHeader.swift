/// One copy of the header of a block group (docs/tape-format.md): per record, its file, valid
/// bytes, CRC-32C and markers, and the tape header commit it belongs to. A group keeps two copies;
/// a commit writes the one not in force, so a torn write never damages the copy in force.
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

    /// Format 1: one copy per group, no sequence (read as sequence 0).
    static let magicVersion1 = Array("BGTAPEG1".utf8)
    static let magic = Array("BGTAPEG2".utf8)

    public var group: Int
    /// The sequence number of the tape header commit that wrote this copy (0: format 1, or a
    /// group never written).
    public var sequence: UInt64
    public var entries: [Entry]

    /// A group whose records are all unused.
    public init(group: Int, records: Int, sequence: UInt64 = 0) {
        self.group = group
        self.sequence = sequence
        self.entries = Array(repeating: .unused, count: records)
    }

    /// The copy's bytes, padded to `TapeGeometry.groupHeaderCopySize`.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.append(Self.magic)
        writer.append(UInt64(group))
        writer.append(sequence)
        for entry in entries {
            writer.append(UInt32(entry.file))
            writer.append(UInt32(entry.length))
            writer.append(entry.crc)
            writer.append(entry.markers.rawValue)
        }
        writer.appendChecksum()
        return writer.bytes + [UInt8](repeating: 0, count: TapeGeometry.groupHeaderCopySize - writer.bytes.count)
    }

    /// Decodes one copy of the header of group `group` (format 1 or 2); a never-written
    /// (all-zero) copy decodes as unused with sequence 0.
    /// - Throws: `TapeFormatError` for a wrong magic or group number or a failed CRC.
    public init(decoding bytes: [UInt8], group: Int, records: Int) throws(TapeFormatError) {
        self.init(group: group, records: records)
        if bytes.allSatisfy({ $0 == 0 }) { return }
        var reader = ByteReader(bytes)
        let magic = try reader.read(count: 8)
        guard magic == Self.magic || magic == Self.magicVersion1 else {
            throw TapeFormatError("block group \(group) has no group header")
        }
        let stored = Int(try reader.read(UInt64.self))
        if magic == Self.magic { sequence = try reader.read(UInt64.self) }
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

extension GroupHeader {
    /// The copy in force of a group's two: the valid one of the highest sequence not above
    /// `committed` (the tape header's), with its index (0 or 1).
    /// - Throws: `TapeFormatError` when neither copy is valid and in force.
    static func inForce(copies: [[UInt8]], group: Int, records: Int, committed: UInt64) throws(TapeFormatError)
        -> (header: GroupHeader, copy: Int)
    {
        var best: (header: GroupHeader, copy: Int)?
        var problems: [String] = []
        for (copy, bytes) in copies.enumerated() {
            do {
                let header = try GroupHeader(decoding: bytes, group: group, records: records)
                guard header.sequence <= committed else { continue }
                if best == nil || header.sequence > best!.header.sequence { best = (header, copy) }
            } catch {
                problems.append(error.message)
            }
        }
        guard let best else {
            throw TapeFormatError("no copy of group \(group)'s header is valid (\(problems.joined(separator: "; ")))")
        }
        return best
    }
}
