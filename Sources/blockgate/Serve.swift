import ArgumentParser
import Dispatch
import Foundation
import Gateway
import LocalIO
import Logging
import NBDServer

/// `blockgate serve`: runs the daemon until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway daemon.",
        discussion: """
            Without --config the embedded defaults apply: data under ./var, NBD on ./var/nbd.sock and
            127.0.0.1:10809, admin API on ./var/admin.sock, and a 1G demo volume on first start.
            Flags override the config file. Example:
              blockgate serve --config nbd-config/blockgate.yaml --listen 127.0.0.1:10810
            """)

    @Option(help: "YAML config file (see nbd-config/blockgate.yaml).")
    var config: String?
    @Option(help: "Directory for volumes, metadata and sockets.")
    var dataDir: String?
    @Option(help: "Unix socket for NBD clients (\"\" disables it).")
    var socket: String?
    @Option(help: "TCP address for NBD clients as HOST:PORT (\"\" disables it).")
    var listen: String?
    @Option(help: "Unix socket of the admin API.")
    var adminSocket: String?
    @Option(help: "Local I/O backend: auto, uring or posix.")
    var ioBackend: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?
    @Flag(help: "Log one line per NBD request (slows the data path).")
    var requestLog = false
    @Option(help: "Object store of cached volumes: file:///path or s3://BUCKET?endpoint=http://HOST:PORT[&region=R].")
    var objectStore: String?
    @Option(help: "Bytes cached volumes may keep locally, e.g. 4G.")
    var cacheSize: String?
    @Option(help: "The master key of encrypted cached volumes (make one with `blockgate key generate FILE`).")
    var keyFile: String?
    @Option(help: "Or a file holding a passphrase the master key is derived from (scrypt).")
    var passphraseFile: String?
    @Option(help: "NBD over TLS: off, optional or required.")
    var tls: String?
    @Option(help: "The server's certificate chain (PEM) for TLS.")
    var tlsCert: String?
    @Option(help: "The server's private key (PEM) for TLS.")
    var tlsKey: String?
    @Option(help: "A CA (PEM): clients must present a certificate it signed.")
    var tlsCa: String?
    @Option(help: "Address for Prometheus metrics as HOST:PORT, e.g. 127.0.0.1:10810 (\"\" turns them off).")
    var metricsListen: String?

    func run() async throws {
        TerminationSignal.unblock()
        let settings = try settings()
        MemoryTuning.keepLargeBuffersInTheHeap()
        LogLevelControl.level = settings.logLevel
        LoggingSystem.bootstrap(LogLevelControl.handler)
        let logger = Logger(label: "blockgate")
        let command = self
        let reloadSource: ConfigReloader.Source? = config == nil ? nil : { @Sendable in try command.settings() }
        let gateway = try await Gateway.start(config: settings, logger: logger, reloadSource: reloadSource)
        let hangups = HangupSignal { _ = try? gateway.reloader.reload() }
        let systemd = SystemdNotifier()
        let volumes = gateway.manager.names.count
        systemd?.notify(
            "READY=1\nSTATUS=serving \(volumes) volume(s) and \(settings.library.drives) tape drive(s)\nMAINPID=\(getpid())"
        )
        let signal = await TerminationSignal.wait()
        logger.notice("received signal \(signal)")
        systemd?.notify("STOPPING=1\nSTATUS=stopping: finishing requests, flushing")
        withExtendedLifetime(hangups) {}
        await gateway.stop()
    }

    /// The configuration: the config file (if any) with the command line's overrides.
    private func settings() throws -> GatewayConfig {
        var settings = GatewayConfig()
        if let config {
            guard let contents = try? String(contentsOfFile: config, encoding: .utf8) else {
                throw GatewayError(.invalid, "cannot read config file \(config)")
            }
            settings = try GatewayConfig.load(path: config, contents: contents)
        }
        if let dataDir { settings.dataDirectory = dataDir }
        if let socket { settings.nbdSocket = socket }
        if let listen { settings.nbdListen = listen }
        if let adminSocket { settings.adminSocket = adminSocket }
        if let ioBackend {
            guard let choice = FileIOBackendChoice(rawValue: ioBackend) else {
                throw ValidationError("--io-backend must be auto, uring or posix, not '\(ioBackend)'")
            }
            settings.ioBackend = choice
        }
        if let logLevel {
            guard let level = Logger.Level(rawValue: logLevel) else {
                throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical")
            }
            settings.logLevel = level
        }
        if requestLog { settings.requestLog = true }
        if let objectStore {
            _ = try ObjectStoreLocation.parse(objectStore)
            settings.objectStore = objectStore
        }
        if let cacheSize { settings.cacheSize = try ByteSize.parse(cacheSize) }
        if let keyFile { settings.keyFile = keyFile }
        if let passphraseFile { settings.passphraseFile = passphraseFile }
        if let metricsListen { settings.metricsListen = metricsListen }
        if let tls {
            guard let mode = NBDTLSMode(rawValue: tls) else {
                throw ValidationError("--tls must be off, optional or required, not '\(tls)'")
            }
            settings.tls.mode = mode
        }
        if let tlsCert { settings.tls.certificate = tlsCert }
        if let tlsKey { settings.tls.key = tlsKey }
        if let tlsCa { settings.tls.clientCA = tlsCa }
        _ = try settings.listenAddress()
        _ = try settings.metricsAddress()
        return settings
    }
}

/// Runs an action on each SIGHUP while it is alive.
final class HangupSignal {
    private let source: any DispatchSourceSignal

    init(_ action: @escaping @Sendable () -> Void) {
        signal(SIGHUP, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "blockgate.sighup"))
        source.setEventHandler(handler: action)
        source.resume()
    }

    deinit { source.cancel() }
}

/// Waits for SIGTERM or SIGINT.
enum TerminationSignal {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    /// Unblocks SIGTERM, SIGINT and SIGHUP, which a parent may have left blocked (a test runner's
    /// thread, some supervisors); call before starting threads, which inherit the mask.
    static func unblock() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGHUP)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
    }

    static func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let queue = DispatchQueue(label: "blockgate.signals")
            var resumed = false
            for number in [SIGTERM, SIGINT] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler {
                    guard !resumed else { return }
                    resumed = true
                    continuation.resume(returning: number)
                }
                source.resume()
                sources.append(source)
            }
        }
    }
}

/// The parsed options never change after parsing, so a reload may read them from any thread.
extension Serve: @unchecked Sendable {}
