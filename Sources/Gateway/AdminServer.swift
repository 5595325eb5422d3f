import Foundation
import Logging
import NIOCore
import NIOPosix

/// The admin API: JSON requests and answers, one per line, on a unix socket (mode 0600).
/// Each request runs as a task, off the event loops, since it may touch disk, database and
/// object store.
public final class AdminServer: Sendable {
    private let handler: AdminHandler
    private let group: any EventLoopGroup
    private let logger: Logger

    public init(handler: AdminHandler, group: any EventLoopGroup, logger: Logger) {
        self.handler = handler
        self.group = group
        self.logger = logger
    }

    /// Starts listening at `path`, replacing a stale socket file.
    public func listen(path: String) async throws -> any Channel {
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { [handler, logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        AdminConnectionHandler(handler: handler, logger: logger))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        chmod(path, 0o600)
        return channel
    }
}

/// One admin connection: splits input into lines, answers each in order. A connection whose
/// first request is `drive.rmt` is answered and then handed to a `RemoteTapeHandler`.
private final class AdminConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let handler: AdminHandler
    private let logger: Logger
    private var pending = ByteBuffer()
    /// Answers go out in request order: each request waits for the previous one.
    private var previous: EventLoopFuture<Void>?
    private var upgraded = false
    private static let maximumLine = 1 << 20

    init(handler: AdminHandler, logger: Logger) {
        self.handler = handler
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard !upgraded else { return context.fireChannelRead(NIOAny(incoming)) }
        pending.writeBuffer(&incoming)
        while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let line = Data(pending.readSlice(length: newline - pending.readerIndex + 1)!.readableBytesView.dropLast())
            if previous == nil, (try? JSONDecoder().decode(AdminRequest.self, from: line))?.op == .driveRemoteTape {
                return upgradeToRemoteTape(context: context)
            }
            answer(line, context: context)
        }
        if pending.readableBytes > Self.maximumLine {
            context.close(promise: nil)
        }
        pending.discardReadBytes()
    }

    /// Answers the `drive.rmt` request, then passes this connection's bytes (those already
    /// received first) to an rmt handler.
    private func upgradeToRemoteTape(context: ChannelHandlerContext) {
        upgraded = true
        let remoteTape = RemoteTapeHandler(
            session: RemoteTapeSession(library: handler.library, logger: logger), logger: logger)
        do {
            try context.pipeline.syncOperations.addHandler(remoteTape, position: .after(self))
            let answer = try JSONEncoder().encode(AdminResponse(message: "rmt")) + Data([UInt8(ascii: "\n")])
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: answer)), promise: nil)
        } catch {
            logger.error("admin: cannot start an rmt session: \(error)")
            return context.close(promise: nil)
        }
        if pending.readableBytes > 0 {
            context.fireChannelRead(NIOAny(pending))
            pending = ByteBuffer()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func answer(_ line: Data, context: ChannelHandlerContext) {
        let handler = self.handler
        let work = context.eventLoop.makeFutureWithTask { () -> Data in
            let response: AdminResponse
            do {
                response = await handler.handle(try JSONDecoder().decode(AdminRequest.self, from: line))
            } catch {
                response = AdminResponse(error: GatewayError(.invalid, "malformed admin request: \(error)"))
            }
            return try JSONEncoder().encode(response) + Data([UInt8(ascii: "\n")])
        }
        let after = previous ?? context.eventLoop.makeSucceededVoidFuture()
        let written = after.flatMap { work }.assumeIsolated().map { data in
            var buffer = context.channel.allocator.buffer(capacity: data.count)
            buffer.writeBytes(data)
            context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        }.nonisolated()
        previous = written.flatMapErrorThrowing { [logger] error in logger.error("admin request failed: \(error)") }
    }
}
