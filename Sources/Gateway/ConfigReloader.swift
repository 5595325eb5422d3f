import Logging
import NIOConcurrencyHelpers

/// Re-reads the configuration while the daemon runs (`blockgate reload`, SIGHUP) and applies
/// what can change live: log level, cache size, default export. Owns the configuration in
/// force; settings that need a restart are named in the answer and left as they were.
public final class ConfigReloader: Sendable {
    /// Builds the configuration again (the config file with the command line's overrides).
    public typealias Source = @Sendable () throws -> GatewayConfig

    private let source: Source?
    private let volumes: VolumeManager
    private let logger: Logger
    private let inForce: NIOLockedValueBox<GatewayConfig>

    init(config: GatewayConfig, source: Source?, volumes: VolumeManager, logger: Logger) {
        self.source = source
        self.volumes = volumes
        self.logger = logger
        self.inForce = NIOLockedValueBox(config)
    }

    /// Re-reads and applies the configuration; says what changed and what needs a restart.
    /// - Throws: `GatewayError` when there is no config file or it is not valid (nothing changes).
    public func reload() throws(GatewayError) -> String {
        guard let source else {
            throw GatewayError(.invalid, "the daemon was started without --config; there is nothing to reload")
        }
        let next: GatewayConfig
        do {
            next = try source()
        } catch let error as GatewayError {
            throw GatewayError(.invalid, "config not reloaded, nothing changed: \(error.message)")
        } catch {
            throw GatewayError(.invalid, "config not reloaded, nothing changed: \(error)")
        }
        var current = inForce.withLockedValue { $0 }
        var changed: [String] = []
        if next.logLevel != current.logLevel {
            LogLevelControl.level = next.logLevel
            changed.append("log level \(next.logLevel)")
        }
        if next.cacheSize != current.cacheSize {
            volumes.cache.capacity = next.cacheSize
            changed.append("cache size \(ByteSize.format(next.cacheSize))")
        }
        if next.defaultExport != current.defaultExport {
            volumes.defaultExport = next.defaultExport
            changed.append("default export \(next.defaultExport)")
        }
        current.logLevel = next.logLevel
        current.cacheSize = next.cacheSize
        current.defaultExport = next.defaultExport
        let restart = Self.restartOnlyDifferences(current, next)
        inForce.withLockedValue { $0 = current }
        let summary =
            (changed.isEmpty ? "nothing to change" : "applied: " + changed.joined(separator: ", "))
            + (restart.isEmpty ? "" : "; needs a restart: " + restart.joined(separator: ", "))
        logger.notice("config reloaded: \(summary)")
        return summary
    }

    /// Names of the settings that differ and only take effect at start.
    private static func restartOnlyDifferences(_ old: GatewayConfig, _ new: GatewayConfig) -> [String] {
        var names: [String] = []
        func note(_ name: String, _ differs: Bool) { if differs { names.append(name) } }
        note("data_dir", old.dataDirectory != new.dataDirectory)
        note("nbd.socket", old.nbdSocket != new.nbdSocket)
        note("nbd.listen", old.nbdListen != new.nbdListen)
        note("nbd.request_log", old.requestLog != new.requestLog)
        note(
            "nbd access and limits (allow, export_allow, max_connections, max_request_size, max_bytes_in_flight, read_only, socket_mode)",
            old.allowedNetworks != new.allowedNetworks || old.exportAllowedNetworks != new.exportAllowedNetworks
                || old.maximumConnections != new.maximumConnections || old.maximumRequestSize != new.maximumRequestSize
                || old.maximumBytesInFlight != new.maximumBytesInFlight
                || old.readOnlyExports != new.readOnlyExports || old.socketMode != new.socketMode)
        note("admin.socket", old.adminSocket != new.adminSocket)
        note("storage", old.ioBackend != new.ioBackend || old.defaultChunkSize != new.defaultChunkSize)
        note(
            "object_store",
            old.objectStore != new.objectStore || old.accessKey != new.accessKey || old.secretKey != new.secretKey)
        note(
            "cache upload and read-ahead settings",
            old.uploadBuffer != new.uploadBuffer || old.uploadConcurrency != new.uploadConcurrency
                || old.uploadDelayMilliseconds != new.uploadDelayMilliseconds
                || old.backpressureTimeoutSeconds != new.backpressureTimeoutSeconds
                || old.uploadSettleSeconds != new.uploadSettleSeconds || old.readAhead != new.readAhead)
        note("library", old.library != new.library || old.shelf != new.shelf)
        note("metrics.listen", old.metricsListen != new.metricsListen)
        note("tls", old.tls != new.tls)
        return names
    }
}
