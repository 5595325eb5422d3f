import NIOCore

/// The server's opening of fixed newstyle negotiation (doc/proto.md, "Newstyle negotiation").
public enum NBDGreeting {
    /// Bytes of the greeting: NBDMAGIC, IHAVEOPT and the handshake flags.
    public static let length = 18

    /// Writes the greeting.
    /// - Parameters:
    ///   - flags: the handshake flags the server offers.
    ///   - buffer: where the bytes go.
    public static func write(flags: NBDHandshakeFlags, into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(NBDMagic.greeting, NBDMagic.option, flags.rawValue)
    }

    /// Reads the client's flags, which follow the greeting.
    /// - Returns: the flags, or nil while fewer than four bytes are buffered.
    public static func readClientFlags(from buffer: inout ByteBuffer) -> NBDClientFlags? {
        buffer.readInteger(as: UInt32.self).map(NBDClientFlags.init(rawValue:))
    }
}
