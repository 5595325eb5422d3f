import ChunkEngine
import Codecs
import Foundation
import LocalIO
import Logging
import Metadata
import NBDServer
import NIOCore
import NIOPosix
import ObjectStore
import TapeLibrary

/// A running gateway: the composition root that wires file I/O, metadata, volumes, the NBD
/// listeners and the admin API together, and takes them down in order.
public final class Gateway: Sendable {
    /// The volumes.
    public let manager: VolumeManager
    /// The tape library.
    public let library: Library
    /// Connections in transmission.
    public let connections: ConnectionRegistry
    /// The TCP port NBD clients reach (useful when the config asked for port 0), if TCP is on.
    public let tcpPort: Int?
    /// The configuration it runs with.
    public let config: GatewayConfig
    /// The Prometheus endpoint, when metrics are on.
    public let metrics: MetricsEndpoint?
    /// Applies a re-read configuration (SIGHUP, `blockgate reload`).
    public let reloader: ConfigReloader

    private let group: MultiThreadedEventLoopGroup
    private let io: any FileIO
    private let journal: MetadataJournal
    private let pool: NIOThreadPool
    private let stores: [any ObjectStore]
    private let listeners: [any Channel]
    private let lock: DataDirectoryLock
    private let logger: Logger

    private init(
        config: GatewayConfig, manager: VolumeManager, library: Library, metrics: MetricsEndpoint?,
        reloader: ConfigReloader, connections: ConnectionRegistry, tcpPort: Int?,
        group: MultiThreadedEventLoopGroup, io: any FileIO, journal: MetadataJournal, pool: NIOThreadPool,
        stores: [any ObjectStore], listeners: [any Channel], lock: DataDirectoryLock, logger: Logger
    ) {
        self.config = config
        self.manager = manager
        self.library = library
        self.metrics = metrics
        self.reloader = reloader
        self.connections = connections
        self.tcpPort = tcpPort
        self.group = group
        self.io = io
        self.journal = journal
        self.pool = pool
        self.stores = stores
        self.listeners = listeners
        self.lock = lock
        self.logger = logger
    }

    /// The master key: from the key file, or from the passphrase (with the store's salt).
    private static func masterKey(_ config: GatewayConfig, store: any ObjectStore) async throws(GatewayError)
        -> MasterKey?
    {
        guard let passphraseFile = config.passphraseFile else { return try config.masterKey() }
        guard config.keyFile == nil else {
            throw GatewayError(.invalid, "set a key file or a passphrase file for the master key, not both")
        }
        return try await PassphraseKey.masterKey(
            passphraseFile: passphraseFile, dataDirectory: config.dataDirectory, store: store)
    }

    /// Starts everything; returns once every listener is up.
    /// - Throws: `GatewayError` (or an underlying error) saying what could not start.
    /// - Parameter reloadSource: builds the configuration again for a reload; nil when there is
    ///   no config file to re-read.
    public static func start(config: GatewayConfig, logger: Logger, reloadSource: ConfigReloader.Source? = nil)
        async throws -> Gateway
    {
        let dataDirectory = config.dataDirectory
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw GatewayError(.failed, "cannot create data directory \(dataDirectory): \(error.localizedDescription)")
        }
        let lock = try DataDirectoryLock(directory: dataDirectory)
        let io = try makeFileIO(config.ioBackend, logger: logger)
        let metadata: MetadataStore
        do {
            metadata = try MetadataStore(path: dataDirectory + "/metadata.db")
        } catch {
            await io.shutdown()
            lock.release()
            throw GatewayError(.failed, "\(error)")
        }
        let journal = MetadataJournal(store: metadata)
        let connections = ConnectionRegistry()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        var listeners: [any Channel] = []
        var stores: [any ObjectStore] = []
        do {
            func open(_ location: ObjectStoreLocation, _ what: String, shelf: Bool) async throws -> any ObjectStore {
                let store = try makeObjectStore(
                    location, config: config, group: group, pool: pool, logger: logger,
                    objectLock: shelf && config.shelfPolicies.values.contains { $0.objectLock })
                stores.append(store)
                do {
                    try await store.prepare()
                } catch {
                    logger.error("\(what) is not reachable now (\(error)); uploads and downloads will retry")
                }
                return store
            }
            let settings = RemoteSettings(
                uploadConcurrency: config.uploadConcurrency, uploadDelay: .milliseconds(config.uploadDelayMilliseconds),
                dirtyLimit: config.uploadBuffer,
                backpressureTimeout: .seconds(config.backpressureTimeoutSeconds),
                uploadSettleTime: .seconds(config.uploadSettleSeconds), readAhead: config.readAhead)
            if case .file = try config.shelfLocation(),
                let pool = config.shelfPolicies.first(where: { $0.value.needsArchivingStore })?.key
            {
                throw GatewayError(
                    .invalid,
                    "library.pools.\(pool): a storage class and Object Lock need an S3 shelf (library.shelf or "
                        + "object_store.url s3://...)")
            }
            let store = try await open(try config.objectStoreLocation(), "the object store", shelf: config.shelf == nil)
            let shelf =
                config.shelf == nil
                ? nil
                : RemoteContext(
                    store: try await open(try config.shelfLocation(), "the tape shelf", shelf: true),
                    settings: settings,
                    group: group)
            let cache = CacheManager(capacity: config.cacheSize, logger: logger)
            let manager = VolumeManager(
                dataDirectory: dataDirectory, store: metadata, journal: journal, io: io, connections: connections,
                defaultExport: config.defaultExport, defaultChunkSize: config.defaultChunkSize,
                remote: RemoteContext(store: store, settings: settings, group: group), shelf: shelf, cache: cache,
                masterKey: try await masterKey(config, store: store), defaultFormat: config.objectFormat,
                poolFormats: config.poolFormats, logger: logger)
            try await manager.openAll()
            cache.start()
            let fresh = manager.names.isEmpty
            if fresh, let demo = config.demoVolume {
                try await manager.create(name: demo.name, size: demo.size)
            }
            let library = Library(
                configuration: config.library, store: metadata,
                containers: VolumeTapeContainers(manager: manager, policies: config.shelfPolicies),
                eventLoop: group.next(), logger: logger)
            try await library.open()
            // Only on the embedded file store: on S3 they would cost object-store round trips at start.
            if fresh, let demo = config.demoTapes, case .file = try config.shelfLocation(),
                await library.list(shelf: false).isEmpty, await library.list(shelf: true).isEmpty
            {
                for barcode in try library.barcodes(prefix: "DEMO", count: demo.count) {
                    try await library.create(barcode: barcode, size: demo.size, worm: false)
                }
            }
            let limits = NBDServerLimits(
                maximumRequest: config.maximumRequestSize, maximumBytesInFlight: config.maximumBytesInFlight,
                maximumConnections: config.maximumConnections, allowedNetworks: try config.networks(),
                exportNetworks: try config.exportNetworks())
            let server = NBDServer(
                catalog: ExportDirectory(
                    volumes: manager, library: library, readOnlyExports: Set(config.readOnlyExports)),
                group: group, limits: limits, requestLog: config.requestLog, connections: connections,
                tls: try TLSSetup.make(config.tls), logger: logger)
            if let socket = config.resolvedNBDSocket {
                listeners.append(try await server.listen(unixSocket: socket))
                chmod(socket, mode_t(config.socketMode))
                logger.info("NBD clients: unix socket \(socket)")
            }
            var tcpPort: Int?
            if let (host, port) = try config.listenAddress() {
                let channel = try await server.listen(host: host, port: port)
                listeners.append(channel)
                tcpPort = channel.localAddress?.port
                logger.info("NBD clients: tcp \(host):\(tcpPort ?? port)")
            }
            var metrics: MetricsEndpoint?
            if let (host, port) = try config.metricsAddress() {
                let endpoint = try await MetricsEndpoint.start(
                    host: host, port: port, group: group,
                    refresh: GaugeRefresh(volumes: manager, library: library).callAsFunction)
                metrics = endpoint
                listeners.append(endpoint.channel)
                logger.info("metrics: http://\(host):\(endpoint.port ?? port)/metrics")
            }
            let reloader = ConfigReloader(config: config, source: reloadSource, volumes: manager, logger: logger)
            let admin = AdminServer(
                handler: AdminHandler(volumes: manager, library: library, reloader: reloader), group: group,
                logger: logger)
            listeners.append(try await admin.listen(path: config.resolvedAdminSocket))
            logger.info("admin API: unix socket \(config.resolvedAdminSocket)")
            logger.notice("blockgate ready: \(manager.names.count) volume(s): \(manager.names.joined(separator: ", "))")
            return Gateway(
                config: config, manager: manager, library: library, metrics: metrics, reloader: reloader,
                connections: connections,
                tcpPort: tcpPort,
                group: group, io: io,
                journal: journal, pool: pool, stores: stores, listeners: listeners, lock: lock, logger: logger)
        } catch {
            for channel in listeners { try? await channel.close() }
            for case let s3 as S3ObjectStore in stores { await s3.shutdown() }
            try? await pool.shutdownGracefully()
            await journal.shutdown()
            await io.shutdown()
            try? await group.shutdownGracefully()
            lock.release()
            throw error
        }
    }

    /// Stops accepting clients, closes connections, flushes every volume and stops the threads.
    public func stop() async {
        logger.notice("blockgate stopping")
        for channel in listeners { try? await channel.close() }
        let forced = await connections.drainAll(timeout: .seconds(30))
        if forced > 0 {
            logger.warning("closed \(forced) connection(s) whose clients did not read their replies within 30 s")
        }
        await library.stop()
        await manager.flushAll(on: group.next())
        await manager.cache.stop()
        for case let s3 as S3ObjectStore in stores { await s3.shutdown() }
        try? await pool.shutdownGracefully()
        await journal.shutdown()
        await io.shutdown()
        try? await group.shutdownGracefully()
        for path in [config.resolvedNBDSocket, config.resolvedAdminSocket].compactMap({ $0 }) { unlink(path) }
        lock.release()
        logger.notice("blockgate stopped")
    }
}

/// An object store at `location`, with the configuration's credentials.
/// - Throws: `GatewayError.invalid` for missing S3 credentials.
public func makeObjectStore(
    _ location: ObjectStoreLocation, config: GatewayConfig, group: any EventLoopGroup, pool: NIOThreadPool,
    logger: Logger, objectLock: Bool = false
) throws(GatewayError) -> any ObjectStore {
    switch location {
    case .file(let path):
        return FileObjectStore(root: path, pool: pool)
    case .s3(let bucket, let host, let port, let region):
        let environment = ProcessInfo.processInfo.environment
        guard let accessKey = config.accessKey ?? environment["AWS_ACCESS_KEY_ID"],
            let secretKey = config.secretKey ?? environment["AWS_SECRET_ACCESS_KEY"]
        else {
            throw GatewayError(
                .invalid,
                "the S3 object store needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or object_store.access_key and secret_key in the config"
            )
        }
        return S3ObjectStore(
            configuration: .init(
                host: host, port: port, bucket: bucket, region: region,
                credentials: .init(accessKeyID: accessKey, secretAccessKey: secretKey), objectLock: objectLock),
            group: group, logger: logger)
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
