import ArgumentParser
import Foundation
import Gateway
import Logging
import NIOCore
import NIOPosix
import ObjectStore
import ObjectStoreEmulator

/// `blockgate objstore …`: the S3 emulator, for tests and for setups without an S3 service, and a
/// measurement of any object store from this machine.
struct ObjectStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "objstore",
        abstract: "Run the S3 emulator, switch its injected faults, or measure an object store.",
        subcommands: [Serve.self, Faults.self, Bench.self])

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the S3 subset the gateway uses, checking SigV4 signatures.",
            discussion: """
                Objects live in DIR, one folder per bucket. Credentials come from the flags, else from
                AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Example:
                  blockgate objstore serve --dir ./var/objects --listen 127.0.0.1:9000 --error-rate 0.1
                """)
        @Option(help: "Directory for the buckets.") var dir: String
        @Option(help: "Address to listen on, HOST:PORT (loopback).") var listen = "127.0.0.1:9000"
        @Option(help: "Access key id clients sign with.") var accessKey: String?
        @Option(help: "Secret access key clients sign with.") var secretKey: String?
        @Option(help: "Added latency per request, in milliseconds.") var latencyMs: Int64 = 0
        @Option(help: "Share of requests failing with 503 SlowDown or 500 InternalError (0 to 1).")
        var errorRate: Double = 0
        @Flag(help: "Start in an outage: every request fails with 503.") var outage = false

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            guard let accessKey = accessKey ?? environment["AWS_ACCESS_KEY_ID"],
                let secretKey = secretKey ?? environment["AWS_SECRET_ACCESS_KEY"]
            else {
                throw ValidationError(
                    "give --access-key and --secret-key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            }
            guard (0...1).contains(errorRate), latencyMs >= 0 else {
                throw ValidationError("--error-rate must be between 0 and 1 and --latency-ms at least 0")
            }
            var config = GatewayConfig()
            config.nbdListen = listen
            guard let (host, port) = try config.listenAddress() else { throw ValidationError("--listen is empty") }
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            let logger = Logger(label: "blockgate-objstore")
            let pool = NIOThreadPool(numberOfThreads: 16)
            pool.start()
            let emulator = S3Emulator(
                directory: dir, credentials: .init(accessKeyID: accessKey, secretAccessKey: secretKey),
                faults: FaultPlan(.init(latency: .milliseconds(latencyMs), errorRate: errorRate, outage: outage)),
                group: MultiThreadedEventLoopGroup.singleton, pool: pool, logger: logger)
            let channel = try await emulator.listen(host: host, port: port)
            logger.notice(
                "S3 emulator on http://\(host):\(channel.localAddress?.port ?? port), objects in \(dir), faults: \(emulator.faults.settings.summary)"
            )
            let systemd = SystemdNotifier()
            systemd?.notify("READY=1\nSTATUS=S3 emulator on \(host):\(channel.localAddress?.port ?? port)")
            let signal = await TerminationSignal.wait()
            logger.notice("received signal \(signal)")
            systemd?.notify("STOPPING=1")
            try await channel.close()
            try await pool.shutdownGracefully()
        }
    }

    struct Faults: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch a running emulator's faults (without options: show them).",
            discussion: """
                Examples: blockgate objstore faults --endpoint http://127.0.0.1:9000 --outage on
                blockgate objstore faults --endpoint http://127.0.0.1:9000 --fail LIST --prefix volumes/ --count 3
                """)
        @Option(help: "The emulator, http://HOST:PORT.") var endpoint: String
        @Option(help: "Added latency per request, in milliseconds.") var latencyMs: Int64?
        @Option(help: "Share of requests failing (0 to 1).") var errorRate: Double?
        @Option(help: "on or off.") var outage: String?
        @Option(help: "Fail the next --count requests of this operation: GET, PUT, DELETE, HEAD or LIST.")
        var fail: String?
        @Option(help: "With --fail: only keys (for LIST, listing prefixes) starting with this.") var prefix: String?
        @Option(help: "With --fail: how many requests fail (default 1).") var count: Int?
        @Flag(help: "Remove every --fail rule.") var clearRules = false

        func run() async throws {
            guard let url = URL(string: endpoint), url.scheme == "http", let host = url.host, let port = url.port else {
                throw ValidationError("--endpoint must look like http://127.0.0.1:9000")
            }
            var settings: [(String, String)] = []
            if let latencyMs { settings.append(("latency_ms", "\(latencyMs)")) }
            if let errorRate { settings.append(("error_rate", "\(errorRate)")) }
            if let outage { settings.append(("outage", outage)) }
            if clearRules { settings.append(("clear_rules", "1")) }
            if let fail { settings.append(("fail", fail)) }
            if let prefix { settings.append(("prefix", prefix)) }
            if let count { settings.append(("count", "\(count)")) }
            do {
                print(
                    try await EmulatorControl.faults(
                        host: host, port: port, settings: settings, group: MultiThreadedEventLoopGroup.singleton))
            } catch let error as ObjectStoreError {
                throw GatewayError(.invalid, error.message)
            } catch {
                throw AdminClient.Unreachable(description: "no emulator at \(endpoint): \(error)")
            }
        }
    }

    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure the PUT, GET and DELETE throughput of an object store from this machine.",
            discussion: """
                Stores --objects objects of --size bytes under --prefix, --concurrency requests at a time, reads
                them back (checking each) and deletes them, printing the MiB/s of the PUTs and GETs (the
                ceiling a cached volume's uploads and cold reads can reach here) and the DELETEs per second.
                --put, --get and --delete run only those steps (to read objects an earlier run stored); a run
                that fails leaves what it stored. Each result is one line, "STEP N objects of SIZE, C at once:
                R MiB/s in S s, P s of processor" (DELETE: "R per second"; P: this client's own processor
                time in the step, which its share of the machine is). Example:
                  AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SK blockgate objstore bench \\
                    --object-store 's3://bucket?endpoint=http://127.0.0.1:9000' --objects 256
                """)
        @Option(help: "The store: s3://BUCKET?endpoint=http://HOST:PORT, or file:///PATH.") var objectStore: String
        @Option(help: "Access key id (else AWS_ACCESS_KEY_ID).") var accessKey: String?
        @Option(help: "Secret access key (else AWS_SECRET_ACCESS_KEY).") var secretKey: String?
        @Option(help: "Key prefix of the objects (they are named PREFIX/0, PREFIX/1, ...).")
        var prefix = "blockgate-bench"
        @Option(help: "How many objects.") var objects = 256
        @Option(help: "Size of each object (e.g. 1M).") var size = "1M"
        @Option(help: "Requests in flight at once.") var concurrency = 16
        @Flag(help: "Run the PUT step.") var put = false
        @Flag(help: "Run the GET step.") var get = false
        @Flag(help: "Run the DELETE step.") var delete = false

        /// The most bytes the requests in flight may hold (`--concurrency` × `--size`).
        static let inFlightLimit: UInt64 = 4 << 30

        func run() async throws {
            let bytes = try ByteSize.parse(size)
            guard (1...1_000_000).contains(objects), (1...1024).contains(concurrency), (8...(1 << 30)).contains(bytes)
            else {
                throw ValidationError(
                    "--objects must be 1 to 1000000, --concurrency 1 to 1024 and --size 8 bytes to 1G")
            }
            guard UInt64(concurrency) * bytes <= Self.inFlightLimit else {
                throw ValidationError("--concurrency times --size must be at most 4G (the memory the requests hold)")
            }
            let location = try ObjectStoreLocation.parse(objectStore)
            var config = GatewayConfig()
            let environment = ProcessInfo.processInfo.environment
            config.accessKey = accessKey ?? environment["AWS_ACCESS_KEY_ID"]
            config.secretKey = secretKey ?? environment["AWS_SECRET_ACCESS_KEY"]
            if case .s3 = location, config.accessKey == nil || config.secretKey == nil {
                throw ValidationError(
                    "give --access-key and --secret-key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            }
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            let pool = NIOThreadPool(numberOfThreads: 4)
            let store = try makeObjectStore(
                location, config: config, group: MultiThreadedEventLoopGroup.singleton, pool: pool,
                logger: Logger(label: "blockgate-bench"))
            guard
                let bench = try? StoreThroughput(
                    store: store, prefix: prefix, objects: objects, size: Int(bytes), concurrency: concurrency)
            else {
                throw ValidationError("--prefix must be a key like blockgate-bench (printable ASCII, no empty segment)")
            }
            pool.start()
            var failure: (any Error)?
            do {
                try await measure(bench, bytes: bytes)
            } catch let error as ObjectStoreError {
                failure = GatewayError(.failed, "\(objectStore): \(error.message)")
            } catch {
                failure = error
            }
            if let s3 = store as? S3ObjectStore { await s3.shutdown() }
            try? await pool.shutdownGracefully()
            if let failure { throw failure }
        }

        /// Runs the steps asked for (all three when none is).
        private func measure(_ bench: StoreThroughput, bytes: UInt64) async throws {
            let all = !put && !get && !delete
            try await bench.store.prepare()
            if all || put {
                let before = Self.processorSeconds()
                report("PUT", try await bench.put(), bytes: bytes, processor: Self.processorSeconds() - before)
            }
            if all || get {
                let before = Self.processorSeconds()
                report("GET", try await bench.get(), bytes: bytes, processor: Self.processorSeconds() - before)
            }
            if all || delete {
                let seconds = Self.seconds(try await bench.delete())
                let rate = String(format: "%.0f", Double(objects) / seconds)
                print(
                    "DELETE \(objects) objects, \(concurrency) at once: \(rate) per second in \(Self.format(seconds)) s"
                )
            }
        }

        /// Prints a step's rate: "PUT 256 objects of 1M, 16 at once: 812.3 MiB/s in 0.32 s, 0.21 s of
        /// processor".
        private func report(_ step: String, _ duration: Duration, bytes: UInt64, processor: Double) {
            let seconds = Self.seconds(duration)
            let rate = String(format: "%.1f", Double(objects) * Double(bytes) / 1_048_576 / seconds)
            let what = "\(objects) objects of \(size), \(concurrency) at once"
            print(
                "\(step) \(what): \(rate) MiB/s in \(Self.format(seconds)) s, \(Self.format(processor)) s of processor")
        }

        /// The processor time this process has taken so far (user and system, every thread).
        private static func processorSeconds() -> Double {
            var usage = rusage()
            getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
            let time = { (value: timeval) in Double(value.tv_sec) + Double(value.tv_usec) / 1e6 }
            return time(usage.ru_utime) + time(usage.ru_stime)
        }

        private static func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }

        private static func format(_ seconds: Double) -> String { String(format: "%.2f", seconds) }
    }
}
