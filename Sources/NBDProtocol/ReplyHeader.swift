import NIOCore

/// A decoded reply header, as a client reads it: a simple reply or one chunk of a
/// structured/extended reply. The chunk payload follows in the stream.
public enum NBDReplyHeader: Equatable, Sendable {
    /// A simple reply; for a successful READ the data follows.
    case simple(cookie: UInt64, error: UInt32)
    /// A structured or extended chunk header; `length` bytes of payload follow.
    case chunk(cookie: UInt64, flags: NBDReplyFlags, type: UInt16, offset: UInt64, length: UInt64)

    /// The cookie of the request answered.
    public var cookie: UInt64 {
        switch self {
        case .simple(let cookie, _), .chunk(let cookie, _, _, _, _): cookie
        }
    }

    /// Decodes one reply header, whichever of the three magics it starts with.
    /// - Returns: the header, or nil while it is incomplete.
    /// - Throws: `NBDProtocolError.badMagic` on an unknown magic.
    public static func decode(from buffer: inout ByteBuffer) throws -> NBDReplyHeader? {
        guard let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        switch magic {
        case NBDMagic.simpleReply:
            guard let (_, error, cookie) = buffer.readMultipleIntegers(as: (UInt32, UInt32, UInt64).self)
            else { return nil }
            return .simple(cookie: cookie, error: error)
        case NBDMagic.structuredReply:
            guard
                let (_, flags, type, cookie, length) = buffer.readMultipleIntegers(
                    as: (UInt32, UInt16, UInt16, UInt64, UInt32).self)
            else { return nil }
            return .chunk(
                cookie: cookie, flags: NBDReplyFlags(rawValue: flags), type: type, offset: 0, length: UInt64(length))
        case NBDMagic.extendedReply:
            guard
                let (_, flags, type, cookie, offset, length) = buffer.readMultipleIntegers(
                    as: (UInt32, UInt16, UInt16, UInt64, UInt64, UInt64).self)
            else { return nil }
            return .chunk(
                cookie: cookie, flags: NBDReplyFlags(rawValue: flags), type: type, offset: offset, length: length)
        default:
            throw NBDProtocolError.badMagic(UInt64(magic))
        }
    }
}
