import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for one host, keeping idle connections for reuse: just what the S3
/// client needs (whole bodies, one request per connection at a time, a deadline per request).
public final class HTTPClient: Sendable {
    /// A request; `target` is the path and query as sent.
    public struct Request: Sendable {
        public var method: HTTPMethod
        public var target: String
        public var headers: HTTPHeaders
        /// Sent one piece after another (none: no body).
        public var body: [ByteBuffer]

        public init(method: HTTPMethod, target: String, headers: HTTPHeaders = HTTPHeaders(), body: [ByteBuffer] = []) {
            self.method = method
            self.target = target
            self.headers = headers
            self.body = body
        }
    }

    /// A whole response; its body in the pieces it was read in.
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var headers: HTTPHeaders
        public var bodyPieces: [ByteBuffer]

        /// The body in one buffer, its first byte aligned for direct I/O (`ByteBuffer.aligned`).
        public var body: ByteBuffer {
            var body = ByteBuffer.aligned(capacity: bodyPieces.reduce(0) { $0 + $1.readableBytes })
            for piece in bodyPieces { body.writeImmutableBuffer(piece) }
            return body
        }
    }

    /// The connection failed or the deadline passed; retrying may help.
    public struct TransportError: Error, CustomStringConvertible {
        public let description: String
    }

    private let host: String
    private let port: Int
    private let group: any EventLoopGroup
    private let idle = NIOLockedValueBox([any Channel]())
    /// Idle connections kept: enough for a volume's uploads, a reader's read-ahead and its
    /// queue of requests at once, so that none of them opens a connection per request.
    private static let maximumIdle = 64

    public init(host: String, port: Int, group: any EventLoopGroup) {
        self.host = host
        self.port = port
        self.group = group
    }

    /// Sends a request and waits for the whole response, or fails after `timeout`.
    public func execute(_ request: Request, timeout: TimeAmount) async throws -> Response {
        let channel = try await connection()
        let promise = channel.eventLoop.makePromise(of: Response.self)
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(TransportError(description: "no answer from \(self.host):\(self.port) within \(timeout)"))
            channel.close(promise: nil)
        }
        var head = HTTPRequestHead(version: .http1_1, method: request.method, uri: request.target)
        head.headers = request.headers
        head.headers.replaceOrAdd(name: "Host", value: "\(host):\(port)")
        head.headers.replaceOrAdd(name: "Content-Length", value: "\(request.body.reduce(0) { $0 + $1.readableBytes })")
        channel.writeAndFlush(PendingExchange(head: head, body: request.body, promise: promise), promise: nil)
        do {
            let response = try await promise.futureResult.get()
            deadline.cancel()
            let keepAlive = !response.headers[canonicalForm: "connection"].contains { $0.lowercased() == "close" }
            if keepAlive && channel.isActive { release(channel) } else { try? await channel.close() }
            return response
        } catch {
            deadline.cancel()
            try? await channel.close()
            throw error
        }
    }

    /// Closes the idle connections.
    public func shutdown() async {
        for channel in idle.withLockedValue({ idle in
            defer { idle.removeAll() }
            return idle
        }) {
            try? await channel.close()
        }
    }

    private func connection() async throws -> any Channel {
        while let channel = idle.withLockedValue({ $0.popLast() }) {
            if channel.isActive { return channel }
        }
        do {
            return try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                // Bodies are chunks of a MiB or more: read them in large pieces, not 64 KiB ones,
                // one read per wake-up, each into memory that goes back to malloc once its body is
                // decoded. (NIO's default reads up to four times per wake-up and keeps a buffer
                // for each on the connection: with dozens of connections, tens of MiB touched for
                // the first time as downloads start, which costs more than the downloads where
                // memory is slow to touch first, as in a virtual machine.)
                .channelOption(
                    .recvAllocator,
                    value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 65536, maximum: 1 << 20)
                )
                .channelOption(.maxMessagesPerRead, value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ExchangeHandler())
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            throw TransportError(description: "cannot connect to \(host):\(port): \(error)")
        }
    }

    private func release(_ channel: any Channel) {
        let keep = idle.withLockedValue { idle in
            guard idle.count < Self.maximumIdle else { return false }
            idle.append(channel)
            return true
        }
        if !keep { channel.close(promise: nil) }
    }
}

/// A request on its way out with the promise of its response.
private struct PendingExchange: Sendable {
    let head: HTTPRequestHead
    let body: [ByteBuffer]
    let promise: EventLoopPromise<HTTPClient.Response>
}

/// Writes one request and collects its response.
private final class ExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = PendingExchange
    typealias OutboundOut = HTTPClientRequestPart

    private var pending: EventLoopPromise<HTTPClient.Response>?
    private var head: HTTPResponseHead?
    private var body: [ByteBuffer] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        pending = exchange.promise
        head = nil
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        for piece in exchange.body where piece.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(piece))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            head = responseHead
        case .body(let piece):
            // A piece is a view of the memory it was read into: kept as it is, unless it holds
            // that memory (up to a MiB) for a few bytes, like the last bytes of a body often do.
            body.append(piece.storageCapacity > 4 * piece.readableBytes + 65536 ? ByteBuffer(buffer: piece) : piece)
        case .end:
            // Handed over, not kept: an idle connection holds no body between exchanges.
            let pieces = body
            body = []
            guard let head, let pending else { return }
            self.pending = nil
            pending.succeed(HTTPClient.Response(status: head.status, headers: head.headers, bodyPieces: pieces))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(HTTPClient.TransportError(description: "the connection closed before the response ended"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(HTTPClient.TransportError(description: "\(error)"))
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        pending?.fail(error)
        pending = nil
    }
}
