import NIOCore

/// Encoders for the server's option replies (doc/proto.md, "Option reply types").
public enum NBDOptionReply {
    /// Writes a reply header and payload.
    /// - Parameters:
    ///   - option: the option being answered.
    ///   - type: the reply type.
    ///   - payload: the reply's data (may be empty).
    ///   - buffer: where the bytes go.
    public static func write(
        option: NBDOptionCode, type: NBDOptionReplyType, payload: ByteBuffer? = nil, into buffer: inout ByteBuffer
    ) {
        buffer.writeMultipleIntegers(
            NBDMagic.optionReply, option.rawValue, type.rawValue, UInt32(payload?.readableBytes ?? 0))
        if let payload { buffer.writeImmutableBuffer(payload) }
    }

    /// Writes an error reply whose payload is a human-readable message.
    public static func writeError(
        option: NBDOptionCode, type: NBDOptionReplyType, message: String, into buffer: inout ByteBuffer
    ) {
        var payload = ByteBuffer()
        payload.writeString(message)
        write(option: option, type: type, payload: payload, into: &buffer)
    }

    /// Writes NBD_REP_SERVER for one export of an NBD_OPT_LIST answer.
    public static func writeServer(name: String, description: String, into buffer: inout ByteBuffer) {
        var payload = ByteBuffer()
        payload.writeNBDString(name)
        payload.writeString(description)
        write(option: .list, type: .server, payload: payload, into: &buffer)
    }

    /// Writes NBD_REP_INFO / NBD_INFO_EXPORT: the size and transmission flags.
    public static func writeInfoExport(
        option: NBDOptionCode, size: UInt64, flags: NBDTransmissionFlags, into buffer: inout ByteBuffer
    ) {
        var payload = ByteBuffer()
        payload.writeMultipleIntegers(NBDInfoType.export.rawValue, size, flags.rawValue)
        write(option: option, type: .info, payload: payload, into: &buffer)
    }

    /// Writes NBD_REP_INFO / NBD_INFO_NAME.
    public static func writeInfoName(option: NBDOptionCode, name: String, into buffer: inout ByteBuffer) {
        var payload = ByteBuffer()
        payload.writeInteger(NBDInfoType.name.rawValue)
        payload.writeString(name)
        write(option: option, type: .info, payload: payload, into: &buffer)
    }

    /// Writes NBD_REP_INFO / NBD_INFO_DESCRIPTION.
    public static func writeInfoDescription(
        option: NBDOptionCode, description: String, into buffer: inout ByteBuffer
    ) {
        var payload = ByteBuffer()
        payload.writeInteger(NBDInfoType.description.rawValue)
        payload.writeString(description)
        write(option: option, type: .info, payload: payload, into: &buffer)
    }

    /// Writes NBD_REP_INFO / NBD_INFO_BLOCK_SIZE: minimum, preferred and maximum block sizes.
    public static func writeInfoBlockSize(
        option: NBDOptionCode, minimum: UInt32, preferred: UInt32, maximum: UInt32, into buffer: inout ByteBuffer
    ) {
        var payload = ByteBuffer()
        payload.writeMultipleIntegers(NBDInfoType.blockSize.rawValue, minimum, preferred, maximum)
        write(option: option, type: .info, payload: payload, into: &buffer)
    }

    /// Writes NBD_REP_META_CONTEXT: a context id and its name.
    public static func writeMetaContext(
        option: NBDOptionCode, id: UInt32, name: String, into buffer: inout ByteBuffer
    ) {
        var payload = ByteBuffer()
        payload.writeInteger(id)
        payload.writeString(name)
        write(option: option, type: .metaContext, payload: payload, into: &buffer)
    }

    /// Writes the answer to NBD_OPT_EXPORT_NAME: size, flags, and 124 zero bytes unless NO_ZEROES.
    public static func writeExportNameReply(
        size: UInt64, flags: NBDTransmissionFlags, noZeroes: Bool, into buffer: inout ByteBuffer
    ) {
        buffer.writeMultipleIntegers(size, flags.rawValue)
        if !noZeroes { buffer.writeRepeatingByte(0, count: 124) }
    }
}

/// A decoded option reply, as a client reads it (used by tests and the admin tools' probes).
public struct NBDOptionReplyHeader: Equatable, Sendable {
    /// The option answered.
    public var option: NBDOptionCode
    /// The raw reply type (errors have bit 31 set).
    public var type: UInt32
    /// The reply's data.
    public var payload: ByteBuffer

    /// Decodes one reply.
    /// - Returns: the reply, or nil while it is incomplete.
    /// - Throws: `NBDProtocolError.badMagic` on a wrong magic.
    public static func decode(from buffer: inout ByteBuffer) throws -> NBDOptionReplyHeader? {
        guard
            let (magic, option, type, length) = buffer.getMultipleIntegers(
                at: buffer.readerIndex, as: (UInt64, UInt32, UInt32, UInt32).self)
        else { return nil }
        guard magic == NBDMagic.optionReply else { throw NBDProtocolError.badMagic(magic) }
        guard buffer.readableBytes >= 20 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 20)
        return NBDOptionReplyHeader(
            option: NBDOptionCode(rawValue: option), type: type, payload: buffer.readSlice(length: Int(length))!)
    }
}
