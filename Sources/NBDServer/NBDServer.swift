import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Listens for NBD clients on TCP and unix sockets and gives each connection its own handler.
public final class NBDServer: Sendable {
    private let catalog: any NBDExportCatalog
    private let group: any EventLoopGroup
    private let logger: Logger
    private let limits: NBDServerLimits
    private let requestLog: Bool
    private let tls: NBDServerTLS?
    /// Connections open now, negotiating or in transmission.
    private let open = NIOLockedValueBox(0)
    /// Connections in transmission.
    public let connections: ConnectionRegistry

    /// - Parameters:
    ///   - catalog: where exports are found.
    ///   - group: the event loops connections run on.
    ///   - limits: per-connection bounds.
    ///   - requestLog: log one line per request (for tests and debugging; slows the data path).
    ///   - connections: where connections in transmission are registered.
    ///   - tls: TLS for NBD_OPT_STARTTLS; nil for none.
    ///   - logger: where connection events go.
    public init(
        catalog: any NBDExportCatalog, group: any EventLoopGroup, limits: NBDServerLimits = NBDServerLimits(),
        requestLog: Bool = false, connections: ConnectionRegistry = ConnectionRegistry(), tls: NBDServerTLS? = nil,
        logger: Logger
    ) {
        self.connections = connections
        self.catalog = catalog
        self.group = group
        self.limits = limits
        self.requestLog = requestLog
        self.tls = tls
        self.logger = logger
    }

    /// Starts listening on a TCP address.
    /// - Returns: the listening channel (its `localAddress` tells the port when 0 was asked).
    public func listen(host: String, port: Int) async throws -> any Channel {
        try await bootstrap()
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port).get()
    }

    /// Starts listening on a unix socket, replacing a stale socket file.
    public func listen(unixSocket path: String) async throws -> any Channel {
        try await bootstrap().bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
    }

    /// The send buffer asked for each connection's socket.
    static let sendBuffer = 4 << 20

    private func bootstrap() -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(
                .writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: 8 << 20, high: 64 << 20)
            )
            // Room in the socket for a whole 1 MiB reply and more (the kernel caps it at
            // net.core.wmem_max): with the default 208 KiB a large read's reply went out in
            // pieces, each waiting for the client to drain the last, and 1 MiB reads ran at half
            // the speed they do with room.
            .childChannelOption(.socketOption(.so_sndbuf), value: Self.sendBuffer)
            .childChannelInitializer { [catalog, limits, logger, requestLog, connections, tls, open] channel in
                if let refusal = Self.refusal(of: channel, limits: limits, open: open) {
                    logger.notice("refused connection from \(channel.remoteAddress?.description ?? "?"): \(refusal)")
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    let reception = try PayloadReception.install(on: channel)
                    let handler = NBDConnectionHandler(
                        catalog: ExportAccessCatalog.forClient(
                            channel.remoteAddress, of: catalog, rules: limits.exportNetworks),
                        limits: limits, logger: logger, requestLog: requestLog,
                        registry: connections, connectionID: connections.makeConnectionID(), tls: tls,
                        reception: reception)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
    }

    /// Why a new connection may not be served (a TCP client outside the allowed networks, or
    /// too many connections), or nil; counts it as open when it may.
    private static func refusal(of channel: any Channel, limits: NBDServerLimits, open: NIOLockedValueBox<Int>)
        -> String?
    {
        if let address = channel.remoteAddress, address.protocol != .unix,
            !limits.allowedNetworks.contains(where: { $0.contains(address) })
        {
            return "not in the allowed networks (\(limits.allowedNetworks.map(\.description).joined(separator: ", ")))"
        }
        let admitted = open.withLockedValue { count in
            guard count < limits.maximumConnections else { return false }
            count += 1
            return true
        }
        return admitted ? nil : "\(limits.maximumConnections) connections are open already"
    }
}

extension NBDServer {
    /// A handler serving one NBD connection, for a pipeline of one's own (the fuzzer drives it
    /// in an embedded channel).
    public static func connectionHandler(
        catalog: any NBDExportCatalog, limits: NBDServerLimits = NBDServerLimits(), logger: Logger
    ) -> any ChannelHandler {
        NBDConnectionHandler(
            catalog: catalog, limits: limits, logger: logger, requestLog: false, registry: ConnectionRegistry(),
            connectionID: 0)
    }
}
