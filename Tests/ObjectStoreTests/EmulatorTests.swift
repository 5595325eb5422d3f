import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ObjectStore
import ObjectStoreEmulator
import Testing

/// The emulator's own duties: signature checks, fault injection switched while it runs.
@Suite struct EmulatorTests {
    private var logger: Logger {
        var logger = Logger(label: "emulator-test")
        logger.logLevel = .critical
        return logger
    }

    @Test func aWrongSecretIsRejectedAtOnceWithoutRetries() async throws {
        let fixture = try await StoreFixture(.emulator)
        let impostor = StoreFixture.s3(
            port: fixture.port, retry: RetryPolicy(attempts: 5, baseDelay: .seconds(10)), logger: logger,
            credentials: .init(accessKeyID: "testkey", secretAccessKey: "wrong"))
        await #expect {
            try await impostor.put(try ObjectKey("x"), data: ByteBuffer(string: "x"))
        } throws: { error in
            (error as? ObjectStoreError)?.kind == .rejected && "\(error)".contains("SignatureDoesNotMatch")
        }
        let stranger = StoreFixture.s3(
            port: fixture.port, retry: RetryPolicy(), logger: logger,
            credentials: .init(accessKeyID: "other", secretAccessKey: "test/secret+key"))
        await #expect(throws: ObjectStoreError.self) { try await stranger.head(try ObjectKey("x")) }
        #expect(try await fixture.store.head(try ObjectKey("x")) == nil)
        await impostor.shutdown()
        await stranger.shutdown()
        await fixture.close()
    }

    /// A signed header whose value holds a comma (s3backer's `Accept-Encoding: deflate,
    /// encrypt-AES-128-CBC` when it compresses and encrypts) is checked as it was signed: the
    /// value as sent, not split at the comma and joined again without the space.
    @Test func aSignedHeaderWithACommaInItsValueVerifies() async throws {
        let fixture = try await StoreFixture(.emulator)
        try await fixture.store.put(try ObjectKey("block"), data: ByteBuffer(string: "data"))
        let client = HTTPClient(host: "127.0.0.1", port: fixture.port, group: MultiThreadedEventLoopGroup.singleton)
        let signer = SigV4Signer(credentials: StoreFixture.credentials, region: "us-east-1")
        let path = "/test-bucket/block"
        let signed = signer.signedHeaders(
            method: "GET", host: "127.0.0.1:\(fixture.port)", encodedPath: path, query: [],
            headers: [(name: "accept-encoding", value: "deflate, encrypt-AES-128-CBC")],
            payloadHash: SigV4Signer.sha256Hex([UInt8]()), amzDate: SigV4Signer.amzDate(time(nil)))
        let response = try await client.execute(
            HTTPClient.Request(
                method: .GET, target: path, headers: HTTPHeaders(signed.map { ($0.name, $0.value) })),
            timeout: StoreFixture.requestTimeout)
        #expect(response.status == .ok, "\(response.status) \(String(buffer: response.body))")
        #expect(String(buffer: response.body) == "data")
        await client.shutdown()
        await fixture.close()
    }

    /// Signed requests whose key would leave the bucket (a ".." segment, an absolute path, a NUL)
    /// or whose bucket is not a bucket name get 400, and nothing is written outside the bucket.
    @Test func keysThatWouldEscapeTheBucketAreRefused() async throws {
        let fixture = try await StoreFixture(.emulator)
        let client = HTTPClient(host: "127.0.0.1", port: fixture.port, group: MultiThreadedEventLoopGroup.singleton)
        let signer = SigV4Signer(credentials: StoreFixture.credentials, region: "us-east-1")
        let body = ByteBuffer(string: "escaped")
        let payloadHash = SigV4Signer.sha256Hex(body)
        for path in [
            "/test-bucket/..%2F..%2Fescaped", "/test-bucket/a/..%2F..%2F..%2Fescaped", "/test-bucket/%2Fabsolute",
            "/test-bucket/nul%00byte", "/..%2Fescaped/key",
        ] {
            let signed = signer.signedHeaders(
                method: "PUT", host: "127.0.0.1:\(fixture.port)", encodedPath: path, query: [],
                payloadHash: payloadHash, amzDate: SigV4Signer.amzDate(time(nil)))
            let headers = HTTPHeaders(signed.map { ($0.name, $0.value) })
            let response = try await client.execute(
                HTTPClient.Request(method: .PUT, target: path, headers: headers, body: [body]),
                timeout: StoreFixture.requestTimeout)
            #expect(response.status == .badRequest, "\(path): \(response.status) \(String(buffer: response.body))")
        }
        let parent = URL(fileURLWithPath: fixture.directory).deletingLastPathComponent().path
        for place in [fixture.directory, parent] {
            let names = try FileManager.default.contentsOfDirectory(atPath: place)
            #expect(!names.contains("escaped") && !names.contains("absolute"), "written outside the bucket: \(place)")
        }
        await client.shutdown()
        await fixture.close()
    }

    /// An object PUT with an unsigned payload is kept only when its x-amz-checksum-crc32c matches
    /// the body: a body changed on the way gets 400 BadDigest and nothing is stored. The header's
    /// value is the CRC32C check value of "123456789" (0xE3069283) in base64.
    @Test func anUnsignedPayloadIsKeptOnlyWhenItsChecksumMatches() async throws {
        #expect(PayloadChecksum.crc32cBase64([ByteBuffer(string: "123456789")]) == "4waSgw==")
        let fixture = try await StoreFixture(.emulator)
        let client = HTTPClient(host: "127.0.0.1", port: fixture.port, group: MultiThreadedEventLoopGroup.singleton)
        let signer = SigV4Signer(credentials: StoreFixture.credentials, region: "us-east-1")
        let sent = ByteBuffer(string: "the bytes the client checksummed")
        let put = { (path: String, body: ByteBuffer) in
            let signed = signer.signedHeaders(
                method: "PUT", host: "127.0.0.1:\(fixture.port)", encodedPath: path, query: [],
                headers: [(name: PayloadChecksum.header, value: PayloadChecksum.crc32cBase64([sent]))],
                payloadHash: PayloadChecksum.unsignedPayload, amzDate: SigV4Signer.amzDate(time(nil)))
            return try await client.execute(
                HTTPClient.Request(
                    method: .PUT, target: path, headers: HTTPHeaders(signed.map { ($0.name, $0.value) }), body: [body]),
                timeout: StoreFixture.requestTimeout)
        }
        let damaged = try await put("/test-bucket/damaged", ByteBuffer(string: "the bytes the client checksummeD"))
        #expect(damaged.status == .badRequest)
        #expect(String(buffer: damaged.body).contains("BadDigest"))
        #expect(try await fixture.store.head(try ObjectKey("damaged")) == nil)
        let intact = try await put("/test-bucket/intact", sent)
        #expect(intact.status == .ok, "\(intact.status) \(String(buffer: intact.body))")
        #expect(try await fixture.store.get(try ObjectKey("intact"), range: nil) == sent)
        await client.shutdown()
        await fixture.close()
    }

    @Test func injectedErrorsAreRetriedAway() async throws {
        let fixture = try await StoreFixture(
            .emulator, retry: RetryPolicy(attempts: 30, baseDelay: .milliseconds(1), maximumDelay: .milliseconds(5)))
        fixture.emulator!.faults.settings = FaultPlan.Settings(latency: .milliseconds(2), errorRate: 0.5)
        for index in 0..<40 {
            try await fixture.store.put(try ObjectKey("k/\(index)"), data: ByteBuffer(string: "\(index)"))
        }
        fixture.emulator!.faults.settings = FaultPlan.Settings()
        #expect(try await fixture.store.list(prefix: "k/").count == 40)
        await fixture.close()
    }

    /// Switches the fixture emulator's faults over its control endpoint.
    private func faults(_ fixture: StoreFixture, _ settings: [(String, String)]) async throws -> String {
        try await EmulatorControl.faults(
            host: "127.0.0.1", port: fixture.port, settings: settings, group: MultiThreadedEventLoopGroup.singleton)
    }

    @Test func anOutageFailsRequestsUntilItIsSwitchedOffOverHTTP() async throws {
        let fixture = try await StoreFixture(
            .emulator, retry: RetryPolicy(attempts: 3, baseDelay: .milliseconds(1), maximumDelay: .milliseconds(2)))
        #expect(try await faults(fixture, [("outage", "on")]).contains("outage=on"))
        await #expect {
            try await fixture.store.put(try ObjectKey("during"), data: ByteBuffer(string: "x"))
        } throws: { error in
            (error as? ObjectStoreError)?.kind == .unavailable
        }
        #expect(try await faults(fixture, [("outage", "off"), ("error_rate", "0")]).contains("outage=off"))
        try await fixture.store.put(try ObjectKey("after"), data: ByteBuffer(string: "x"))
        await #expect(throws: ObjectStoreError.self) { try await faults(fixture, [("error_rate", "2")]) }
        await fixture.close()
    }

    /// A rule fails exactly the requests it names, N times, and nothing else.
    @Test func aRuleFailsTheNamedRequestsOnly() async throws {
        let fixture = try await StoreFixture(
            .emulator, retry: RetryPolicy(attempts: 1, baseDelay: .milliseconds(1), maximumDelay: .milliseconds(1)))
        try await fixture.store.put(try ObjectKey("a/one"), data: ByteBuffer(string: "1"))
        try await fixture.store.put(try ObjectKey("b/two"), data: ByteBuffer(string: "2"))
        #expect(
            try await faults(fixture, [("fail", "list"), ("prefix", "a/"), ("count", "2")]).contains("rules=LIST:a/:2"))
        #expect(try await faults(fixture, [("fail", "PUT"), ("prefix", "b/")]).contains("LIST:a/:2,PUT:b/:1"))
        for _ in 0..<2 {
            await #expect(throws: ObjectStoreError.self) { try await fixture.store.list(prefix: "a/") }
            #expect(try await fixture.store.list(prefix: "b/").count == 1)
        }
        #expect(try await fixture.store.list(prefix: "a/").count == 1)
        try await fixture.store.put(try ObjectKey("a/three"), data: ByteBuffer(string: "3"))
        await #expect(throws: ObjectStoreError.self) {
            try await fixture.store.put(try ObjectKey("b/four"), data: ByteBuffer(string: "4"))
        }
        #expect(try await fixture.store.head(try ObjectKey("b/four")) == nil)
        try await fixture.store.put(try ObjectKey("b/four"), data: ByteBuffer(string: "4"))
        #expect(try await faults(fixture, [("fail", "PUT"), ("count", "3")]).contains("PUT::3"))
        #expect(try await faults(fixture, [("clear_rules", "1")]).contains("rules=none"))
        await #expect(throws: ObjectStoreError.self) { try await faults(fixture, [("fail", "COPY")]) }
        await #expect(throws: ObjectStoreError.self) { try await faults(fixture, [("prefix", "x")]) }
        await fixture.close()
    }
}
