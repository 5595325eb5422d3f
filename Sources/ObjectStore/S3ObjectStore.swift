import Crypto
import Foundation
import Glibc
import Logging
import Metrics
import NIOCore
import NIOHTTP1

/// An S3-compatible object store over HTTP/1.1 with path-style addressing
/// (`/bucket/key`) and AWS Signature Version 4. Server errors, throttling and timeouts are
/// retried with exponential backoff and jitter; other 4xx answers are not.
public final class S3ObjectStore: ObjectStore, ObjectArchiving {
    /// Where and how to reach the service.
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var bucket: String
        public var region: String
        public var credentials: SigV4Signer.Credentials
        public var timeout: TimeAmount
        public var retry: RetryPolicy
        /// A bucket this store creates gets Object Lock (which S3 allows only at creation).
        public var objectLock: Bool

        public init(
            host: String, port: Int, bucket: String, region: String = "us-east-1",
            credentials: SigV4Signer.Credentials, timeout: TimeAmount = .seconds(30),
            retry: RetryPolicy = RetryPolicy(),
            objectLock: Bool = false
        ) {
            self.host = host
            self.port = port
            self.bucket = bucket
            self.region = region
            self.credentials = credentials
            self.timeout = timeout
            self.retry = retry
            self.objectLock = objectLock
        }
    }

    private let configuration: Configuration
    private let signer: SigV4Signer
    private let client: HTTPClient
    private let logger: Logger

    public init(configuration: Configuration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region)
        self.client = HTTPClient(host: configuration.host, port: configuration.port, group: group)
        self.logger = logger
    }

    /// Closes idle connections.
    public func shutdown() async {
        await client.shutdown()
    }

    public func prepare() async throws {
        let probe = try await send(.HEAD, key: nil, accept: [.ok, .notFound])
        if probe.status == .notFound {
            let headers = configuration.objectLock ? [("x-amz-bucket-object-lock-enabled", "true")] : []
            _ = try await send(.PUT, key: nil, headers: headers, accept: [.ok, .conflict])
            logger.notice(
                "created bucket \(configuration.bucket)\(configuration.objectLock ? " with Object Lock" : "")")
        }
    }

    public func put(_ key: ObjectKey, data: ByteBuffer) async throws {
        try await put(key, pieces: [data], crc32c: nil)
    }

    public func put(_ key: ObjectKey, pieces: [ByteBuffer], crc32c: UInt32?) async throws {
        _ = try await send(
            .PUT, key: key, body: pieces, checksum: crc32c ?? PayloadChecksum.crc32c(pieces), accept: [.ok])
    }

    public func get(_ key: ObjectKey, range: Range<UInt64>?) async throws -> ByteBuffer {
        try await getResponse(key, range: range)?.body ?? ByteBuffer()
    }

    public func getPieces(_ key: ObjectKey, range: Range<UInt64>?) async throws -> [ByteBuffer] {
        try await getResponse(key, range: range)?.bodyPieces ?? []
    }

    /// The answer to a GET of `key` (or of bytes `range` of it), or nil for an empty range.
    private func getResponse(_ key: ObjectKey, range: Range<UInt64>?) async throws -> HTTPClient.Response? {
        var headers: [(String, String)] = []
        if let range {
            guard !range.isEmpty else { return nil }
            headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        let response = try await send(.GET, key: key, headers: headers, accept: [.ok, .partialContent, .notFound])
        if response.status == .notFound { throw ObjectStoreError(.notFound, "no object \(key)") }
        return response
    }

    public func head(_ key: ObjectKey) async throws -> ObjectInfo? {
        let response = try await send(.HEAD, key: key, accept: [.ok, .notFound])
        guard response.status == .ok else { return nil }
        guard let length = response.headers.first(name: "Content-Length").flatMap(UInt64.init) else {
            throw ObjectStoreError(.invalidResponse, "HEAD \(key) answered without a Content-Length")
        }
        return ObjectInfo(key: key.rawValue, size: length)
    }

    public func delete(_ key: ObjectKey) async throws {
        _ = try await send(.DELETE, key: key, accept: [.noContent, .ok, .notFound])
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        var objects: [ObjectInfo] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let response = try await send(.GET, key: nil, query: query, accept: [.ok])
            let page = try ListBucketResult(xml: String(buffer: response.body))
            objects += page.objects
            token = page.isTruncated ? page.nextContinuationToken : nil
        } while token != nil
        return objects
    }

    // MARK: - Archiving

    /// A new storage class is a copy of the object onto itself (CopyObject) carrying the class
    /// and the lock; a lock alone is a PutObjectRetention.
    public func archive(_ key: ObjectKey, storageClass: String?, retainUntil: Date?) async throws {
        let lock =
            retainUntil.map {
                [("x-amz-object-lock-mode", "COMPLIANCE"), ("x-amz-object-lock-retain-until-date", Self.isoDate($0))]
            } ?? []
        if let storageClass {
            let source =
                "/" + SigV4Signer.uriEncode(configuration.bucket) + "/"
                + SigV4Signer.uriEncode(key.rawValue, keepSlash: true)
            let response = try await send(
                .PUT, key: key,
                headers: [
                    ("x-amz-copy-source", source), ("x-amz-metadata-directive", "COPY"),
                    ("x-amz-storage-class", storageClass), ("Content-MD5", Self.md5Base64(ByteBuffer())),
                ] + lock, accept: [.ok])
            // A copy can fail after its 200 began: the error is then in the body.
            if let error = S3ErrorBody(xml: String(buffer: response.body)) {
                throw ObjectStoreError(
                    .rejected, "copy of \(key) to \(storageClass): \(error.code) \(error.message ?? "")")
            }
        } else if let retainUntil {
            let body = ByteBuffer(
                string: "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode>"
                    + "<RetainUntilDate>\(Self.isoDate(retainUntil))</RetainUntilDate></Retention>")
            _ = try await send(
                .PUT, key: key, query: [("retention", "")], headers: [("Content-MD5", Self.md5Base64(body))],
                body: [body],
                accept: [.ok])
        }
    }

    public func restore(_ key: ObjectKey, days: Int) async throws -> RestoreState {
        let body = ByteBuffer(
            string: "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Days>\(days)</Days>"
                + "<GlacierJobParameters><Tier>Standard</Tier></GlacierJobParameters></RestoreRequest>")
        let response = try await send(
            .POST, key: key, query: [("restore", "")], headers: [("Content-MD5", Self.md5Base64(body))], body: [body],
            accept: [.ok, .accepted, .conflict])
        // 200: already restored; 202: started; 409: a restore is already under way.
        return response.status == .ok ? .readable : .inProgress
    }

    /// A date as S3's lock headers and documents take it: ISO 8601 in UTC.
    static func isoDate(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }

    private static func md5Base64(_ body: ByteBuffer) -> String {
        Data(Insecure.MD5.hash(data: Array(body.readableBytesView))).base64EncodedString()
    }

    // MARK: - Requests

    /// Records how long one request took, by method and outcome (ok, error, unreachable).
    private static func recordLatency(_ method: HTTPMethod, outcome: String, since started: ContinuousClock.Instant) {
        Timer(
            label: "blockgate_objectstore_request_duration_seconds",
            dimensions: [("method", method.rawValue), ("outcome", outcome)]
        ).record(duration: ContinuousClock.now - started)
    }

    /// Signs and sends a request, retrying transient failures.
    /// - Parameters:
    ///   - checksum: the body's CRC32C when it is vouched for by that rather than by the
    ///     signature (`PayloadChecksum`): object data, where hashing costs.
    ///   - accept: statuses that count as an answer; anything else is an error.
    private func send(
        _ method: HTTPMethod, key: ObjectKey?, query: [(String, String)] = [], headers: [(String, String)] = [],
        body: [ByteBuffer] = [], checksum: UInt32? = nil, accept: Set<HTTPResponseStatus>
    ) async throws -> HTTPClient.Response {
        var headers = headers
        let payloadHash: String
        if let checksum {
            payloadHash = PayloadChecksum.unsignedPayload
            headers.append((PayloadChecksum.header, PayloadChecksum.base64(checksum)))
        } else {
            payloadHash = SigV4Signer.sha256Hex(pieces: body)
        }
        var path = "/" + SigV4Signer.uriEncode(configuration.bucket)
        if let key { path += "/" + SigV4Signer.uriEncode(key.rawValue, keepSlash: true) }
        let target =
            query.isEmpty
            ? path
            : path + "?"
                + query.map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&")
        let description = "\(method) \(target)"
        var attempt = 0
        while true {
            attempt += 1
            let signed = signer.signedHeaders(
                method: method.rawValue, host: "\(configuration.host):\(configuration.port)", encodedPath: path,
                query: query.map { (name: $0.0, value: $0.1) }, headers: headers.map { (name: $0.0, value: $0.1) },
                payloadHash: payloadHash, amzDate: SigV4Signer.amzDate(time(nil)))
            let httpHeaders = HTTPHeaders(signed.map { ($0.name, $0.value) })
            let failure: ObjectStoreError
            let started = ContinuousClock.now
            do {
                let response = try await client.execute(
                    HTTPClient.Request(method: method, target: target, headers: httpHeaders, body: body),
                    timeout: configuration.timeout)
                Self.recordLatency(method, outcome: accept.contains(response.status) ? "ok" : "error", since: started)
                if accept.contains(response.status) { return response }
                let detail = S3ErrorBody(xml: String(buffer: response.body))
                let message =
                    "\(description): \(response.status.code) \(detail?.code ?? response.status.reasonPhrase)"
                    + (detail?.message.map { ": \($0)" } ?? "")
                guard RetryPolicy.isTransient(response.status) else { throw ObjectStoreError(.rejected, message) }
                failure = ObjectStoreError(.unavailable, message)
            } catch let transport as HTTPClient.TransportError {
                Self.recordLatency(method, outcome: "unreachable", since: started)
                failure = ObjectStoreError(.unavailable, "\(description): \(transport)")
            }
            guard let delay = configuration.retry.delay(afterAttempt: attempt) else { throw failure }
            logger.debug("retrying after \(delay): \(failure)")
            try await Task.sleep(nanoseconds: UInt64(delay.nanoseconds))
        }
    }
}

/// How often and how patiently transient failures are retried: exponential backoff, each delay
/// drawn between half and all of its exponential value, capped.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public var attempts: Int
    /// The delay before the second attempt, before jitter.
    public var baseDelay: TimeAmount
    /// The largest delay.
    public var maximumDelay: TimeAmount

    public init(attempts: Int = 6, baseDelay: TimeAmount = .milliseconds(100), maximumDelay: TimeAmount = .seconds(5)) {
        self.attempts = attempts
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
    }

    /// The delay before the next attempt, or nil when `attempt` was the last.
    public func delay(afterAttempt attempt: Int) -> TimeAmount? {
        guard attempt < attempts else { return nil }
        let exponential = baseDelay.nanoseconds << Int64(min(attempt - 1, 30))
        let capped = min(exponential, maximumDelay.nanoseconds)
        return .nanoseconds(Int64.random(in: (capped / 2)...capped))
    }

    /// Server errors, throttling and request timeouts are worth retrying; other answers are final.
    static func isTransient(_ status: HTTPResponseStatus) -> Bool {
        status.code >= 500 || status == .tooManyRequests || status == .requestTimeout
    }
}
