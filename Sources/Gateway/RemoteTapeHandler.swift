import Logging
import NIOCore
import RemoteTape

/// The rmt protocol on an admin connection that asked for it (`drive.rmt`): takes requests off
/// the bytes as they complete and answers each in order; bytes that are not the protocol end
/// the connection, and the end of the connection closes the drive.
final class RemoteTapeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let session: RemoteTapeSession
    private let logger: Logger
    private let parser = RemoteTapeRequestParser()
    private var pending = ByteBuffer()
    /// Answers go out in request order: each request waits for the previous one.
    private var previous: EventLoopFuture<Void>?
    private var failed = false

    init(session: RemoteTapeSession, logger: Logger) {
        self.session = session
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        pending.writeBuffer(&incoming)
        guard !failed else { return }
        do {
            while let request = try parser.next(from: &pending) {
                answer(request, context: context)
            }
            pending.discardReadBytes()
        } catch {
            failed = true
            logger.warning("rmt: \(error); closing the connection")
            let after = previous ?? context.eventLoop.makeSucceededVoidFuture()
            after.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let session = self.session
        let after = previous ?? context.eventLoop.makeSucceededVoidFuture()
        after.whenComplete { _ in Task { await session.end() } }
        context.fireChannelInactive()
    }

    private func answer(_ request: RemoteTapeRequest, context: ChannelHandlerContext) {
        let session = self.session
        let eventLoop = context.eventLoop
        let after = previous ?? eventLoop.makeSucceededVoidFuture()
        previous = after.flatMap {
            eventLoop.makeFutureWithTask { await session.answer(request) }
        }.assumeIsolated().map { reply in
            var buffer = context.channel.allocator.buffer(capacity: 64)
            reply.encode(into: &buffer)
            context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        }.nonisolated()
    }
}
