import BlockDevice
import Logging
import NBDProtocol
import NIOCore

/// One client connection: the greeting, option negotiation, then the transmission phase with
/// many requests in flight and replies sent as they complete.
///
/// Input is parsed from a small carry-over buffer; a write payload that has not fully arrived
/// gets a buffer of its own, so that every payload byte is copied at most once. With a
/// `PayloadReception` (a socket of its own, no TLS) the rest of such a payload is read straight
/// into its buffer and not copied at all.
final class NBDConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = IOData

    private enum Phase {
        /// Greeting sent; client flags and options are being exchanged.
        case negotiating(NegotiationStateMachine)
        /// Requests flow to the export's device.
        case transmitting(Transmission)
        /// The connection is ending; input is ignored.
        case closing
    }

    /// Where the parser is between requests.
    private enum InputState {
        /// Expecting a request header (or, during negotiation, an option).
        case header
        /// Collecting the payload of this write in its own buffer; `missing` bytes are still to come.
        case payload(NBDRequestHeader, ByteBuffer, missing: Int)
        /// The payload of this write waits in the `PayloadReception` for the socket to read its
        /// missing bytes into it.
        case parked(NBDRequestHeader)
    }

    private let catalog: any NBDExportCatalog
    private let limits: NBDServerLimits
    private var logger: Logger
    private let requestLog: Bool
    private let registry: ConnectionRegistry
    private let connectionID: UInt64

    private var phase: Phase
    private var input = InputState.header
    private var carry: ByteBuffer?
    private var context: ChannelHandlerContext!
    private var inFlight = 0
    private var inFlightBytes = 0
    private var readingPaused = false
    private var flushScheduled = false
    private var disconnectRequested = false
    /// The export in use; released once, when the connection has ended and nothing is in flight.
    private var session: NBDExportSession?
    private var metrics: RequestMetrics?
    private let tls: NBDServerTLS?
    /// Where payloads wait for the socket to read into them; nil once TLS starts (the socket's
    /// bytes are then not the payload's) or when the channel reads no socket.
    private var reception: PayloadReception?

    init(
        catalog: any NBDExportCatalog, limits: NBDServerLimits, logger: Logger, requestLog: Bool,
        registry: ConnectionRegistry, connectionID: UInt64, tls: NBDServerTLS? = nil,
        reception: PayloadReception? = nil
    ) {
        self.catalog = catalog
        self.limits = limits
        self.logger = logger
        self.logger[metadataKey: "conn"] = "\(connectionID)"
        self.requestLog = requestLog
        self.registry = registry
        self.connectionID = connectionID
        self.tls = tls
        self.reception = reception
        self.phase = .negotiating(NegotiationStateMachine(catalog: catalog, tls: tls?.mode ?? .off, limits: limits))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Drops the context (which holds this handler: keeping it would leak both). Requests still
    /// in flight complete into the closing phase, which writes nothing.
    func handlerRemoved(context: ChannelHandlerContext) {
        phase = .closing
        reception?.clear()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        var greeting = context.channel.allocator.buffer(capacity: NBDGreeting.length)
        NBDGreeting.write(flags: [.fixedNewstyle, .noZeroes], into: &greeting)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(greeting)), promise: nil)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closing
        carry = nil
        reception?.clear()
        finishIfIdle()
        context.fireChannelInactive()
    }

    /// `ConnectionRegistry.drainAll` asks the connection to end as a DISC would: no new
    /// requests, those in flight answered, their replies written, then closed.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ConnectionRegistry.Drain else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard case .transmitting = phase else {
            close()
            return
        }
        disconnectRequested = true
        // A write still arriving is never answered: its payload need not wait for the close.
        reception?.clear()
        finishIfIdle()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(error)")
        close()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if case .closing = phase { return }
        if disconnectRequested { return }
        if case .parked(let header) = input {
            input = .header
            switch reception?.reclaim(incoming) ?? .lost {
            case .readInto:
                // `incoming` is the payload, grown by this read (and holding nothing more).
                guard incoming.writableBytes == 0 else {
                    input = .parked(header)
                    reception?.park(incoming)
                    return
                }
                dispatch(header, payload: incoming)
                return
            case .untouched(let payload):
                input = .payload(header, payload, missing: payload.writableBytes)
            case .lost:
                logger.error("closing connection: the socket read part of a write's payload and delivered none of it")
                close()
                return
            }
        }
        if case .payload(let header, var payload, let missing) = input {
            input = .header  // drops the second reference, so the payload grows in place
            if incoming.readableBytes < missing {
                let arrived = incoming.readableBytes
                payload.writeBuffer(&incoming)
                input = .payload(header, payload, missing: missing - arrived)
                return
            }
            var rest = incoming.readSlice(length: missing)!
            payload.writeBuffer(&rest)
            input = .header
            dispatch(header, payload: payload)
        }
        if var carried = carry {
            carry = nil  // so that `carried` is the only reference and grows in place
            carried.writeBuffer(&incoming)
            incoming = carried
        }
        process(&incoming)
    }

    /// Acts on the whole messages in `buffer` and keeps the rest (a partial message, or what
    /// arrived while too much is in flight) for later.
    private func process(_ buffer: inout ByteBuffer) {
        do {
            try consume(&buffer)
        } catch {
            logger.info("closing connection: \(error)")
            close()
            return
        }
        if buffer.readableBytes > 0 {
            var kept = context.channel.allocator.buffer(capacity: max(buffer.readableBytes, 64))
            kept.writeBuffer(&buffer)
            carry = kept
        }
    }

    // MARK: - Parsing

    /// Parses as many whole messages as `buffer` holds and acts on each, until too much is in
    /// flight (so that a buffer full of 32 MiB READs cannot make the server allocate without bound).
    private func consume(_ buffer: inout ByteBuffer) throws {
        while buffer.readableBytes > 0, !disconnectRequested, !readingPaused {
            switch phase {
            case .closing:
                return
            case .negotiating(var machine):
                let action: NegotiationStateMachine.Action?
                if machine.awaitsClientFlags {
                    guard let flags = NBDGreeting.readClientFlags(from: &buffer) else { return }
                    action = machine.receivedClientFlags(flags)
                } else {
                    guard let option = try NBDOptionRequest.decode(from: &buffer) else { return }
                    action = machine.receivedOption(option)
                }
                phase = .negotiating(machine)
                if let action { perform(action) }
                if case .startTLS = action, buffer.readableBytes > 0 {
                    throw NBDProtocolError.dataAfterStartTLS
                }
            case .transmitting(let transmission):
                guard
                    let header = try NBDRequestHeader.decode(
                        from: &buffer, extended: transmission.options.extendedHeaders)
                else { return }
                let payloadLength = payloadLength(of: header, extended: transmission.options.extendedHeaders)
                guard payloadLength <= UInt64(limits.maximumPayload) else {
                    throw NBDProtocolError.requestTooLong(payloadLength)
                }
                guard payloadLength > 0 else {
                    dispatch(header, payload: nil)
                    continue
                }
                // The payload gets a buffer of its own even when it has all arrived: a slice would
                // keep the whole receive buffer (up to 128 KiB, shared with the requests around it)
                // alive until the write completes, so memory would follow how requests happen to
                // share reads rather than the bytes in flight.
                var payload = ByteBuffer.payload(length: Int(payloadLength), allocator: context.channel.allocator)
                var arrived = buffer.readSlice(length: min(buffer.readableBytes, Int(payloadLength)))!
                payload.writeBuffer(&arrived)
                let missing = Int(payloadLength) - payload.readableBytes
                guard missing == 0 else {
                    if let reception {
                        input = .parked(header)
                        reception.park(payload)
                    } else {
                        input = .payload(header, payload, missing: missing)
                    }
                    return
                }
                dispatch(header, payload: payload)
            }
        }
    }

    private func payloadLength(of header: NBDRequestHeader, extended: Bool) -> UInt64 {
        if extended {
            return header.flags.contains(.payloadLength) ? header.length : 0
        }
        return header.command == .write ? header.length : 0
    }

    // MARK: - Negotiation

    private func perform(_ action: NegotiationStateMachine.Action) {
        switch action {
        case .send(let bytes):
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
        case .sendAndClose(let bytes):
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
            close()
        case .close(let reason):
            logger.info("closing connection during negotiation: \(reason)")
            close()
        case .startTLS(let bytes):
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
            do {
                guard let tls else { preconditionFailure("STARTTLS is accepted only with TLS configured") }
                try context.pipeline.syncOperations.addHandler(try tls.makeHandler(), position: .first)
                reception = nil
                try PayloadReception.uninstall(from: context.channel)
            } catch {
                logger.warning("closing connection: TLS could not start: \(error)")
                close()
            }
        case .startTransmission(let bytes, let session, let options):
            let transmission = Transmission(
                session: session, options: options, limits: limits, allocator: context.channel.allocator)
            phase = .transmitting(transmission)
            self.session = session
            metrics = RequestMetrics(export: session.name)
            registry.attach(connectionID, export: session.name, channel: context.channel)
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
            logger.info(
                "client attached to export '\(session.name)'",
                metadata: [
                    "structured": "\(options.structuredReplies)", "extended": "\(options.extendedHeaders)",
                    "block_status": "\(options.allocationContextID != nil)",
                ])
        }
    }

    // MARK: - Transmission

    /// Validates a request and sends it to the device; its reply goes out when it completes.
    private func dispatch(_ header: NBDRequestHeader, payload: ByteBuffer?) {
        guard case .transmitting(let transmission) = phase else { return }
        if requestLog { logRequest(header) }
        if header.command == .disconnect {
            disconnectRequested = true
            finishIfIdle()
            return
        }
        var header = header
        if transmission.options.extendedHeaders, header.flags.contains(.payloadLength) {
            header.length = UInt64(payload?.readableBytes ?? 0)
        }
        if let error = transmission.validator.validate(header) {
            send(
                transmission.encoder.failure(
                    cookie: header.cookie, offset: header.offset, error: error, message: rejection(error, header)))
            metrics?.record(header.command, bytes: 0, duration: .zero, error: error)
            return
        }
        let started = ContinuousClock.now
        let device = transmission.session.device
        let loop = context.eventLoop
        let length = Int(clamping: header.length)
        startRequest(bytes: payload?.readableBytes ?? length)
        let fua = header.flags.contains(.fua)
        switch header.command {
        case .read:
            if canSendRegion, let read = device.readRegion(offset: header.offset, length: length) {
                send(transmission.encoder.readHeader(cookie: header.cookie, offset: header.offset, length: length))
                send(read)
                finishRequest(header, bytes: length, started: started, error: nil)
                return
            }
            device.read(offset: header.offset, length: length, on: loop).assumeIsolated().whenComplete { result in
                var failure: NBDErrno?
                switch result {
                case .success(let data):
                    self.send(
                        transmission.encoder.read(
                            cookie: header.cookie, offset: header.offset, length: length, result: data,
                            dontFragment: header.flags.contains(.dontFragment)))
                case .failure(let error):
                    failure = self.sendFailure(transmission, header, error)
                }
                self.finishRequest(header, bytes: length, started: started, error: failure)
            }
        case .write:
            let data = payload ?? ByteBuffer()
            complete(transmission, header, bytes: data.readableBytes, started: started) {
                device.write(offset: header.offset, data: data, fua: fua, on: loop)
            }
        case .flush:
            complete(transmission, header, bytes: length, started: started) { device.flush(on: loop) }
        case .trim:
            complete(transmission, header, bytes: length, started: started) {
                device.trim(offset: header.offset, length: header.length, fua: fua, on: loop)
            }
        case .writeZeroes:
            var options: ZeroOptions = []
            if fua { options.insert(.fua) }
            if header.flags.contains(.noHole) { options.insert(.noHole) }
            if header.flags.contains(.fastZero) { options.insert(.fastZero) }
            complete(transmission, header, bytes: length, started: started) {
                device.writeZeroes(offset: header.offset, length: header.length, options: options, on: loop)
            }
        case .cache:
            complete(transmission, header, bytes: length, started: started) {
                device.cache(offset: header.offset, length: header.length, on: loop)
            }
        case .blockStatus:
            device.blockStatus(offset: header.offset, length: header.length, on: loop).assumeIsolated()
                .whenComplete { result in
                    var failure: NBDErrno?
                    switch result {
                    case .success(let extents):
                        self.send(
                            transmission.encoder.blockStatus(
                                cookie: header.cookie, offset: header.offset, length: header.length, extents: extents,
                                reqOne: header.flags.contains(.reqOne),
                                contextID: transmission.options.allocationContextID ?? 0))
                    case .failure(let error):
                        failure = self.sendFailure(transmission, header, error)
                    }
                    self.finishRequest(header, bytes: length, started: started, error: failure)
                }
        case .disconnect, .resize, .unknown:
            preconditionFailure("validated away")
        }
    }

    /// Runs an operation without reply data and answers it.
    private func complete(
        _ transmission: Transmission, _ header: NBDRequestHeader, bytes: Int, started: ContinuousClock.Instant,
        _ operation: () -> EventLoopFuture<Void>
    ) {
        operation().assumeIsolated().whenComplete { result in
            var failure: NBDErrno?
            switch result {
            case .success:
                self.send(transmission.encoder.success(cookie: header.cookie, offset: header.offset))
            case .failure(let error):
                failure = self.sendFailure(transmission, header, error)
            }
            self.finishRequest(header, bytes: bytes, started: started, error: failure)
        }
    }

    /// Answers a failed request; the errno sent.
    @discardableResult
    private func sendFailure(_ transmission: Transmission, _ header: NBDRequestHeader, _ error: any Error) -> NBDErrno {
        let errno = NBDErrno(anyError: error, flags: header.flags)
        let message = (error as? BlockDeviceError)?.message ?? "\(error)"
        if errno != .notSupported {
            logger.warning(
                "request failed",
                metadata: [
                    "cmd": "\(header.command)", "offset": "\(header.offset)",
                    "length": "\(header.length)", "error": "\(message)",
                ])
        }
        send(transmission.encoder.failure(cookie: header.cookie, offset: header.offset, error: errno, message: message))
        return errno
    }

    private func rejection(_ error: NBDErrno, _ header: NBDRequestHeader) -> String {
        if error == .perm { return "the export is read-only" }
        return "\(header.command) offset=\(header.offset) length=\(header.length) "
            + "flags=0x\(String(header.flags.rawValue, radix: 16)) is not valid for this export"
    }

    // MARK: - Output and flow control

    private func send(_ buffer: ByteBuffer) {
        guard case .transmitting = phase else { return }
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
        scheduleFlush()
    }

    /// Sends a file region (sendfile); once it is written or dropped, closes its descriptor and
    /// tells the device.
    private func send(_ read: RegionRead) {
        guard case .transmitting = phase else {
            try? read.region.fileHandle.close()
            read.sent()
            return
        }
        regionsUnsent += 1
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in
            self.regionsUnsent -= 1
            try? read.region.fileHandle.close()
            read.sent()
        }
        context.write(wrapOutboundOut(.fileRegion(read.region)), promise: written)
        scheduleFlush()
    }

    /// Whether a read may be answered with a file region now: the channel's writes reach the
    /// socket as they are (no TLS), the connection holds few descriptors of regions not yet
    /// sent (a client that stops reading pins them), and little waits to be sent before it
    /// (its pages, in memory when it is chosen, are sent soon after, not once the page cache
    /// may have let them go).
    private var canSendRegion: Bool {
        guard reception != nil, regionsUnsent < Self.maximumRegionsUnsent else { return false }
        let waiting = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? .max
        return waiting <= Self.maximumBytesBeforeRegion
    }

    /// File regions written to the channel and not yet sent.
    private var regionsUnsent = 0
    /// The most file regions one connection has unsent.
    static let maximumRegionsUnsent = 16
    /// The most bytes waiting to be sent in front of a new file region.
    static let maximumBytesBeforeRegion = 8 << 20

    private func send(_ buffers: [ByteBuffer]) {
        guard case .transmitting = phase else { return }
        for buffer in buffers { context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil) }
        scheduleFlush()
    }

    /// Coalesces the flushes of replies that complete in the same event loop tick.
    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.context?.flush()
        }
    }

    private func startRequest(bytes: Int) {
        inFlight += 1
        inFlightBytes += bytes
        updateFlowControl()
    }

    /// Ends a request: accounts for it, then lets flow control and closing go on.
    private func finishRequest(
        _ header: NBDRequestHeader, bytes: Int, started: ContinuousClock.Instant, error: NBDErrno?
    ) {
        metrics?.record(header.command, bytes: bytes, duration: ContinuousClock.now - started, error: error)
        inFlight -= 1
        inFlightBytes -= bytes
        updateFlowControl()
        finishIfIdle()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        updateFlowControl()
        context.fireChannelWritabilityChanged()
    }

    /// Stops taking requests while too many are in flight or replies are not draining (the
    /// client does not read); takes them again, with what arrived meanwhile, once both settle.
    private func updateFlowControl() {
        guard let context else { return }
        if case .closing = phase { return }
        let writable = context.channel.isWritable
        if !readingPaused {
            guard
                inFlight >= limits.maximumRequestsInFlight || inFlightBytes >= limits.maximumBytesInFlight || !writable
            else { return }
            readingPaused = true
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        } else {
            guard writable, inFlight <= limits.maximumRequestsInFlight / 2,
                inFlightBytes <= limits.maximumBytesInFlight / 2
            else { return }
            readingPaused = false
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            if var carried = carry, case .transmitting = phase {
                carry = nil
                process(&carried)
            }
        }
    }

    /// Ends the connection once nothing is in flight, if it is ending; releases the export.
    private func finishIfIdle() {
        guard inFlight == 0 else { return }
        if disconnectRequested, case .transmitting = phase {
            closeAfterReplies()
        }
        if case .closing = phase, let session {
            self.session = nil
            registry.detach(connectionID)
            session.onClose()
        }
    }

    private func close() {
        phase = .closing
        reception?.clear()
        context?.close(promise: nil)
    }

    /// How long a disconnecting client may take to read the replies still owed to it.
    static let drainTimeout = TimeAmount.seconds(30)

    /// Closes once every reply written so far has reached the socket (NBD_CMD_DISC: the server
    /// handles all outstanding requests first), or after `drainTimeout` (logged).
    private func closeAfterReplies() {
        guard let context else { return }
        phase = .closing
        let written = context.eventLoop.makePromise(of: Void.self)
        // Writes complete in order: this empty one completes after every reply before it.
        context.writeAndFlush(
            wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: written)
        let loop = context.eventLoop.assumeIsolated()
        let timeout = loop.scheduleTask(in: Self.drainTimeout) {
            self.logger.warning(
                "closing connection: the client did not read the replies owed to it within \(Self.drainTimeout)")
            self.context?.close(promise: nil)
        }
        written.futureResult.assumeIsolated().whenComplete { _ in
            timeout.cancel()
            self.context?.close(promise: nil)
        }
    }

    private func logRequest(_ header: NBDRequestHeader) {
        logger.info(
            "nbd request",
            metadata: [
                "cmd": "\(header.command)", "cookie": "\(header.cookie)", "offset": "\(header.offset)",
                "length": "\(header.length)", "flags": "\(header.flags.rawValue)",
            ])
    }
}

/// The negotiated state of a connection in transmission.
struct Transmission {
    let session: NBDExportSession
    let options: NBDSessionOptions
    let validator: RequestValidator
    let encoder: ReplyEncoder

    init(
        session: NBDExportSession, options: NBDSessionOptions, limits: NBDServerLimits, allocator: ByteBufferAllocator
    ) {
        self.session = session
        self.options = options
        self.validator = RequestValidator(
            size: session.device.size, capabilities: limits.served(session.device.capabilities), options: options)
        self.encoder = ReplyEncoder(options: options, allocator: allocator)
    }
}
