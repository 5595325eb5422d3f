import Codecs
import Foundation
import LocalIO
import Logging
import NBDServer
import TapeLibrary
import Yams

/// Everything the daemon can be configured with. Embedded defaults make a working gateway
/// under ./var; a YAML file (see nbd-config/blockgate.yaml) and then command-line flags override them.
public struct GatewayConfig: Sendable, Equatable {
    /// Where volumes, metadata and sockets live.
    public var dataDirectory = "./var"
    /// Unix socket for NBD clients; nil means `<data_dir>/nbd.sock`, "" disables it.
    public var nbdSocket: String?
    /// TCP address for NBD clients as HOST:PORT; "" disables it.
    public var nbdListen = "127.0.0.1:10809"
    /// The export a client gets when it asks for the default export ("").
    public var defaultExport = "demo"
    /// Log one line per NBD request (debugging; slows the data path).
    public var requestLog = false
    /// TCP clients allowed to connect, as CIDR ranges.
    public var allowedNetworks = ["127.0.0.0/8", "::1/128"]
    /// Exports only some TCP clients may list and open: export name → CIDR ranges.
    public var exportAllowedNetworks: [String: [String]] = [:]
    /// Connections served at once.
    public var maximumConnections = 1024
    /// Longest read or write served, advertised as the maximum block size (a power of two).
    public var maximumRequestSize: UInt32 = 32 << 20
    /// Request bytes in flight per connection before the server stops reading from it.
    public var maximumBytesInFlight = 256 << 20
    /// Exports served read-only (NBD_FLAG_READ_ONLY; writes fail with EPERM).
    public var readOnlyExports: [String] = []
    /// Permissions of the NBD unix socket.
    public var socketMode: UInt16 = 0o660
    /// Unix socket of the admin API; nil means `<data_dir>/admin.sock`.
    public var adminSocket: String?
    /// Which local I/O backend to use.
    public var ioBackend = FileIOBackendChoice.auto
    /// Chunk size of new volumes when none is given.
    public var defaultChunkSize: UInt64 = 1 << 20
    /// Least severe log level written.
    public var logLevel = Logger.Level.info
    /// A volume created at start when the gateway has none (nil: none).
    public var demoVolume: DemoVolume? = DemoVolume(name: "demo", size: 1 << 30)
    /// Blank tapes (DEMO0001, …) created at start when the gateway has no volume, the library no
    /// tape, and the shelf is the embedded file store (nil: none).
    public var demoTapes: DemoTapes? = DemoTapes()
    /// Where cached volumes keep their data; nil means `file://<data_dir>/objects`.
    public var objectStore: String?
    /// Credentials for an S3 object store; nil means AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    public var accessKey: String?
    public var secretKey: String?
    /// Bytes the cached volumes may keep locally.
    public var cacheSize: UInt64 = 4 << 30
    /// Dirty data past which writes wait for uploads.
    public var uploadBuffer: UInt64 = 256 << 20
    /// Chunks each cached volume uploads at once while uploads must catch up; a quarter otherwise.
    public var uploadConcurrency = 16
    /// How long a volume must go unchanged before its dirty chunks are uploaded.
    public var uploadDelayMilliseconds: Int64 = 500
    /// How long a write waits for the upload buffer before failing with ENOSPC.
    public var backpressureTimeoutSeconds: Int64 = 60
    /// How long a PUT whose answer was not seen may still land; its object is deleted after it.
    public var uploadSettleSeconds: Int64 = 120
    /// Bytes of whole chunks downloaded ahead of a sequential reader at most (0 turns it off).
    public var readAhead: UInt64 = 16 << 20
    /// The master key file of encrypted cached volumes.
    public var keyFile: String?
    /// Or a file holding a passphrase the master key is derived from.
    public var passphraseFile: String?
    /// How new cached volumes compress and encrypt their objects.
    public var objectFormat = ObjectFormatChoice()
    /// Per tape pool, how its tapes' objects are compressed and encrypted (else `objectFormat`).
    public var poolFormats: [String: ObjectFormatChoice.Request] = [:]
    /// NBD over TLS: off, optional or required, with the server's certificate chain and key
    /// (PEM files) and, to require client certificates, the CA that signs them.
    public var tls = TLSSettings()

    /// The TLS part of the configuration.
    public struct TLSSettings: Sendable, Equatable {
        public var mode = NBDTLSMode.off
        public var certificate: String?
        public var key: String?
        public var clientCA: String?

        public init() {}
    }

    /// Address of the Prometheus metrics endpoint as HOST:PORT; "" turns it off.
    public var metricsListen = ""
    /// The tape library's slots, drives and default pool.
    public var library = Library.Configuration()
    /// Where tapes keep their data (the shelf): an object store URL; nil means the object store.
    public var shelf: String?
    /// Per tape pool, what the object store does with its tapes' objects at export.
    public var shelfPolicies: [String: ShelfPolicy] = [:]

    /// The blank tapes `make run` starts with.
    public struct DemoTapes: Sendable, Equatable {
        public var count = 4
        public var size: UInt64 = 1 << 30

        public init() {}
    }

    /// The volume `make run` starts with.
    public struct DemoVolume: Sendable, Equatable {
        public var name: String
        public var size: UInt64

        public init(name: String, size: UInt64) {
            self.name = name
            self.size = size
        }
    }

    public init() {}

    /// The NBD unix socket path, or nil when disabled.
    public var resolvedNBDSocket: String? {
        guard let nbdSocket else { return dataDirectory + "/nbd.sock" }
        return nbdSocket.isEmpty ? nil : nbdSocket
    }

    /// The admin socket path.
    public var resolvedAdminSocket: String { adminSocket ?? dataDirectory + "/admin.sock" }

    /// The master key from `keyFile`, nil when there is none.
    /// - Throws: `GatewayError.invalid` when the file cannot be read or holds no key.
    public func masterKey() throws(GatewayError) -> MasterKey? {
        guard let keyFile else { return nil }
        let contents: Data
        do {
            contents = try Data(contentsOf: URL(fileURLWithPath: keyFile))
        } catch {
            throw GatewayError(.invalid, "cannot read the key file \(keyFile): \(error.localizedDescription)")
        }
        do {
            return try MasterKey(keyFile: Array(contents))
        } catch {
            throw GatewayError(.invalid, "key file \(keyFile): \(error.message)")
        }
    }

    /// The object store's location.
    /// - Throws: `GatewayError.invalid` for a malformed URL.
    public func objectStoreLocation() throws(GatewayError) -> ObjectStoreLocation {
        try ObjectStoreLocation.parse(objectStore ?? "file://\(absolute(dataDirectory))/objects")
    }

    /// The shelf's location: its own object store, or the object store.
    /// - Throws: `GatewayError.invalid` for a malformed URL.
    public func shelfLocation() throws(GatewayError) -> ObjectStoreLocation {
        guard let shelf else { return try objectStoreLocation() }
        return try ObjectStoreLocation.parse(shelf)
    }

    private func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// The TCP listen address split into host and port, or nil when disabled.
    /// - Throws: `GatewayError.invalid` for a malformed address.
    public func listenAddress() throws(GatewayError) -> (host: String, port: Int)? {
        try Self.address(nbdListen, example: "127.0.0.1:10809")
    }

    /// The TCP clients allowed to connect.
    /// - Throws: `GatewayError.invalid` for a range that does not parse.
    public func networks() throws(GatewayError) -> [IPNetwork] {
        try Self.parse(networks: allowedNetworks)
    }

    /// The TCP clients allowed to list and open each export that has a rule.
    /// - Throws: `GatewayError.invalid` for a range that does not parse.
    public func exportNetworks() throws(GatewayError) -> [String: [IPNetwork]] {
        var rules: [String: [IPNetwork]] = [:]
        for (export, ranges) in exportAllowedNetworks { rules[export] = try Self.parse(networks: ranges) }
        return rules
    }

    private static func parse(networks texts: [String]) throws(GatewayError) -> [IPNetwork] {
        var networks: [IPNetwork] = []
        for text in texts {
            do {
                networks.append(try IPNetwork(text))
            } catch {
                throw GatewayError(.invalid, error.description)
            }
        }
        return networks
    }

    /// The metrics address split into host and port, or nil when metrics are off.
    /// - Throws: `GatewayError.invalid` for a malformed address.
    public func metricsAddress() throws(GatewayError) -> (host: String, port: Int)? {
        try Self.address(metricsListen, example: "127.0.0.1:10810")
    }

    private static func address(_ text: String, example: String) throws(GatewayError) -> (host: String, port: Int)? {
        guard !text.isEmpty else { return nil }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw GatewayError(.invalid, "listen address '\(text)' is not HOST:PORT (e.g. \(example))")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    // MARK: - Loading

    /// Reads a YAML config file over the embedded defaults.
    /// - Throws: `GatewayError.invalid` naming the file, line and key, and what is allowed.
    public static func load(path: String, contents: String) throws(GatewayError) -> GatewayConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: contents)
        } catch {
            throw GatewayError(.invalid, "\(path): not valid YAML: \(error)")
        }
        var config = GatewayConfig()
        guard let root else { return config }
        let reader = ConfigReader(path: path)
        try reader.apply(root, to: &config)
        return config
    }
}

/// Walks the YAML tree, checking every key against what is allowed.
private struct ConfigReader {
    let path: String

    func apply(_ root: Node, to config: inout GatewayConfig) throws(GatewayError) {
        let sections = [
            "data_dir", "log_level", "nbd", "admin", "storage", "object_store", "cache", "library", "metrics", "tls",
            "demo_volume", "demo_tapes", "objects",
        ]
        for (key, value) in try mapping(root, section: nil, allowed: sections) {
            switch key {
            case "data_dir": config.dataDirectory = try string(value, key)
            case "log_level":
                let text = try string(value, key)
                guard let level = Logger.Level(rawValue: text) else {
                    throw error(value, key, "must be one of trace, debug, info, notice, warning, error, critical")
                }
                config.logLevel = level
            case "nbd":
                let keys = [
                    "socket", "socket_mode", "listen", "allow", "export_allow", "max_connections", "max_request_size",
                    "max_bytes_in_flight", "default_export", "read_only", "request_log",
                ]
                for (key, value) in try mapping(value, section: "nbd", allowed: keys) {
                    switch key {
                    case "socket": config.nbdSocket = try string(value, "nbd.socket")
                    case "socket_mode":
                        guard let mode = UInt16(try string(value, "nbd.socket_mode"), radix: 8), mode <= 0o777 else {
                            throw error(value, "nbd.socket_mode", "must be octal permissions such as 0660")
                        }
                        config.socketMode = mode
                    case "listen": config.nbdListen = try string(value, "nbd.listen")
                    case "allow":
                        config.allowedNetworks = try strings(value, "nbd.allow")
                        do {
                            _ = try config.networks()
                        } catch {
                            throw self.error(value, "nbd.allow", error.message)
                        }
                    case "export_allow":
                        guard case .mapping(let exports) = value else {
                            throw error(value, "nbd.export_allow", "must map export names to lists of ranges")
                        }
                        for (name, ranges) in exports {
                            let export = try string(name, "nbd.export_allow")
                            config.exportAllowedNetworks[export] = try strings(ranges, "nbd.export_allow.\(export)")
                        }
                        do {
                            _ = try config.exportNetworks()
                        } catch {
                            throw self.error(value, "nbd.export_allow", error.message)
                        }
                    case "max_connections":
                        config.maximumConnections = Int(try integer(value, "nbd.max_connections", in: 1...65536))
                    case "max_request_size":
                        let bytes = try size(value, "nbd.max_request_size")
                        guard (64 << 10...32 << 20).contains(bytes), bytes.nonzeroBitCount == 1 else {
                            throw error(value, "nbd.max_request_size", "must be a power of two from 64K to 32M")
                        }
                        config.maximumRequestSize = UInt32(bytes)
                    case "max_bytes_in_flight":
                        let bytes = try size(value, "nbd.max_bytes_in_flight")
                        guard (1 << 20...4 << 30).contains(bytes) else {
                            throw error(value, "nbd.max_bytes_in_flight", "must be from 1M to 4G")
                        }
                        config.maximumBytesInFlight = Int(bytes)
                    case "default_export": config.defaultExport = try string(value, "nbd.default_export")
                    case "read_only": config.readOnlyExports = try strings(value, "nbd.read_only")
                    default: config.requestLog = try bool(value, "nbd.request_log")
                    }
                }
            case "admin":
                for (_, value) in try mapping(value, section: "admin", allowed: ["socket"]) {
                    config.adminSocket = try string(value, "admin.socket")
                }
            case "tls":
                for (key, value) in try mapping(value, section: "tls", allowed: ["mode", "cert", "key", "ca"]) {
                    switch key {
                    case "mode":
                        let text = try string(value, "tls.mode")
                        guard let mode = NBDTLSMode(rawValue: text) else {
                            throw error(value, "tls.mode", "must be off, optional or required")
                        }
                        config.tls.mode = mode
                    case "cert": config.tls.certificate = try string(value, "tls.cert")
                    case "key": config.tls.key = try string(value, "tls.key")
                    default: config.tls.clientCA = try string(value, "tls.ca")
                    }
                }
            case "metrics":
                for (_, value) in try mapping(value, section: "metrics", allowed: ["listen"]) {
                    config.metricsListen = try string(value, "metrics.listen")
                    do {
                        _ = try config.metricsAddress()
                    } catch {
                        throw self.error(value, "metrics.listen", error.message)
                    }
                }
            case "storage":
                for (key, value) in try mapping(
                    value, section: "storage", allowed: ["io_backend", "default_chunk_size"])
                {
                    if key == "io_backend" {
                        let text = try string(value, "storage.io_backend")
                        guard let choice = FileIOBackendChoice(rawValue: text) else {
                            throw error(value, "storage.io_backend", "must be auto, uring or posix")
                        }
                        config.ioBackend = choice
                    } else {
                        config.defaultChunkSize = try size(value, "storage.default_chunk_size")
                    }
                }
            case "object_store":
                for (key, value) in try mapping(
                    value, section: "object_store", allowed: ["url", "access_key", "secret_key"])
                {
                    let text = try string(value, "object_store.\(key)")
                    switch key {
                    case "url": config.objectStore = try objectStoreURL(value, "object_store.url")
                    case "access_key": config.accessKey = text
                    default: config.secretKey = text
                    }
                }
            case "objects":
                for (key, value) in try mapping(
                    value, section: "objects",
                    allowed: ["key_file", "passphrase_file", "encryption", "compression", "pools"])
                {
                    switch key {
                    case "key_file": config.keyFile = try string(value, "objects.key_file")
                    case "passphrase_file": config.passphraseFile = try string(value, "objects.passphrase_file")
                    case "pools":
                        guard case .mapping(let pools) = value else {
                            throw error(
                                value, "objects.pools", "must map tape pool names to compression and encryption")
                        }
                        for (name, settings) in pools {
                            let pool = try string(name, "objects.pools")
                            let section = "objects.pools.\(pool)"
                            var format = ObjectFormatChoice.Request()
                            for (key, value) in try mapping(
                                settings, section: section, allowed: ["compression", "encryption"])
                            {
                                try readFormat(key, value, section: section, into: &format)
                            }
                            config.poolFormats[pool] = format
                        }
                    default:
                        var format = ObjectFormatChoice.Request()
                        try readFormat(key, value, section: "objects", into: &format)
                        config.objectFormat.compression = format.compression ?? config.objectFormat.compression
                        config.objectFormat.cipher = format.cipher ?? config.objectFormat.cipher
                    }
                }
            case "cache":
                let keys = [
                    "size", "upload_buffer", "upload_concurrency", "upload_delay_ms", "backpressure_timeout_seconds",
                    "upload_settle_seconds", "read_ahead",
                ]
                for (key, value) in try mapping(value, section: "cache", allowed: keys) {
                    switch key {
                    case "size": config.cacheSize = try size(value, "cache.size")
                    case "upload_buffer": config.uploadBuffer = try size(value, "cache.upload_buffer")
                    case "upload_concurrency":
                        config.uploadConcurrency = Int(try integer(value, "cache.upload_concurrency", in: 1...64))
                    case "upload_delay_ms":
                        config.uploadDelayMilliseconds = try integer(value, "cache.upload_delay_ms", in: 0...600_000)
                    case "backpressure_timeout_seconds":
                        config.backpressureTimeoutSeconds = try integer(
                            value, "cache.backpressure_timeout_seconds", in: 1...86400)
                    case "upload_settle_seconds":
                        config.uploadSettleSeconds = try integer(value, "cache.upload_settle_seconds", in: 0...86400)
                    default: config.readAhead = try size(value, "cache.read_ahead", zeroTurnsOff: true)
                    }
                }
            case "library":
                for (key, value) in try mapping(
                    value, section: "library", allowed: ["slots", "drives", "default_pool", "shelf", "pools"])
                {
                    switch key {
                    case "pools": try readPools(value, into: &config)
                    case "slots": config.library.slots = Int(try integer(value, "library.slots", in: 1...10000))
                    case "drives": config.library.drives = Int(try integer(value, "library.drives", in: 1...64))
                    case "shelf": config.shelf = try objectStoreURL(value, "library.shelf")
                    default: config.library.defaultPool = try string(value, "library.default_pool")
                    }
                }
            case "demo_tapes":
                if case .scalar(let scalar) = value, ["", "~", "null", "none"].contains(scalar.string) {
                    config.demoTapes = nil
                    continue
                }
                var demo = GatewayConfig.DemoTapes()
                for (key, value) in try mapping(value, section: "demo_tapes", allowed: ["count", "size"]) {
                    if key == "count" {
                        demo.count = Int(try integer(value, "demo_tapes.count", in: 1...100))
                    } else {
                        demo.size = try size(value, "demo_tapes.size")
                    }
                }
                config.demoTapes = demo
            default:
                if case .scalar(let scalar) = value, ["", "~", "null", "none"].contains(scalar.string) {
                    config.demoVolume = nil
                    continue
                }
                var demo = GatewayConfig.DemoVolume(name: "demo", size: 1 << 30)
                for (key, value) in try mapping(value, section: "demo_volume", allowed: ["name", "size"]) {
                    if key == "name" {
                        demo.name = try string(value, "demo_volume.name")
                    } else {
                        demo.size = try size(value, "demo_volume.size")
                    }
                }
                config.demoVolume = demo
            }
        }
    }

    /// Reads `library.pools`: per pool, retention and WORM (the library's) and storage class,
    /// Object Lock and restores (the shelf's).
    private func readPools(_ value: Node, into config: inout GatewayConfig) throws(GatewayError) {
        guard case .mapping(let pools) = value else {
            throw error(value, "library.pools", "must map tape pool names to their retention and storage class")
        }
        let keys = ["retention_days", "worm", "storage_class", "object_lock", "restore_days", "retrieval_time"]
        for (name, settings) in pools {
            let pool = try string(name, "library.pools")
            let section = "library.pools.\(pool)"
            var retention = PoolPolicy()
            var shelf = ShelfPolicy()
            for (key, value) in try mapping(settings, section: section, allowed: keys) {
                switch key {
                case "retention_days":
                    retention.retentionDays = Int(try integer(value, "\(section).retention_days", in: 0...36500))
                case "worm": retention.worm = try bool(value, "\(section).worm")
                case "storage_class":
                    let storageClass = try string(value, "\(section).storage_class")
                    guard !storageClass.isEmpty, storageClass.allSatisfy({ $0.isUppercase || $0 == "_" }) else {
                        throw error(value, "\(section).storage_class", "must be an S3 storage class, e.g. GLACIER")
                    }
                    shelf.storageClass = storageClass
                case "object_lock": shelf.objectLock = try bool(value, "\(section).object_lock")
                case "restore_days": shelf.restoreDays = Int(try integer(value, "\(section).restore_days", in: 1...365))
                default: shelf.retrievalTime = try string(value, "\(section).retrieval_time")
                }
            }
            if shelf.objectLock, retention.retentionDays == nil, !retention.worm {
                throw error(settings, section, "object_lock needs retention_days or worm: true (what to lock until)")
            }
            config.library.pools[pool] = retention
            config.shelfPolicies[pool] = shelf
        }
    }

    /// Reads a section's `compression` or `encryption` (`key`) into `format`.
    private func readFormat(
        _ key: String, _ value: Node, section: String, into format: inout ObjectFormatChoice.Request
    ) throws(GatewayError) {
        let text = try string(value, "\(section).\(key)")
        if key == "encryption" {
            guard let cipher = Cipher(parsing: text) else {
                throw error(value, "\(section).encryption", "must be off, aes-256-gcm or chacha20-poly1305")
            }
            format.cipher = cipher
        } else {
            guard let compression = Compression(parsing: text) else {
                throw error(value, "\(section).compression", "must be off, lz4, zstd or zstd:LEVEL (1-19)")
            }
            format.compression = compression
        }
    }

    private func mapping(_ node: Node, section: String?, allowed: [String]) throws(GatewayError) -> [(String, Node)] {
        guard case .mapping(let mapping) = node else {
            throw error(node, section ?? "top level", "must be a mapping of keys to values")
        }
        var pairs: [(String, Node)] = []
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            guard allowed.contains(key) else {
                let place = section.map { "in section '\($0)'" } ?? "at the top level"
                throw error(keyNode, key, "unknown key \(place); allowed: \(allowed.joined(separator: ", "))")
            }
            pairs.append((key, value))
        }
        return pairs
    }

    private func string(_ node: Node, _ key: String) throws(GatewayError) -> String {
        guard case .scalar(let scalar) = node else { throw error(node, key, "must be a string") }
        return scalar.string
    }

    /// An object store URL, checked to parse.
    private func objectStoreURL(_ node: Node, _ key: String) throws(GatewayError) -> String {
        let text = try string(node, key)
        do {
            _ = try ObjectStoreLocation.parse(text)
        } catch {
            throw self.error(node, key, error.message)
        }
        return text
    }

    private func strings(_ node: Node, _ key: String) throws(GatewayError) -> [String] {
        guard case .sequence(let sequence) = node else { throw error(node, key, "must be a list, e.g. [a, b]") }
        var values: [String] = []
        for item in sequence { values.append(try string(item, key)) }
        return values
    }

    private func bool(_ node: Node, _ key: String) throws(GatewayError) -> Bool {
        guard let value = node.bool else { throw error(node, key, "must be true or false") }
        return value
    }

    private func integer(_ node: Node, _ key: String, in range: ClosedRange<Int64>) throws(GatewayError) -> Int64 {
        guard let value = Int64(try string(node, key)), range.contains(value) else {
            throw error(node, key, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A size; with `zeroTurnsOff`, also 0 (for a setting that 0 turns off).
    private func size(_ node: Node, _ key: String, zeroTurnsOff: Bool = false) throws(GatewayError) -> UInt64 {
        let text = try string(node, key)
        if zeroTurnsOff && text == "0" { return 0 }
        do {
            return try ByteSize.parse(text)
        } catch {
            throw self.error(node, key, error.message)
        }
    }

    private func error(_ node: Node, _ key: String, _ message: String) -> GatewayError {
        let line = node.mark.map { ":\($0.line)" } ?? ""
        return GatewayError(.invalid, "\(path)\(line): \(key): \(message)")
    }
}
