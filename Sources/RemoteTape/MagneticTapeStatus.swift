import NIOCore

/// A tape device's status as Linux's MTIOCGET gives it (`struct mtget`), which the rmt `S`
/// request returns as raw bytes and `s` field by field. The bytes are the LP64 layout (x86_64,
/// aarch64), little-endian: five 8-byte fields (type, residue, drive status, general status,
/// error register) and two 4-byte ones (file number, block number), 48 bytes.
public struct MagneticTapeStatus: Sendable, Equatable {
    /// mt_type: a generic SCSI-2 tape drive.
    public static let scsi2DriveType = 0x72

    /// Bits of the general status (mt_gstat), as Linux's GMT_ macros test them.
    public struct GeneralStatus: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let afterFilemark = GeneralStatus(rawValue: 0x8000_0000)
        public static let beginningOfTape = GeneralStatus(rawValue: 0x4000_0000)
        public static let endOfTape = GeneralStatus(rawValue: 0x2000_0000)
        public static let endOfData = GeneralStatus(rawValue: 0x0800_0000)
        public static let writeProtected = GeneralStatus(rawValue: 0x0400_0000)
        public static let online = GeneralStatus(rawValue: 0x0100_0000)
        public static let immediateReport = GeneralStatus(rawValue: 0x0001_0000)
    }

    public var type = MagneticTapeStatus.scsi2DriveType
    public var residue = 0
    /// Block size in the low 24 bits (0: variable), density code in the top 8.
    public var driveStatus = 0
    public var general: GeneralStatus = []
    public var errorRegister = 0
    public var file: Int32 = 0
    public var block: Int32 = 0

    public init(file: Int32, block: Int32, blockSize: Int, general: GeneralStatus) {
        self.file = file
        self.block = block
        self.driveStatus = blockSize & 0xFF_FFFF
        self.general = general
    }

    /// The 48 bytes of `struct mtget`.
    public var encoded: [UInt8] {
        var buffer = ByteBuffer()
        for field in [type, residue, driveStatus, Int(general.rawValue), errorRegister] {
            buffer.writeInteger(Int64(field), endianness: .little)
        }
        buffer.writeInteger(file, endianness: .little)
        buffer.writeInteger(block, endianness: .little)
        return Array(buffer.readableBytesView)
    }

    /// A field for the `s` request by its letter: T type, D drive status, E error register,
    /// R residue, F file, B block, f flags (none), b the best blocking factor (none given).
    public func field(_ letter: UInt8) -> Int? {
        switch letter {
        case UInt8(ascii: "T"): type
        case UInt8(ascii: "D"): driveStatus
        case UInt8(ascii: "E"): errorRegister
        case UInt8(ascii: "R"): residue
        case UInt8(ascii: "F"): Int(file)
        case UInt8(ascii: "B"): Int(block)
        case UInt8(ascii: "f"), UInt8(ascii: "b"): 0
        default: nil
        }
    }
}
