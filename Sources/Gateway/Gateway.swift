import ChunkEngine
import Foundation
import LocalIO
import Logging
import Metadata
import NBDServer
import NIOCore
import NIOPosix

/// A running gateway: the composition root that wires file I/O, metadata, volumes, the NBD
/// listeners and the admin API together, and takes them down in order.
public final class Gateway: Sendable {
    /// The volumes.
    public let manager: VolumeManager
    /// Connections in transmission.
    public let connections: ConnectionRegistry
    /// The TCP port NBD clients reach (useful when the config asked for port 0), if TCP is on.
    public let tcpPort: Int?
    /// The configuration it runs with.
    public let config: GatewayConfig

    private let group: MultiThreadedEventLoopGroup
    private let io: any FileIO
    private let journal: MetadataJournal
    private let adminPool: NIOThreadPool
    private let listeners: [any Channel]
    private let lock: DataDirectoryLock
    private let logger: Logger

    private init(
        config: GatewayConfig, manager: VolumeManager, connections: ConnectionRegistry, tcpPort: Int?,
        group: MultiThreadedEventLoopGroup, io: any FileIO, journal: MetadataJournal, adminPool: NIOThreadPool,
        listeners: [any Channel], lock: DataDirectoryLock, logger: Logger
    ) {
        self.config = config
        self.manager = manager
        self.connections = connections
        self.tcpPort = tcpPort
        self.group = group
        self.io = io
        self.journal = journal
        self.adminPool = adminPool
        self.listeners = listeners
        self.lock = lock
        self.logger = logger
    }

    /// Starts everything; returns once every listener is up.
    /// - Throws: `GatewayError` (or an underlying error) saying what could not start.
    public static func start(config: GatewayConfig, logger: Logger) async throws -> Gateway {
        let dataDirectory = config.dataDirectory
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw GatewayError(.failed, "cannot create data directory \(dataDirectory): \(error.localizedDescription)")
        }
        let lock = try DataDirectoryLock(directory: dataDirectory)
        let io = try makeFileIO(config.ioBackend, logger: logger)
        let store: MetadataStore
        do {
            store = try MetadataStore(path: dataDirectory + "/metadata.db")
        } catch {
            await io.shutdown()
            throw GatewayError(.failed, "\(error)")
        }
        let journal = MetadataJournal(store: store)
        let connections = ConnectionRegistry()
        let manager = VolumeManager(
            dataDirectory: dataDirectory, store: store, journal: journal, io: io, connections: connections,
            defaultExport: config.defaultExport, defaultChunkSize: config.defaultChunkSize, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let adminPool = NIOThreadPool(numberOfThreads: 2)
        adminPool.start()
        var listeners: [any Channel] = []
        do {
            try manager.openAll()
            if manager.names.isEmpty, let demo = config.demoVolume {
                try manager.create(name: demo.name, size: demo.size)
            }
            let server = NBDServer(
                catalog: manager, group: group, requestLog: config.requestLog, connections: connections, logger: logger)
            if let socket = config.resolvedNBDSocket {
                listeners.append(try await server.listen(unixSocket: socket))
                logger.info("NBD clients: unix socket \(socket)")
            }
            var tcpPort: Int?
            if let (host, port) = try config.listenAddress() {
                let channel = try await server.listen(host: host, port: port)
                listeners.append(channel)
                tcpPort = channel.localAddress?.port
                logger.info("NBD clients: tcp \(host):\(tcpPort ?? port)")
            }
            let admin = AdminServer(manager: manager, group: group, pool: adminPool, logger: logger)
            listeners.append(try await admin.listen(path: config.resolvedAdminSocket))
            logger.info("admin API: unix socket \(config.resolvedAdminSocket)")
            logger.notice("blockgate ready: \(manager.names.count) volume(s): \(manager.names.joined(separator: ", "))")
            return Gateway(
                config: config, manager: manager, connections: connections, tcpPort: tcpPort, group: group, io: io,
                journal: journal, adminPool: adminPool, listeners: listeners, lock: lock, logger: logger)
        } catch {
            for channel in listeners { try? await channel.close() }
            try? await adminPool.shutdownGracefully()
            await journal.shutdown()
            await io.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Stops accepting clients, closes connections, flushes every volume and stops the threads.
    public func stop() async {
        logger.notice("blockgate stopping")
        for channel in listeners { try? await channel.close() }
        connections.closeAll()
        await manager.flushAll(on: group.next())
        try? await adminPool.shutdownGracefully()
        await journal.shutdown()
        await io.shutdown()
        try? await group.shutdownGracefully()
        for path in [config.resolvedNBDSocket, config.resolvedAdminSocket].compactMap({ $0 }) { unlink(path) }
        lock.release()
        logger.notice("blockgate stopped")
    }
}

/// An exclusive flock on `<data_dir>/lock`, so that two daemons never share a data directory.
final class DataDirectoryLock: Sendable {
    private let descriptor: CInt

    init(directory: String) throws(GatewayError) {
        let path = directory + "/lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw GatewayError(.failed, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw GatewayError(
                .conflict, "another blockgate is running with data directory \(directory); stop it or use --data-dir")
        }
    }

    func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
