import NIOCore

/// Encoders for transmission-phase replies: simple replies, and structured or extended chunks
/// (doc/proto.md, "Simple reply message", "Structured reply chunk message").
public enum NBDReply {
    /// Writes a simple reply header (data, for a successful READ, follows separately).
    @inlinable
    public static func writeSimple(cookie: UInt64, error: NBDErrno, into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(NBDMagic.simpleReply, error.rawValue, cookie)
    }

    /// Writes a chunk header: structured (20 bytes) or, with extended headers, extended (32 bytes).
    /// - Parameters:
    ///   - offset: the request's offset (extended headers only; ignored otherwise).
    ///   - length: the length of the chunk payload that follows.
    @inlinable
    public static func writeChunkHeader(
        cookie: UInt64, type: NBDReplyChunkType, flags: NBDReplyFlags, offset: UInt64, length: Int,
        extended: Bool, into buffer: inout ByteBuffer
    ) {
        if extended {
            buffer.writeMultipleIntegers(
                NBDMagic.extendedReply, flags.rawValue, type.rawValue, cookie, offset, UInt64(length))
        } else {
            buffer.writeMultipleIntegers(
                NBDMagic.structuredReply, flags.rawValue, type.rawValue, cookie, UInt32(length))
        }
    }

    /// Writes the header of an NBD_REPLY_TYPE_OFFSET_DATA chunk; `dataLength` bytes of data follow.
    @inlinable
    public static func writeOffsetDataHeader(
        cookie: UInt64, offset: UInt64, requestOffset: UInt64, dataLength: Int, done: Bool, extended: Bool,
        into buffer: inout ByteBuffer
    ) {
        writeChunkHeader(
            cookie: cookie, type: .offsetData, flags: done ? .done : [], offset: requestOffset,
            length: 8 + dataLength, extended: extended, into: &buffer)
        buffer.writeInteger(offset)
    }

    /// Writes a whole NBD_REPLY_TYPE_OFFSET_HOLE chunk.
    @inlinable
    public static func writeOffsetHole(
        cookie: UInt64, offset: UInt64, requestOffset: UInt64, length: UInt32, done: Bool, extended: Bool,
        into buffer: inout ByteBuffer
    ) {
        writeChunkHeader(
            cookie: cookie, type: .offsetHole, flags: done ? .done : [], offset: requestOffset, length: 12,
            extended: extended, into: &buffer)
        buffer.writeMultipleIntegers(offset, length)
    }

    /// Writes a whole NBD_REPLY_TYPE_NONE chunk with the DONE flag.
    @inlinable
    public static func writeNone(cookie: UInt64, requestOffset: UInt64, extended: Bool, into buffer: inout ByteBuffer) {
        writeChunkHeader(
            cookie: cookie, type: .none, flags: .done, offset: requestOffset, length: 0, extended: extended,
            into: &buffer)
    }

    /// Writes a whole NBD_REPLY_TYPE_ERROR chunk with the DONE flag.
    public static func writeError(
        cookie: UInt64, error: NBDErrno, message: String, requestOffset: UInt64, extended: Bool,
        into buffer: inout ByteBuffer
    ) {
        let messageBytes = Array(message.utf8.prefix(4096))
        writeChunkHeader(
            cookie: cookie, type: .error, flags: .done, offset: requestOffset, length: 6 + messageBytes.count,
            extended: extended, into: &buffer)
        buffer.writeMultipleIntegers(error.rawValue, UInt16(messageBytes.count))
        buffer.writeBytes(messageBytes)
    }

    /// Writes a whole block status chunk for one metadata context, with the DONE flag.
    /// Uses NBD_REPLY_TYPE_BLOCK_STATUS_EXT (64-bit lengths) when extended headers are on.
    public static func writeBlockStatus(
        cookie: UInt64, contextID: UInt32, extents: [NBDExtent], requestOffset: UInt64, extended: Bool,
        into buffer: inout ByteBuffer
    ) {
        if extended {
            writeChunkHeader(
                cookie: cookie, type: .blockStatusExtended, flags: .done, offset: requestOffset,
                length: 8 + 16 * extents.count, extended: true, into: &buffer)
            buffer.writeMultipleIntegers(contextID, UInt32(extents.count))
            for extent in extents {
                buffer.writeMultipleIntegers(extent.length, UInt64(extent.flags.rawValue))
            }
        } else {
            writeChunkHeader(
                cookie: cookie, type: .blockStatus, flags: .done, offset: requestOffset,
                length: 4 + 8 * extents.count, extended: false, into: &buffer)
            buffer.writeInteger(contextID)
            for extent in extents {
                buffer.writeMultipleIntegers(UInt32(extent.length), extent.flags.rawValue)
            }
        }
    }
}

/// One block status descriptor: a length and its base:allocation flags.
public struct NBDExtent: Equatable, Sendable {
    /// Bytes covered.
    public var length: UInt64
    /// Allocation flags of the range.
    public var flags: NBDAllocationFlags

    public init(length: UInt64, flags: NBDAllocationFlags) {
        self.length = length
        self.flags = flags
    }
}
