/// Where things are in a tape container (see docs/tape-format.md): the header slots, the block
/// groups and the records in them.
public struct TapeGeometry: Sendable, Equatable {
    /// Bytes of one header slot.
    public static let headerSlotSize = 256 << 10
    /// Where the data block groups start.
    public static let dataStart = UInt64(2 * headerSlotSize)
    /// Bytes of a group's header area: two copies of its group header.
    public static let groupHeaderSize = 4096
    /// Bytes of one copy of a group header.
    public static let groupHeaderCopySize = 2048
    /// Most records a group may have (what a 2 KiB group header copy has entries for).
    public static let maximumGroupRecords = (groupHeaderCopySize - 28) / 16

    /// Bytes per record.
    public let recordSize: Int
    /// Records per block group.
    public let groupRecords: Int
    /// Records the tape holds.
    public let records: Int

    /// - Precondition: `recordSize` is a positive multiple of 4096; `groupRecords` is 1 to
    ///   `maximumGroupRecords`.
    public init(capacity: UInt64, recordSize: Int = 64 << 10, groupRecords: Int = 16) {
        precondition(recordSize > 0 && recordSize % 4096 == 0 && (1...Self.maximumGroupRecords).contains(groupRecords))
        self.recordSize = recordSize
        self.groupRecords = groupRecords
        self.records = Int((capacity + UInt64(recordSize) - 1) / UInt64(recordSize))
    }

    /// Data bytes the tape holds.
    public var capacity: UInt64 { UInt64(records) * UInt64(recordSize) }
    /// Bytes from one group header to the next.
    public var groupStride: UInt64 { UInt64(Self.groupHeaderSize) + UInt64(groupRecords) * UInt64(recordSize) }
    /// Block groups on the tape.
    public var groups: Int { (records + groupRecords - 1) / groupRecords }
    /// Size of the container holding the tape.
    public var containerSize: UInt64 { Self.dataStart + UInt64(groups) * groupStride }

    /// Offset of header slot 0 or 1.
    public func headerOffset(slot: Int) -> UInt64 { UInt64(slot * Self.headerSlotSize) }
    /// Offset of a group's header area.
    public func groupOffset(_ group: Int) -> UInt64 { Self.dataStart + UInt64(group) * groupStride }
    /// Offset of copy 0 or 1 of a group's header.
    public func groupHeaderOffset(_ group: Int, copy: Int) -> UInt64 {
        groupOffset(group) + UInt64(copy * Self.groupHeaderCopySize)
    }
    /// Offset of a record's first byte.
    public func recordOffset(_ record: Int) -> UInt64 {
        groupOffset(record / groupRecords) + UInt64(Self.groupHeaderSize)
            + UInt64(record % groupRecords) * UInt64(recordSize)
    }
    /// Records needed for `length` bytes.
    public func recordCount(forLength length: UInt64) -> Int {
        Int((length + UInt64(recordSize) - 1) / UInt64(recordSize))
    }
}
