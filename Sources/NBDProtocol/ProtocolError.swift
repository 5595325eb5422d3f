/// A violation of the wire protocol that ends the connection (the stream can no longer be trusted).
public struct NBDProtocolError: Error, Equatable, CustomStringConvertible, Sendable {
    private enum Code: Equatable, Sendable {
        case badMagic(UInt64)
        case badClientFlags(UInt32)
        case optionTooLong(UInt32)
        case requestTooLong(UInt64)
        case unexpectedHeaderStyle
        case dataAfterStartTLS
    }
    private let code: Code

    /// A header carried a magic number other than the one the phase expects.
    public static func badMagic(_ value: UInt64) -> Self { Self(code: .badMagic(value)) }
    /// The client sent flags this server does not understand.
    public static func badClientFlags(_ value: UInt32) -> Self { Self(code: .badClientFlags(value)) }
    /// An option payload exceeds `NBDWireSize.maxOptionLength`.
    public static func optionTooLong(_ length: UInt32) -> Self { Self(code: .optionTooLong(length)) }
    /// A request carries a payload larger than the server accepts.
    public static func requestTooLong(_ length: UInt64) -> Self { Self(code: .requestTooLong(length)) }
    /// A compact header arrived after extended headers were negotiated, or the reverse.
    public static let unexpectedHeaderStyle = Self(code: .unexpectedHeaderStyle)
    /// The client sent more before the TLS handshake that NBD_OPT_STARTTLS starts.
    public static let dataAfterStartTLS = Self(code: .dataAfterStartTLS)

    public var description: String {
        switch code {
        case .badMagic(let value): "bad magic 0x\(String(value, radix: 16))"
        case .badClientFlags(let value): "unknown client flags 0x\(String(value, radix: 16))"
        case .optionTooLong(let length): "option payload of \(length) bytes is too long"
        case .requestTooLong(let length): "request payload of \(length) bytes is too long"
        case .unexpectedHeaderStyle: "request header style does not match the negotiated one"
        case .dataAfterStartTLS: "data in the clear after NBD_OPT_STARTTLS"
        }
    }
}
