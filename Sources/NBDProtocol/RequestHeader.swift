import NIOCore

/// A transmission-phase request header, compact or extended (doc/proto.md, "Request message").
public struct NBDRequestHeader: Equatable, Sendable {
    /// Command flags.
    public var flags: NBDCommandFlags
    /// The command.
    public var command: NBDCommand
    /// The client's opaque cookie, echoed in the reply.
    public var cookie: UInt64
    /// Offset into the export.
    public var offset: UInt64
    /// Length of the effect (or of the payload, with PAYLOAD_LEN).
    public var length: UInt64

    public init(flags: NBDCommandFlags, command: NBDCommand, cookie: UInt64, offset: UInt64, length: UInt64) {
        self.flags = flags
        self.command = command
        self.cookie = cookie
        self.offset = offset
        self.length = length
    }

    /// Decodes one header.
    /// - Parameters:
    ///   - buffer: the receive buffer; consumed only when a whole header is there.
    ///   - extended: whether extended headers were negotiated.
    /// - Returns: the header, or nil while it is incomplete.
    /// - Throws: `NBDProtocolError` when the magic is wrong for the negotiated style.
    @inlinable
    public static func decode(from buffer: inout ByteBuffer, extended: Bool) throws -> NBDRequestHeader? {
        guard let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let expected = extended ? NBDMagic.extendedRequest : NBDMagic.request
        guard magic == expected else {
            let other = extended ? NBDMagic.request : NBDMagic.extendedRequest
            throw magic == other ? NBDProtocolError.unexpectedHeaderStyle : NBDProtocolError.badMagic(UInt64(magic))
        }
        if extended {
            guard
                let (_, flags, type, cookie, offset, length) = buffer.readMultipleIntegers(
                    as: (UInt32, UInt16, UInt16, UInt64, UInt64, UInt64).self)
            else { return nil }
            return NBDRequestHeader(
                flags: NBDCommandFlags(rawValue: flags), command: NBDCommand(rawValue: type), cookie: cookie,
                offset: offset, length: length)
        }
        guard
            let (_, flags, type, cookie, offset, length) = buffer.readMultipleIntegers(
                as: (UInt32, UInt16, UInt16, UInt64, UInt64, UInt32).self)
        else { return nil }
        return NBDRequestHeader(
            flags: NBDCommandFlags(rawValue: flags), command: NBDCommand(rawValue: type), cookie: cookie,
            offset: offset, length: UInt64(length))
    }

    /// Encodes the header, as a client sends it.
    /// - Precondition: without `extended`, `length` fits in 32 bits.
    public func write(into buffer: inout ByteBuffer, extended: Bool) {
        if extended {
            buffer.writeMultipleIntegers(
                NBDMagic.extendedRequest, flags.rawValue, command.rawValue, cookie, offset, length)
        } else {
            buffer.writeMultipleIntegers(
                NBDMagic.request, flags.rawValue, command.rawValue, cookie, offset, UInt32(length))
        }
    }
}
