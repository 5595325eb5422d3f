import NIOCore

/// One option request of the negotiation phase: IHAVEOPT, option code, length, payload.
public struct NBDOptionRequest: Equatable, Sendable {
    /// Which option the client sent.
    public var code: NBDOptionCode
    /// The option's payload, a view into the receive buffer.
    public var payload: ByteBuffer

    public init(code: NBDOptionCode, payload: ByteBuffer) {
        self.code = code
        self.payload = payload
    }

    /// Decodes one option request.
    /// - Returns: the request, or nil while it is incomplete (the buffer is left untouched).
    /// - Throws: `NBDProtocolError` on a bad magic or an over-long payload.
    public static func decode(from buffer: inout ByteBuffer) throws -> NBDOptionRequest? {
        guard
            let (magic, code, length) = buffer.getMultipleIntegers(
                at: buffer.readerIndex, as: (UInt64, UInt32, UInt32).self)
        else { return nil }
        guard magic == NBDMagic.option else { throw NBDProtocolError.badMagic(magic) }
        guard length <= NBDWireSize.maxOptionLength else { throw NBDProtocolError.optionTooLong(length) }
        guard buffer.readableBytes >= NBDWireSize.optionHeader + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: NBDWireSize.optionHeader)
        let payload = buffer.readSlice(length: Int(length))!
        return NBDOptionRequest(code: NBDOptionCode(rawValue: code), payload: payload)
    }

    /// Encodes the request, as a client sends it.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(NBDMagic.option, code.rawValue, UInt32(payload.readableBytes))
        buffer.writeImmutableBuffer(payload)
    }
}
