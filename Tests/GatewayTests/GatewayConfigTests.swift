import Codecs
import Foundation
import Gateway
import LocalIO
import NBDServer
import TapeLibrary
import Testing

@Suite struct GatewayConfigTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test func embeddedDefaultsServeUnderVar() throws {
        let config = GatewayConfig()
        #expect(config.resolvedNBDSocket == "./var/nbd.sock")
        #expect(config.resolvedAdminSocket == "./var/admin.sock")
        #expect(try config.listenAddress()! == ("127.0.0.1", 10809))
        #expect(config.demoVolume?.size == 1 << 30)
    }

    @Test func theExampleConfigParsesWithEveryOption() throws {
        let path = Self.root + "/nbd-config/blockgate.yaml"
        let config = try GatewayConfig.load(path: path, contents: String(contentsOfFile: path, encoding: .utf8))
        #expect(config.dataDirectory == "/var/lib/blockgate")
        #expect(config.resolvedNBDSocket == "/run/blockgate/nbd.sock")
        #expect(config.resolvedAdminSocket == "/run/blockgate/admin.sock")
        #expect(config.ioBackend == .auto)
        #expect(config.defaultChunkSize == 1 << 20)
        #expect(config.demoVolume == GatewayConfig.DemoVolume(name: "demo", size: 1 << 30))
        #expect(config.demoTapes == GatewayConfig.DemoTapes())
        #expect(try config.objectStoreLocation() == .file(path: "/var/lib/blockgate/objects"))
        let defaults = GatewayConfig()
        #expect(config.cacheSize == defaults.cacheSize)
        #expect(config.uploadBuffer == defaults.uploadBuffer)
        #expect(config.uploadConcurrency == defaults.uploadConcurrency)
        #expect(config.backpressureTimeoutSeconds == defaults.backpressureTimeoutSeconds)
        #expect(config.library == defaults.library)
        #expect(try config.metricsAddress()! == ("127.0.0.1", 10810))
        #expect(try defaults.metricsAddress() == nil)
        #expect(config.tls == defaults.tls)
        #expect(config.allowedNetworks == defaults.allowedNetworks && config.socketMode == defaults.socketMode)
        #expect(config.maximumConnections == defaults.maximumConnections && config.readOnlyExports.isEmpty)
        #expect(config.exportAllowedNetworks.isEmpty)
        #expect(config.maximumRequestSize == defaults.maximumRequestSize)
        #expect(config.maximumBytesInFlight == defaults.maximumBytesInFlight)
        #expect(config.objectFormat == defaults.objectFormat && config.keyFile == nil)
    }

    @Test func theObjectsSectionSetsTheKeyFileAndTheDefaultFormat() throws {
        let config = try GatewayConfig.load(
            path: "o.yaml",
            contents: "objects:\n  key_file: /k\n  encryption: chacha20-poly1305\n  compression: zstd:9\n")
        #expect(config.keyFile == "/k")
        #expect(config.objectFormat == ObjectFormatChoice(compression: .zstd(level: 9), cipher: .chaCha20Poly1305))
        let pools = try GatewayConfig.load(
            path: "p.yaml",
            contents:
                "objects:\n  passphrase_file: /p\n  pools:\n    vault: {encryption: aes-256-gcm, compression: lz4}\n")
        #expect(pools.passphraseFile == "/p")
        #expect(pools.poolFormats == ["vault": .init(compression: .lz4, cipher: .aes256GCM)])
        for bad in [
            "encryption: aes", "compression: zstd:0", "compression: gzip", "keyfile: /k", "pools: [a]",
            "pools:\n    v: {encryption: des}",
        ] {
            #expect(throws: GatewayError.self, "\(bad)") {
                try GatewayConfig.load(path: "q.yaml", contents: "objects:\n  \(bad)\n")
            }
        }
        // A key file that does not hold a key is refused with what it should hold.
        let path = NSTemporaryDirectory() + "blockgate-badkey-\(UUID().uuidString.prefix(8))"
        try "not a key\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var bad = GatewayConfig()
        bad.keyFile = path
        let error = #expect(throws: GatewayError.self) { try bad.masterKey() }
        #expect(error?.message.contains("64 hexadecimal digits") == true)
        bad.keyFile = path + ".missing"
        #expect(throws: GatewayError.self) { try bad.masterKey() }
    }

    @Test func requestAndInFlightLimitsParseWithinTheirBounds() throws {
        let config = try GatewayConfig.load(
            path: "l.yaml", contents: "nbd:\n  max_request_size: 1M\n  max_bytes_in_flight: 64M\n")
        #expect(config.maximumRequestSize == 1 << 20 && config.maximumBytesInFlight == 64 << 20)
        for bad in ["max_request_size: 3M", "max_request_size: 64M", "max_request_size: 4K", "max_bytes_in_flight: 8G"]
        {
            #expect(throws: GatewayError.self, "\(bad)") {
                try GatewayConfig.load(path: "m.yaml", contents: "nbd:\n  \(bad)\n")
            }
        }
    }

    @Test func nbdAccessSettingsParseAndBadRangesAreRefused() throws {
        let config = try GatewayConfig.load(
            path: "p.yaml",
            contents: "nbd:\n  allow: [10.0.0.0/8, \"fd00::/8\"]\n  read_only: [gold]\n  socket_mode: \"0600\"\n")
        #expect(try config.networks().map(\.description) == ["10.0.0.0/8", "fd00:0:0:0:0:0:0:0/8"])
        #expect(config.readOnlyExports == ["gold"] && config.socketMode == 0o600)
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "q.yaml", contents: "nbd:\n  allow: [10.0.0/8]\n")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "r.yaml", contents: "nbd:\n  allow: 10.0.0.0/8\n")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "s.yaml", contents: "nbd:\n  socket_mode: rw\n")
        }
    }

    @Test func exportAllowRulesParseByExportNameAndBadOnesAreRefused() throws {
        let config = try GatewayConfig.load(
            path: "e.yaml",
            contents: "nbd:\n  export_allow:\n    gold: [192.168.10.0/24]\n    drive/0: [127.0.0.1/32]\n")
        let rules = try config.exportNetworks()
        #expect(
            rules.mapValues { $0.map(\.description) } == ["gold": ["192.168.10.0/24"], "drive/0": ["127.0.0.1/32"]])
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "f.yaml", contents: "nbd:\n  export_allow: [gold]\n")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "g.yaml", contents: "nbd:\n  export_allow:\n    gold: [300.1.1.1/8]\n")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "h.yaml", contents: "nbd:\n  export_allow:\n    gold: 10.0.0.0/8\n")
        }
    }

    @Test func theTLSSectionNamesModeCertificateKeyAndCA() throws {
        let config = try GatewayConfig.load(
            path: "n.yaml", contents: "tls:\n  mode: required\n  cert: /c.pem\n  key: /k.pem\n  ca: /ca.pem\n")
        #expect(config.tls.mode == .required && config.tls.certificate == "/c.pem")
        #expect(config.tls.key == "/k.pem" && config.tls.clientCA == "/ca.pem")
        #expect(throws: GatewayError.self) { try GatewayConfig.load(path: "o.yaml", contents: "tls:\n  mode: maybe\n") }
    }

    @Test func theLibrarySectionSetsSlotsDrivesAndPool() throws {
        let config = try GatewayConfig.load(
            path: "k.yaml",
            contents: "library:\n  slots: 5\n  drives: 3\n  default_pool: offsite\n  shelf: file:///srv/shelf\n")
        #expect(config.library.slots == 5 && config.library.driveNames == ["0", "1", "2"])
        #expect(config.library.defaultPool == "offsite")
        #expect(try config.shelfLocation() == .file(path: "/srv/shelf"))
        #expect(try GatewayConfig().shelfLocation() == GatewayConfig().objectStoreLocation())
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "l.yaml", contents: "library:\n  drives: 0\n")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "m.yaml", contents: "library:\n  robots: 1\n")
        }
    }

    @Test func errorsNameTheFileLineKeyAndWhatIsAllowed() {
        let contents = "data_dir: /x\nnbd:\n  listen: 1.2.3.4:1\n  sockett: /y\n"
        #expect {
            try GatewayConfig.load(path: "b.yaml", contents: contents)
        } throws: { error in
            let message = (error as? GatewayError)?.message ?? ""
            return message.contains("b.yaml:4") && message.contains("sockett") && message.contains("allowed: socket")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "c.yaml", contents: "storage:\n  io_backend: fast\n")
        }
        #expect(throws: GatewayError.self) { try GatewayConfig.load(path: "d.yaml", contents: "log_level: loud\n") }
        #expect(throws: GatewayError.self) { try GatewayConfig.load(path: "e.yaml", contents: "nbd: [1, 2\n") }
    }

    @Test func objectStoreAndCacheSectionsApply() throws {
        let contents = """
            object_store:
              url: s3://backups?endpoint=http://127.0.0.1:9000&region=eu-west-1
              access_key: AK
              secret_key: SK
            cache:
              size: 64M
              upload_buffer: 8M
              upload_concurrency: 2
              upload_delay_ms: 250
              backpressure_timeout_seconds: 5
              upload_settle_seconds: 7
              read_ahead: 0
            """
        let config = try GatewayConfig.load(path: "h.yaml", contents: contents)
        #expect(
            try config.objectStoreLocation()
                == .s3(bucket: "backups", host: "127.0.0.1", port: 9000, region: "eu-west-1"))
        #expect(config.accessKey == "AK" && config.secretKey == "SK")
        #expect(config.cacheSize == 64 << 20 && config.uploadBuffer == 8 << 20)
        #expect(config.uploadConcurrency == 2 && config.backpressureTimeoutSeconds == 5)
        #expect(config.uploadSettleSeconds == 7 && config.readAhead == 0 && config.uploadDelayMilliseconds == 250)
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "u.yaml", contents: "cache:\n  upload_delay_ms: 600001\n")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "r.yaml", contents: "cache:\n  read_ahead: lots\n")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "s.yaml", contents: "cache:\n  upload_settle_seconds: -1\n")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "i.yaml", contents: "object_store:\n  url: ftp://x\n")
        }
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "j.yaml", contents: "cache:\n  upload_concurrency: 0\n")
        }
    }

    @Test func demoVolumeCanBeTurnedOff() throws {
        #expect(try GatewayConfig.load(path: "f.yaml", contents: "demo_volume: none\n").demoVolume == nil)
        let sized = try GatewayConfig.load(path: "g.yaml", contents: "demo_volume:\n  size: 64M\n")
        #expect(sized.demoVolume == GatewayConfig.DemoVolume(name: "demo", size: 64 << 20))
        #expect(GatewayConfig().demoTapes == GatewayConfig.DemoTapes())
        #expect(try GatewayConfig.load(path: "h.yaml", contents: "demo_tapes: none\n").demoTapes == nil)
        let tapes = try GatewayConfig.load(path: "i.yaml", contents: "demo_tapes:\n  count: 2\n  size: 16M\n").demoTapes
        #expect(tapes?.count == 2 && tapes?.size == 16 << 20)
        #expect(throws: GatewayError.self) {
            try GatewayConfig.load(path: "j.yaml", contents: "demo_tapes:\n  count: 0\n")
        }
    }

    @Test func poolsSayHowTheirExportedTapesAreKept() throws {
        let yaml = [
            "library:", "  pools:",
            "    monthly: {retention_days: 365, storage_class: GLACIER, object_lock: true, restore_days: 3}",
            "    vault: {worm: true, retrieval_time: \"a day\"}",
        ].joined(separator: "\n")
        let config = try GatewayConfig.load(path: "p.yaml", contents: yaml)
        #expect(config.library.pools["monthly"] == PoolPolicy(retentionDays: 365))
        #expect(config.library.pools["vault"] == PoolPolicy(worm: true))
        #expect(config.shelfPolicies["monthly"]?.storageClass == "GLACIER")
        #expect(config.shelfPolicies["monthly"]?.objectLock == true)
        #expect(config.shelfPolicies["monthly"]?.restoreDays == 3)
        #expect(config.shelfPolicies["vault"]?.retrievalTime == "a day")
        let now = Date(timeIntervalSince1970: 1000)
        #expect(PoolPolicy(retentionDays: 2).retainUntil(exportedAt: now) == Int64(1000 + 2 * 86400))
        #expect(PoolPolicy(worm: true).retainUntil(exportedAt: now) == .max)
        #expect(PoolPolicy().retainUntil(exportedAt: now) == nil)
        for bad in ["{object_lock: true}", "{storage_class: glacier}", "{retention_days: -1}", "{colour: blue}"] {
            #expect(throws: GatewayError.self, "\(bad)") {
                try GatewayConfig.load(path: "bad.yaml", contents: "library:\n  pools:\n    p: \(bad)\n")
            }
        }
    }

    @Test func listenAddressesParse() throws {
        var config = GatewayConfig()
        config.nbdListen = "[::1]:10810"
        #expect(try config.listenAddress()! == ("::1", 10810))
        config.nbdListen = ""
        #expect(try config.listenAddress() == nil)
        config.nbdListen = "localhost"
        #expect(throws: GatewayError.self) { try config.listenAddress() }
    }
}

@Suite struct ByteSizeTests {
    @Test func parsesBinaryUnits() throws {
        #expect(try ByteSize.parse("4096") == 4096)
        #expect(try ByteSize.parse("64K") == 65536)
        #expect(try ByteSize.parse("10G") == 10 << 30)
        #expect(try ByteSize.parse("1T") == 1 << 40)
        #expect(try ByteSize.parse("512MiB") == 512 << 20)
        #expect(try ByteSize.parse(" 2m ") == 2 << 20)
        for bad in ["", "G", "-1G", "1.5G", "10X", "0", "99999999999E"] {
            #expect(throws: GatewayError.self, "\(bad)") { try ByteSize.parse(bad) }
        }
    }

    @Test func formatsReadably() {
        #expect(ByteSize.format(512) == "512")
        #expect(ByteSize.format(1 << 30) == "1G")
        #expect(ByteSize.format(3 << 19) == "1.5M")
    }
}
