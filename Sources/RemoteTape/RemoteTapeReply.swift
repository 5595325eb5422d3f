import NIOCore

/// An rmt reply: `A` and a number (and, for a read or a status, the bytes after it), or `E`,
/// the errno and a one-line message.
public enum RemoteTapeReply: Sendable, Equatable {
    case number(Int)
    case data([UInt8])
    case error(errno: Int32, message: String)

    /// Writes the reply's bytes.
    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .number(let value):
            buffer.writeString("A\(value)\n")
        case .data(let bytes):
            buffer.writeString("A\(bytes.count)\n")
            buffer.writeBytes(bytes)
        case .error(let errno, let message):
            let line = message.map { $0 == "\n" ? " " : $0 }
            buffer.writeString("E\(errno)\n\(String(line))\n")
        }
    }
}
