/// How each frame of a compressed object is stored, read from the table after its header: per
/// frame, its encoding and the length of its payload, and from those where its bytes start.
/// Objects without compression have no table; their frames sit at a fixed stride.
public struct FrameTable: Sendable, Equatable {
    /// How one frame's payload holds its data.
    enum Encoding: UInt8 {
        /// The data as it is.
        case raw = 0
        /// The data compressed with the object's algorithm.
        case compressed = 1
        /// All zeros: nothing stored, not even a trailer.
        case zero = 2
    }

    /// Per frame: the encoding in the top two bits, the payload length in the other 30.
    let entries: [UInt32]
    /// Per frame, where its payload starts in the object.
    let offsets: [UInt64]

    init(entries: [UInt32], dataStart: UInt64, trailerSize: Int) {
        self.entries = entries
        var offsets: [UInt64] = []
        offsets.reserveCapacity(entries.count)
        var offset = dataStart
        for entry in entries {
            offsets.append(offset)
            if Self.encoding(entry) != .zero { offset += UInt64(Self.length(entry) + trailerSize) }
        }
        self.offsets = offsets
    }

    static func entry(_ encoding: Encoding, length: Int) -> UInt32 {
        UInt32(encoding.rawValue) << 30 | UInt32(length)
    }

    static func encoding(_ entry: UInt32) -> Encoding? { Encoding(rawValue: UInt8(entry >> 30)) }
    static func length(_ entry: UInt32) -> Int { Int(entry & 0x3FFF_FFFF) }
}

/// What a ranged read of an object must fetch and decode: the frames holding the wanted bytes,
/// the byte range of the object they are stored in (empty when all are zero frames), and where
/// each one's payload sits in what is fetched.
public struct FramePlan: Sendable, Equatable {
    /// The frames, by number.
    public let frames: Range<Int>
    /// The bytes of the object to fetch.
    public let objectRange: Range<UInt64>
    /// The bytes of the object's data the frames decode to.
    public let logical: Range<Int>
    /// Per frame: encoding, payload length, and payload offset within the fetched bytes.
    let pieces: [Piece]

    struct Piece: Equatable {
        let encoding: FrameTable.Encoding
        let length: Int
        let offset: Int
    }
}
