import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ObjectStore

/// An S3 emulator for tests and for `make run` setups: the subset the gateway uses (bucket
/// create/head, PUT, GET with Range, HEAD, DELETE, ListObjectsV2; for the tape shelf,
/// CopyObject with a storage class, Object Lock in compliance mode, restores of cold classes)
/// over HTTP/1.1, path-style,
/// with every request's SigV4 signature checked, objects kept in a directory per bucket, and
/// faults injected on demand (see `FaultPlan`; `POST /_emulator/faults?...` switches them).
public final class S3Emulator: Sendable {
    public let faults: FaultPlan
    private let directory: String
    private let credentials: SigV4Signer.Credentials
    private let group: any EventLoopGroup
    private let pool: NIOThreadPool
    private let logger: Logger
    private let stores = NIOLockedValueBox([String: FileObjectStore]())
    private let attributes: ObjectAttributes
    private let sent = NIOLockedValueBox(UInt64(0))
    static let maximumBody = 128 << 20

    /// Bytes of object data sent in answer to GETs since the emulator started: what a client's
    /// reads cost in transfer.
    public var objectBytesSent: UInt64 { sent.withLockedValue { $0 } }

    public init(
        directory: String, credentials: SigV4Signer.Credentials, faults: FaultPlan = FaultPlan(),
        group: any EventLoopGroup, pool: NIOThreadPool, logger: Logger
    ) {
        self.directory = directory
        self.credentials = credentials
        self.faults = faults
        self.group = group
        self.pool = pool
        self.logger = logger
        self.attributes = ObjectAttributes(directory: directory)
    }

    /// Starts serving on `host:port` (port 0 picks a free one; see the channel's local address).
    public func listen(host: String, port: Int) async throws -> any Channel {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Bodies are objects of a MiB or more: read them in large pieces, not 64 KiB ones.
            .childChannelOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 65536, maximum: 1 << 20)
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EmulatorHTTPHandler(emulator: self))
                }
            }
            .bind(host: host, port: port).get()
    }

    // MARK: - Requests

    /// A whole request as received: its body in the pieces it arrived in, never joined (an
    /// object's bytes go to its file as they are).
    struct Request: Sendable {
        var head: HTTPRequestHead
        var body: [ByteBuffer]

        /// The body as text (an XML document).
        var text: String { body.reduce(into: "") { $0 += String(buffer: $1) } }
    }

    /// A whole response to send: its body in memory, or a range of an object's file, sent
    /// without copying (sendfile) and closed once sent.
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders = HTTPHeaders()
        var body = ByteBuffer()
        var file: (handle: NIOFileHandle, range: Range<UInt64>)? = nil

        static func error(_ status: HTTPResponseStatus, _ code: String, _ message: String) -> Response {
            var response = Response(status: status)
            response.headers.add(name: "Content-Type", value: "application/xml")
            response.body = ByteBuffer(string: S3ErrorBody(code: code, message: message).xml)
            return response
        }
    }

    /// Answers one request.
    func handle(_ request: Request) async -> Response {
        let (path, query) = Self.split(request.head.uri)
        if path == "/_emulator/faults" { return control(request.head.method, query) }
        let segments = path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true)
        let (operation, target) = Self.operation(request.head.method, segments: segments, query: query)
        switch faults.verdict(operation, key: target) {
        case .fail(let status, let code):
            return .error(HTTPResponseStatus(statusCode: status), code, "injected fault")
        case .serve:
            break
        }
        let latency = faults.settings.latency
        if latency > .zero { try? await Task.sleep(nanoseconds: UInt64(latency.nanoseconds)) }
        if let refusal = authenticate(request, path: path, query: query) { return refusal }
        guard let bucket = segments.first.map(String.init), Self.isValidBucketName(bucket) else {
            return .error(.badRequest, "InvalidBucketName", "path-style requests name a bucket first")
        }
        do {
            if segments.count == 1 {
                return try await handleBucket(request, bucket: bucket, query: query)
            }
            guard let decoded = String(segments[1]).removingPercentEncoding else {
                return .error(.badRequest, "InvalidURI", "the key is not valid percent-encoding")
            }
            let key = try ObjectKey(decoded)
            return try await handleObject(request, bucket: bucket, key: key, query: query)
        } catch let error as ObjectStoreError where error.kind == .rejected {
            return .error(.badRequest, "InvalidArgument", error.message)
        } catch {
            logger.error("emulator request failed: \(error)")
            return .error(.internalServerError, "InternalError", "\(error)")
        }
    }

    /// What a request does, for fault rules: its operation and its key (or listing prefix).
    private static func operation(_ method: HTTPMethod, segments: [Substring], query: [(String, String)])
        -> (FaultPlan.Rule.Operation, String)
    {
        guard segments.count == 2 else {
            return (method == .GET ? .list : .head, query.first { $0.0 == "prefix" }?.1 ?? "")
        }
        let key = String(segments[1]).removingPercentEncoding ?? String(segments[1])
        switch method {
        case .PUT, .POST: return (.put, key)
        case .DELETE: return (.delete, key)
        case .HEAD: return (.head, key)
        default: return (.get, key)
        }
    }

    private func handleBucket(_ request: Request, bucket: String, query: [(String, String)]) async throws
        -> Response
    {
        let method = request.head.method
        let bucketDirectory = "\(directory)/\(bucket)"
        let exists = FileManager.default.fileExists(atPath: bucketDirectory)
        switch method {
        case .PUT:
            try await store(bucket).prepare()
            if request.head.headers.first(name: "x-amz-bucket-object-lock-enabled")?.lowercased() == "true" {
                attributes.enableObjectLock(bucket)
            }
            return Response(status: .ok)
        case .HEAD:
            return Response(status: exists ? .ok : .notFound)
        case .GET where query.contains(where: { $0 == ("list-type", "2") }):
            guard exists else { return .error(.notFound, "NoSuchBucket", "no bucket \(bucket)") }
            let prefix = query.first { $0.0 == "prefix" }?.1 ?? ""
            let after = query.first { $0.0 == "continuation-token" }?.1
            let limit = query.first { $0.0 == "max-keys" }.flatMap { Int($0.1) } ?? 1000
            let all = try await store(bucket).list(prefix: prefix).filter { after == nil || $0.key > after! }
            let page = Array(all.prefix(max(1, limit)))
            let result = ListBucketResult(
                objects: page, isTruncated: all.count > page.count,
                nextContinuationToken: all.count > page.count ? page.last?.key : nil)
            var response = Response(status: .ok, body: ByteBuffer(string: result.xml(bucket: bucket, prefix: prefix)))
            response.headers.add(name: "Content-Type", value: "application/xml")
            return response
        default:
            return .error(.methodNotAllowed, "MethodNotAllowed", "\(method) on a bucket is not supported")
        }
    }

    private func handleObject(_ request: Request, bucket: String, key: ObjectKey, query: [(String, String)])
        async throws -> Response
    {
        guard FileManager.default.fileExists(atPath: "\(directory)/\(bucket)") else {
            return .error(.notFound, "NoSuchBucket", "no bucket \(bucket)")
        }
        let store = try await store(bucket)
        let current = attributes.attributes(bucket, key.rawValue)
        let now = Date()
        switch request.head.method {
        case .PUT where query.contains { $0.0 == "retention" }:
            return try await putRetention(request, bucket: bucket, key: key, current: current)
        case .PUT:
            var next = ObjectAttributes.Attributes(
                storageClass: request.head.headers.first(name: "x-amz-storage-class").flatMap {
                    $0 == "STANDARD" ? nil : $0
                })
            switch lockRequested(request.head.headers, bucket: bucket) {
            case .failure(let refusal): return refusal.response
            case .success(let until): next.retainUntil = until
            }
            if let source = request.head.headers.first(name: "x-amz-copy-source") {
                return try await copy(
                    from: source, to: key, in: bucket, attributes: next, current: current, store: store)
            }
            if current.locked(at: now) { return Self.locked(key) }
            try await store.put(key, pieces: request.body, crc32c: nil)
            attributes.set(bucket, key.rawValue, next)
            return Response(status: .ok)
        case .POST where query.contains { $0.0 == "restore" }:
            guard try await store.head(key) != nil else { return .error(.notFound, "NoSuchKey", "no key \(key)") }
            guard let storageClass = current.storageClass, ColdStorageClass.needsRestore(storageClass) else {
                return .error(
                    .forbidden, "InvalidObjectState", "restore is not allowed for the object's current storage class")
            }
            if current.restored { return Response(status: .ok) }
            var restored = current
            restored.restored = true
            attributes.set(bucket, key.rawValue, restored)
            return Response(status: .accepted)
        case .DELETE:
            if current.locked(at: now) { return Self.locked(key) }
            try await store.delete(key)
            attributes.set(bucket, key.rawValue, ObjectAttributes.Attributes())
            return Response(status: .noContent)
        case .HEAD:
            guard let info = try await store.head(key) else { return Response(status: .notFound) }
            var response = Response(status: .ok)
            response.headers.add(name: "Content-Length", value: "\(info.size)")
            if let storageClass = current.storageClass {
                response.headers.add(name: "x-amz-storage-class", value: storageClass)
            }
            if let until = current.retainUntil {
                response.headers.add(name: "x-amz-object-lock-mode", value: "COMPLIANCE")
                response.headers.add(
                    name: "x-amz-object-lock-retain-until-date", value: ISO8601DateFormatter().string(from: until))
            }
            if current.restored { response.headers.add(name: "x-amz-restore", value: "ongoing-request=\"false\"") }
            return response
        case .GET:
            guard let (file, size) = try store.openForSending(key) else {
                return .error(.notFound, "NoSuchKey", "no key \(key)")
            }
            var response = Response(status: .ok, file: (file, 0..<size))
            if let storageClass = current.storageClass, ColdStorageClass.needsRestore(storageClass), !current.restored {
                response = .error(
                    .forbidden, "InvalidObjectState", "the object is in \(storageClass); restore it before reading it")
            } else if let rangeHeader = request.head.headers.first(name: "Range") {
                if let range = Self.parseRange(rangeHeader, size: size) {
                    response = Response(status: .partialContent, file: (file, range))
                    response.headers.add(
                        name: "Content-Range", value: "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)")
                } else {
                    response = .error(.rangeNotSatisfiable, "InvalidRange", "range \(rangeHeader) of \(size) bytes")
                }
            }
            if let range = response.file?.range {
                sent.withLockedValue { $0 += UInt64(range.count) }
            } else {
                try file.close()
            }
            return response
        default:
            return .error(.methodNotAllowed, "MethodNotAllowed", "\(request.head.method) on an object is not supported")
        }
    }

    // MARK: - Archiving: copies, Object Lock, restores

    private static func locked(_ key: ObjectKey) -> Response {
        .error(.forbidden, "AccessDenied", "\(key) is protected by Object Lock until its retention ends")
    }

    /// The retention a PUT's lock headers ask for: none, a date, or a refusal (a bucket without
    /// Object Lock, a mode other than COMPLIANCE, a bad date).
    private func lockRequested(_ headers: HTTPHeaders, bucket: String) -> Result<Date?, Refusal> {
        guard let mode = headers.first(name: "x-amz-object-lock-mode") else { return .success(nil) }
        guard attributes.hasObjectLock(bucket) else {
            return .failure(
                Refusal(.error(.badRequest, "InvalidRequest", "Bucket is missing Object Lock Configuration")))
        }
        guard mode == "COMPLIANCE",
            let text = headers.first(name: "x-amz-object-lock-retain-until-date"),
            let until = ISO8601DateFormatter().date(from: text)
        else {
            return .failure(
                Refusal(.error(.badRequest, "InvalidArgument", "the emulator takes COMPLIANCE locks with a date")))
        }
        return .success(until)
    }

    /// A refusal as a failure value.
    struct Refusal: Error {
        let response: Response
        init(_ response: Response) { self.response = response }
    }

    private func copy(
        from source: String, to key: ObjectKey, in bucket: String, attributes next: ObjectAttributes.Attributes,
        current: ObjectAttributes.Attributes, store: FileObjectStore
    ) async throws -> Response {
        let trimmed = source.hasPrefix("/") ? String(source.dropFirst()) : source
        let parts = trimmed.split(separator: "/", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
        guard parts.count == 2, let sourceKey = try? ObjectKey(parts[1]) else {
            return .error(.badRequest, "InvalidArgument", "x-amz-copy-source must be /bucket/key")
        }
        let sourceStore = try await self.store(parts[0])
        guard try await sourceStore.head(sourceKey) != nil else {
            return .error(.notFound, "NoSuchKey", "no key \(sourceKey)")
        }
        // A locked object may be copied onto itself (a new class) if its lock is not shortened.
        let onto = parts[0] == bucket && sourceKey == key
        let shortened = (next.retainUntil ?? .distantPast) < (current.retainUntil ?? .distantPast)
        if current.locked(at: Date()), !onto || shortened { return Self.locked(key) }
        let sourceAttributes = attributes.attributes(parts[0], sourceKey.rawValue)
        if let storageClass = sourceAttributes.storageClass, ColdStorageClass.needsRestore(storageClass),
            !sourceAttributes.restored
        {
            return .error(.forbidden, "InvalidObjectState", "the source is in \(storageClass); restore it first")
        }
        if !onto { try await store.put(key, data: try await sourceStore.get(sourceKey, range: nil)) }
        attributes.set(bucket, key.rawValue, next)
        var response = Response(status: .ok)
        response.headers.add(name: "Content-Type", value: "application/xml")
        response.body = ByteBuffer(
            string: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult><LastModified>"
                + ISO8601DateFormatter().string(from: Date()) + "</LastModified></CopyObjectResult>")
        return response
    }

    /// PutObjectRetention: a COMPLIANCE date for an existing object, never shortened.
    private func putRetention(
        _ request: Request, bucket: String, key: ObjectKey, current: ObjectAttributes.Attributes
    ) async throws -> Response {
        guard attributes.hasObjectLock(bucket) else {
            return .error(.badRequest, "InvalidRequest", "Bucket is missing Object Lock Configuration")
        }
        guard try await store(bucket).head(key) != nil else { return .error(.notFound, "NoSuchKey", "no key \(key)") }
        let document = request.text
        guard document.contains("<Mode>COMPLIANCE</Mode>"),
            let start = document.range(of: "<RetainUntilDate>"),
            let end = document.range(of: "</RetainUntilDate>"),
            let until = ISO8601DateFormatter().date(from: String(document[start.upperBound..<end.lowerBound]))
        else { return .error(.badRequest, "MalformedXML", "a Retention with COMPLIANCE mode and a date") }
        if let existing = current.retainUntil, existing > until { return Self.locked(key) }
        var next = current
        next.retainUntil = until
        attributes.set(bucket, key.rawValue, next)
        return Response(status: .ok)
    }

    /// `POST /_emulator/faults?latency_ms=&error_rate=&outage=on|off&fail=OP&prefix=&count=&clear_rules=1`
    /// switches faults; GET shows them.
    private func control(_ method: HTTPMethod, _ query: [(String, String)]) -> Response {
        if method == .POST, let problem = faults.apply(query) {
            return Response(status: .badRequest, body: ByteBuffer(string: problem + "\n"))
        }
        if method == .POST { logger.notice("emulator faults: \(faults.settings.summary)") }
        let answer = "\(faults.settings.summary) injected_failures=\(faults.injectedFailures)\n"
        return Response(status: .ok, body: ByteBuffer(string: answer))
    }

    private func store(_ bucket: String) async throws -> FileObjectStore {
        if let store = stores.withLockedValue({ $0[bucket] }) { return store }
        let store = FileObjectStore(root: "\(directory)/\(bucket)", pool: pool)
        stores.withLockedValue { $0[bucket] = store }
        return store
    }

    // MARK: - Authentication

    /// Checks the SigV4 signature; returns the refusal, or nil when the request is authentic.
    private func authenticate(_ request: Request, path: String, query: [(String, String)]) -> Response? {
        let headers = request.head.headers
        guard let authorization = headers.first(name: "Authorization"),
            let parsed = SigV4Authorization(authorization)
        else { return .error(.forbidden, "AccessDenied", "the request is not signed with AWS4-HMAC-SHA256") }
        guard parsed.accessKeyID == credentials.accessKeyID else {
            return .error(.forbidden, "InvalidAccessKeyId", "unknown access key \(parsed.accessKeyID)")
        }
        guard let amzDate = headers.first(name: "x-amz-date"),
            let payloadHash = headers.first(name: "x-amz-content-sha256")
        else { return .error(.badRequest, "InvalidRequest", "x-amz-date and x-amz-content-sha256 are required") }
        if payloadHash != PayloadChecksum.unsignedPayload, payloadHash != SigV4Signer.sha256Hex(pieces: request.body) {
            return .error(.badRequest, "XAmzContentSHA256Mismatch", "the body does not match x-amz-content-sha256")
        }
        if let checksum = headers.first(name: PayloadChecksum.header),
            checksum != PayloadChecksum.crc32cBase64(request.body)
        {
            return .error(.badRequest, "BadDigest", "the body does not match \(PayloadChecksum.header)")
        }
        let signed = parsed.signedHeaders.map { name in
            (name: name, value: headers[name].joined(separator: ","))
        }
        let signer = SigV4Signer(credentials: credentials, region: parsed.region, service: parsed.service)
        let expected = signer.signature(
            for: SigV4Signer.Request(
                method: request.head.method.rawValue, encodedPath: path, query: query.map { (name: $0.0, value: $0.1) },
                headers: signed, payloadHash: payloadHash),
            amzDate: amzDate)
        guard expected == parsed.signature else {
            return .error(.forbidden, "SignatureDoesNotMatch", "the signature does not match the request")
        }
        return nil
    }

    // MARK: - Helpers

    /// Splits a request target into its raw path and its decoded query parameters.
    static func split(_ uri: String) -> (path: String, query: [(String, String)]) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, []) }
        let query = uri[uri.index(after: mark)...].split(separator: "&").map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            return (name, value)
        }
        return (String(uri[..<mark]), query)
    }

    /// "bytes=a-b" or "bytes=a-" within an object of `size` bytes.
    static func parseRange(_ header: String, size: UInt64) -> Range<UInt64>? {
        guard header.hasPrefix("bytes=") else { return nil }
        let bounds = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard bounds.count == 2, let first = UInt64(bounds[0]), first < size else { return nil }
        let last = bounds[1].isEmpty ? size - 1 : min(UInt64(bounds[1]) ?? 0, size - 1)
        return last >= first ? first..<(last + 1) : nil
    }

    static func isValidBucketName(_ name: String) -> Bool {
        (3...63).contains(name.count)
            && name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }
            && !name.hasPrefix(".") && !name.hasPrefix("-")
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header.
struct SigV4Authorization {
    var accessKeyID: String
    var region: String
    var service: String
    var signedHeaders: [String]
    var signature: String

    init?(_ header: String) {
        guard header.hasPrefix("AWS4-HMAC-SHA256 ") else { return nil }
        var fields: [String: String] = [:]
        for part in header.dropFirst(17).split(separator: ",") {
            let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let credential = fields["Credential"]?.split(separator: "/"), credential.count == 5,
            let signedHeaders = fields["SignedHeaders"], let signature = fields["Signature"]
        else { return nil }
        accessKeyID = String(credential[0])
        region = String(credential[2])
        service = String(credential[3])
        self.signedHeaders = signedHeaders.split(separator: ";").map(String.init)
        self.signature = signature
    }
}

/// One emulator connection: collects each request whole (its body in the pieces it arrived in,
/// not copied), answers it, in order.
private final class EmulatorHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let emulator: S3Emulator
    private var head: HTTPRequestHead?
    private var body: [ByteBuffer] = []
    private var bodyBytes = 0

    init(emulator: S3Emulator) {
        self.emulator = emulator
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = []
            bodyBytes = 0
        case .body(let chunk):
            bodyBytes += chunk.readableBytes
            guard bodyBytes <= S3Emulator.maximumBody else {
                context.close(promise: nil)
                return
            }
            body.append(chunk)
        case .end:
            guard let head else { return }
            self.head = nil
            let request = S3Emulator.Request(head: head, body: body)
            let emulator = self.emulator
            context.eventLoop.makeFutureWithTask { await emulator.handle(request) }.assumeIsolated()
                .whenSuccess { response in self.respond(response, to: head, context: context) }
        }
    }

    private func respond(_ response: S3Emulator.Response, to request: HTTPRequestHead, context: ChannelHandlerContext) {
        var head = HTTPResponseHead(version: request.version, status: response.status, headers: response.headers)
        if !head.headers.contains(name: "Content-Length") {
            let length = response.file.map { $0.range.count } ?? response.body.readableBytes
            head.headers.add(name: "Content-Length", value: "\(length)")
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let (file, range) = response.file {
            if !range.isEmpty {
                let region = FileRegion(
                    fileHandle: file, readerIndex: Int(range.lowerBound), endIndex: Int(range.upperBound))
                context.write(wrapOutboundOut(.body(.fileRegion(region))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in try? file.close() }
            return
        }
        if request.method != .HEAD, response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
