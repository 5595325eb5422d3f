/// A tape operation (mtio's MTIOCTOP) an rmt client asks for, whatever numbering it used.
public enum TapeOperation: Sendable, Equatable {
    case writeFilemarks(Int)
    case forwardFiles(Int)
    case backFiles(Int)
    case forwardFilesToMark(Int)
    case backFilesToMark(Int)
    case forwardRecords(Int)
    case backRecords(Int)
    case rewind
    /// Rewind and take the drive off line.
    case offline
    case noOperation
    case retension
    case endOfData
    case erase
    case setBlockSize(Int)
    /// Operations a virtual drive has nothing to do for (reset, load, lock, compression,
    /// density, drive buffer, cache), named for the log.
    case accepted(String)

    /// The operation with Linux's MTIOCTOP number (what a version 0 client sends from Linux,
    /// GNU tar, cpio and mt among them); nil for one a tape device here does not take.
    public static func linux(code: Int, count: Int) -> TapeOperation? {
        switch code {
        case 0: .accepted("reset")
        case 1: .forwardFiles(count)
        case 2: .backFiles(count)
        case 3: .forwardRecords(count)
        case 4: .backRecords(count)
        case 5, 35: .writeFilemarks(count)
        case 6: .rewind
        case 7: .offline
        case 8: .noOperation
        case 9: .retension
        case 10: .backFilesToMark(count)
        case 11: .forwardFilesToMark(count)
        case 12: .endOfData
        case 13: .erase
        case 20: .setBlockSize(count)
        case 21: .accepted("set density")
        case 24: .accepted("set drive buffer")
        case 28: .accepted("lock")
        case 29: .accepted("unlock")
        case 30: .accepted("load")
        case 31: .offline
        case 32: .accepted("compression")
        default: nil
        }
    }

    /// The operation with the portable numbers of protocol version 1 (which a client asks for
    /// with `I-1\n0\n`).
    public static func portable(code: Int, count: Int) -> TapeOperation? {
        switch code {
        case 0: .writeFilemarks(count)
        case 1: .forwardFiles(count)
        case 2: .backFiles(count)
        case 3: .forwardRecords(count)
        case 4: .backRecords(count)
        case 5: .rewind
        case 6: .offline
        case 7: .noOperation
        default: nil
        }
    }

    /// The operation of an extended request (`i`).
    public static func extended(code: Int, count: Int) -> TapeOperation? {
        switch code {
        case 0: .accepted("cache on")
        case 1: .accepted("cache off")
        case 2: .retension
        case 3: .erase
        case 4: .endOfData
        case 5: .backFilesToMark(count)
        default: nil
        }
    }
}
