import NIOCore

/// Whether clients may or must use TLS (NBD_OPT_STARTTLS).
public enum NBDTLSMode: String, Sendable, Equatable {
    /// No TLS: STARTTLS is refused.
    case off
    /// Clients choose: STARTTLS is offered, plaintext still works.
    case optional
    /// Every option but STARTTLS and ABORT is refused with NBD_REP_ERR_TLS_REQD until TLS is on.
    case required
}

/// TLS for the NBD server: the mode, and how to make the handler that runs TLS on a connection
/// (the composition root builds it from the certificates, so this module needs no TLS library).
public struct NBDServerTLS: Sendable {
    public let mode: NBDTLSMode
    /// Makes a server-side TLS handler for one connection.
    public let makeHandler: @Sendable () throws -> any ChannelHandler

    public init(mode: NBDTLSMode, makeHandler: @escaping @Sendable () throws -> any ChannelHandler) {
        self.mode = mode
        self.makeHandler = makeHandler
    }
}
