import CURing
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// File I/O through io_uring, with one ring per event loop.
///
/// Each ring is used only from its event loop's thread, so it needs no lock. A read below
/// `LoopRing.offloadedRead` first takes what the page cache holds (`preadv2` with `RWF_NOWAIT`,
/// which never waits for the disk): a cached read is one system call and no ring entry,
/// completion or eventfd signal; the ring reads the rest, from where the page cache stopped. A
/// larger read, and all other operations, go through the ring. The entries one event-loop tick
/// prepares go to the kernel together, in one system call once the tick's work is done (or
/// earlier, whenever the submission queue fills): a batch of 4 KiB writes read from one socket
/// read costs one `io_uring_enter`, not one each, a quarter less of the loop's time per write. A
/// write through the page cache goes as a chain of linked entries, one per piece
/// (`PageCacheWrites`), which one kernel worker writes in order.
/// Completions the kernel posts during that call are reaped right there, and later ones (from
/// the kernel's own workers, which run buffered writes and large reads) are handed to the loop's
/// thread at its next system call and signal the ring's eventfd, which the event loop watches
/// like any socket; the loop then reaps them itself. No thread of ours but the loop's is
/// involved, and no completion hops between threads.
public final class UringFileIO: FileIO, Sendable {
    public let backendName = "io_uring"
    private let rings = NIOLockedValueBox([ObjectIdentifier: LoopRing.Handle]())

    /// Checks that the kernel allows io_uring here.
    /// - Throws: `LocalIOError` when it refuses (ENOSYS, EPERM under seccomp or
    ///   `kernel.io_uring_disabled`).
    public init() throws(LocalIOError) {
        var probe = io_uring()
        let result = io_uring_queue_init(4, &probe, 0)
        guard result == 0 else { throw LocalIOError(errno: -result, operation: "io_uring_queue_init") }
        io_uring_queue_exit(&probe)
    }

    public func shutdown() async {
        let handles = rings.withLockedValue { rings in
            defer { rings.removeAll() }
            return Array(rings.values)
        }
        for handle in handles {
            try? await handle.eventLoop.submit { handle.ring.close() }.get()
        }
    }

    public func read(
        _ file: LocalFile, offset: UInt64, length: Int, on eventLoop: any EventLoop,
        completion: @escaping @Sendable (Result<ByteBuffer, any Error>) -> Void
    ) {
        // The read path's common case reads at once, without a closure to hop or fail by.
        if eventLoop.inEventLoop, let ring = rings.withLockedValue({ $0[ObjectIdentifier(eventLoop)] })?.ring {
            return Self.submitRead(on: ring, file: file, offset: offset, length: length, completion: completion)
        }
        onRing(of: eventLoop, failing: { completion(.failure($0)) }) { ring in
            Self.submitRead(on: ring, file: file, offset: offset, length: length, completion: completion)
        }
    }

    private static func submitRead(
        on ring: LoopRing, file: LocalFile, offset: UInt64, length: Int,
        completion: @escaping @Sendable (Result<ByteBuffer, any Error>) -> Void
    ) {
        var buffer = ring.allocator.buffer(capacity: length)
        let base = buffer.withUnsafeMutableWritableBytes { $0.baseAddress! }
        buffer.moveWriterIndex(forwardBy: length)
        // What the page cache holds now, at once; the ring reads the rest (past a page the cache
        // lacks, the end of the file, or an error, which it then reports). Never on a direct
        // file: its read would wait for the device. Nor for a large read: a kernel worker copies
        // it while the loop sends earlier replies, so a stream of them uses both processors.
        let cached =
            file.isDirect || length >= LoopRing.offloadedRead
            ? 0 : max(0, blockgate_pread_nowait(file.descriptor, base, length, Int64(offset)))
        if cached == length { return completion(.success(buffer)) }
        ring.submit(
            LoopRing.Operation(
                kind: .read(buffer, completion), file: file, offset: offset, length: length, base: base,
                done: cached))
    }

    public func write(_ file: LocalFile, offset: UInt64, data: ByteBuffer, dsync: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let promise = eventLoop.makePromise(of: Void.self)
        onRing(of: eventLoop, failing: { promise.fail($0) }) { ring in
            let base = data.withUnsafeReadableBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
            ring.submit(
                LoopRing.Operation(
                    kind: .write(data, dsync: dsync, promise), file: file, offset: offset, length: data.readableBytes,
                    base: base))
        }
        return promise.futureResult
    }

    public func syncData(_ file: LocalFile, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        onRing(of: eventLoop, failing: { promise.fail($0) }) { ring in
            ring.submit(LoopRing.Operation(kind: .syncData(promise), file: file, offset: 0, length: 0))
        }
        return promise.futureResult
    }

    public func allocate(
        _ file: LocalFile, mode: FileAllocation, offset: UInt64, length: UInt64, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        onRing(of: eventLoop, failing: { promise.fail($0) }) { ring in
            ring.submit(
                LoopRing.Operation(
                    kind: .allocate(mode, length: length, promise), file: file, offset: offset, length: 0))
        }
        return promise.futureResult
    }

    /// Runs `body` with the ring of `eventLoop`, on that loop, creating the ring on first use.
    private func onRing(
        of eventLoop: any EventLoop, failing fail: @escaping @Sendable (any Error) -> Void,
        _ body: @escaping @Sendable (LoopRing) -> Void
    ) {
        guard eventLoop.inEventLoop else {
            eventLoop.execute { self.onRing(of: eventLoop, failing: fail, body) }
            return
        }
        let key = ObjectIdentifier(eventLoop)
        if let handle = rings.withLockedValue({ $0[key] }) {
            body(handle.ring)
            return
        }
        do {
            let ring = try LoopRing(eventLoop: eventLoop)
            rings.withLockedValue { $0[key] = LoopRing.Handle(ring: ring, eventLoop: eventLoop) }
            body(ring)
        } catch {
            fail(error)
        }
    }
}

/// One io_uring owned by one event loop: its submission and completion queues, the operations
/// in flight, and the eventfd channel through which the loop learns of late completions.
final class LoopRing {
    /// A ring and its loop, to be kept in a `Sendable` table and used only on that loop.
    struct Handle: @unchecked Sendable {
        let ring: LoopRing
        let eventLoop: any EventLoop
    }

    /// One operation in flight or waiting; `done` counts bytes already transferred. `base`
    /// points into the buffer the operation holds (taken while that buffer was uniquely
    /// referenced, so no copy-on-write can move it).
    struct Operation {
        enum Kind {
            case read(ByteBuffer, @Sendable (Result<ByteBuffer, any Error>) -> Void)
            case write(ByteBuffer, dsync: Bool, EventLoopPromise<Void>)
            case syncData(EventLoopPromise<Void>)
            case allocate(FileAllocation, length: UInt64, EventLoopPromise<Void>)
        }
        var kind: Kind
        let file: LocalFile
        let offset: UInt64
        let length: Int
        var base: UnsafeMutableRawPointer? = nil
        var done = 0
        /// A write through the page cache on the ring as a chain of pieces: their lengths, as
        /// `chainPieces` gave them when the chain went on the ring, and each one's result once
        /// it is in (both empty for a single entry).
        var chain: [UInt32] = []
        var chainResults: [Int32?] = []

        /// The pieces of the rest of a write through the page cache (from `done`) that goes in
        /// pieces (`PageCacheWrites`), as many as one chain takes (`writeChain`); nil for an
        /// operation that goes as one entry. Asks the page cache what it holds: a chain's
        /// pieces are kept in `chain`, not asked for again.
        var chainPieces: [UInt32]? {
            guard case .write(_, dsync: false, _) = kind,
                PageCacheWrites.goesInPieces(file, offset: offset + UInt64(done), length: length - done)
            else { return nil }
            return PageCacheWrites.pieces(offset: offset, length: length, done: done, limit: LoopRing.writeChain)
        }
    }

    /// The most pieces of one write through the page cache on the ring at once, linked so that
    /// one kernel worker writes them in order without coming back to the loop in between (a
    /// chain of separate entries each handed back cost a tenth of 1 MiB writes' speed); past
    /// them the write goes on as after a short write.
    static let writeChain = 16

    private static let submissionEntries: UInt32 = 256
    private static let completionEntries: UInt32 = 4096
    private static let reapBatch = 128
    /// Reads of this many bytes or more are copied by the kernel's own workers (io-wq), beside
    /// the loop: sequential 1 MiB reads of a page-cached file at QD8 went from 1,456 to 1,770
    /// per second; below this, the hand-over to a worker costs more than the copy.
    static let offloadedRead = 256 * 1024
    /// Task work runs at the thread's next system call rather than interrupting it, and the
    /// ring says when some is waiting (liburing's peek then enters the kernel to run it).
    private static let cooperativeFlags = UInt32(IORING_SETUP_COOP_TASKRUN) | UInt32(IORING_SETUP_TASKRUN_FLAG)

    let allocator = ByteBufferAllocator()
    private let eventLoop: any EventLoop
    private var ring = io_uring()
    private let cqes: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private var slots: [Operation?]
    private var freeSlots: [Int]
    private var backlog = CircularBuffer<Operation>()
    private var unsubmitted = 0
    /// A submission of the prepared entries is due at the end of this tick.
    private var submissionScheduled = false
    private var eventChannel: EventLoopFuture<any Channel>?
    private var closed = false

    /// Sets up the ring and its eventfd on `eventLoop` (which must be the current thread).
    init(eventLoop: any EventLoop) throws {
        self.eventLoop = eventLoop
        var params = io_uring_params()
        // Completions the kernel finishes on its own threads (buffered writes on ext4 run in
        // io-wq) reach this thread as task work. By default each one interrupts the thread
        // while it runs (an inter-processor interrupt per write, about a fifth of a 4 KiB
        // write's cost); cooperatively, the work waits for the thread's next system call,
        // which an event loop makes constantly, and a sleeping loop is still woken. A kernel
        // older than 5.19 refuses the flags; the ring is then made without them.
        var result: CInt = -EINVAL
        for flags in [Self.cooperativeFlags, 0] where result == -EINVAL {
            params = io_uring_params()
            params.flags = UInt32(IORING_SETUP_CQSIZE) | flags
            params.cq_entries = Self.completionEntries
            result = io_uring_queue_init_params(Self.submissionEntries, &ring, &params)
        }
        guard result == 0 else { throw LocalIOError(errno: -result, operation: "io_uring_queue_init") }
        cqes = .allocate(capacity: Self.reapBatch)
        slots = Array(repeating: nil, count: Int(params.cq_entries))
        freeSlots = Array((0..<Int(params.cq_entries)).reversed())
        let eventDescriptor = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard eventDescriptor >= 0 else {
            let error = errno
            io_uring_queue_exit(&ring)
            cqes.deallocate()
            throw LocalIOError(errno: error, operation: "eventfd")
        }
        let registered = io_uring_register_eventfd(&ring, eventDescriptor)
        guard registered == 0 else {
            Glibc.close(eventDescriptor)
            io_uring_queue_exit(&ring)
            cqes.deallocate()
            throw LocalIOError(errno: -registered, operation: "io_uring_register_eventfd")
        }
        // Registration completes on a later tick; completions posted before then leave the
        // eventfd readable, which the loop sees as soon as it watches it.
        let ring = NIOLoopBound(Unowned(self), eventLoop: eventLoop)
        eventChannel = NIOPipeBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CompletionSignalHandler(ring: ring.value.ring))
                }
            }
            .takingOwnershipOfDescriptor(input: eventDescriptor)
    }

    /// An unretained reference: the ring owns its eventfd channel, not the other way round.
    private struct Unowned {
        unowned(unsafe) let ring: LoopRing
        init(_ ring: LoopRing) { self.ring = ring }
    }

    deinit {
        cqes.deallocate()
    }

    /// Stops watching the eventfd and tears the ring down; operations still in flight fail.
    func close() {
        guard !closed else { return }
        closed = true
        eventChannel?.whenSuccess { $0.close(promise: nil) }
        eventChannel = nil
        io_uring_queue_exit(&ring)
        let error = LocalIOError(errno: ECANCELED, operation: "io_uring shut down")
        for operation in slots.compactMap({ $0 }) + Array(backlog) { fail(operation, error) }
        slots = []
        backlog.removeAll()
    }

    /// Queues an operation; at the end of the tick, submits what the tick queued and completes
    /// whatever the kernel finished meanwhile.
    func submit(_ operation: Operation) {
        guard !closed else {
            fail(operation, LocalIOError(errno: ECANCELED, operation: "io_uring shut down"))
            return
        }
        enqueue(operation)
        scheduleSubmission()
    }

    /// Submits and reaps once the tick's work is done, or after `delay` (a retry of entries the
    /// kernel did not take); nothing when a submission is already due.
    private func scheduleSubmission(after delay: TimeAmount? = nil) {
        guard !submissionScheduled else { return }
        submissionScheduled = true
        let ring = NIOLoopBound(self, eventLoop: eventLoop)
        let submission: @Sendable () -> Void = {
            let ring = ring.value
            ring.submissionScheduled = false
            guard !ring.closed else { return }
            ring.flushSubmissions()
            ring.reap()
        }
        if let delay {
            eventLoop.scheduleTask(in: delay, submission)
        } else {
            eventLoop.execute(submission)
        }
    }

    /// Called when the eventfd fires: completions arrived after their submission returned.
    func reap() {
        guard !closed else { return }
        while true {
            let count = Int(io_uring_peek_batch_cqe(&ring, cqes, UInt32(Self.reapBatch)))
            if count == 0 { break }
            var finished: [(Operation, Int32)] = []
            finished.reserveCapacity(count)
            for index in 0..<count {
                let cqe = cqes[index]!
                let data = io_uring_cqe_get_data64(cqe)
                let slot = Int(data & 0xffff_ffff)
                guard var operation = slots[slot] else { continue }
                var result = cqe.pointee.res
                // A chain is done when every piece has answered (those after a failed one fail
                // with ECANCELED).
                if !operation.chain.isEmpty {
                    operation.chainResults[Int(data >> 32)] = result
                    guard !operation.chainResults.contains(nil) else {
                        slots[slot] = operation
                        continue
                    }
                    result = PageCacheWrites.outcome(of: operation.chain, results: operation.chainResults.map { $0! })
                }
                finished.append((operation, result))
                slots[slot] = nil
                freeSlots.append(slot)
            }
            io_uring_cq_advance(&ring, UInt32(count))
            for (operation, result) in finished { complete(operation, result: result) }
        }
        // Until an operation finds no room (the ring's queue full and the kernel taking none).
        while !backlog.isEmpty, !freeSlots.isEmpty, enqueue(backlog.removeFirst()) {}
        flushSubmissions()
    }

    // MARK: - Submission

    /// Puts an operation on the ring, or in the backlog when the ring is full; whether it went
    /// on the ring.
    @discardableResult
    private func enqueue(_ operation: Operation) -> Bool {
        guard let slot = freeSlots.popLast() else {
            backlog.append(operation)
            return false
        }
        var operation = operation
        // One entry, or a chain of pieces (no array for the common single entry).
        operation.chain = operation.chainPieces ?? []
        let entries = max(1, operation.chain.count)
        // A chain goes to the kernel in one submission, or it would end where that one ends.
        if io_uring_sq_space_left(&ring) < entries { flushSubmissions() }
        guard io_uring_sq_space_left(&ring) >= entries else {
            freeSlots.append(slot)
            backlog.append(operation)
            return false
        }
        operation.chainResults = Array(repeating: nil, count: operation.chain.count)
        var start = operation.done
        for index in 0..<entries {
            let length = operation.chain.isEmpty ? UInt32(operation.length - start) : operation.chain[index]
            let sqe = io_uring_get_sqe(&ring)!
            prepare(sqe, operation, at: start, length: length)
            if index < entries - 1 { blockgate_sqe_set_link(sqe) }
            io_uring_sqe_set_data64(sqe, UInt64(slot) | UInt64(index) << 32)
            start += Int(length)
        }
        slots[slot] = operation
        unsubmitted += entries
        return true
    }

    /// Prepares `length` bytes of the operation from `start` (bytes into it).
    private func prepare(
        _ sqe: UnsafeMutablePointer<io_uring_sqe>, _ operation: Operation, at start: Int, length: UInt32
    ) {
        let descriptor = operation.file.descriptor
        let offset = operation.offset + UInt64(start)
        switch operation.kind {
        case .read:
            io_uring_prep_read(sqe, descriptor, operation.base! + start, length, offset)
            if operation.length >= Self.offloadedRead { blockgate_sqe_set_async(sqe) }
        case .write(_, let dsync, _):
            io_uring_prep_write(sqe, descriptor, operation.base! + start, length, offset)
            if dsync { blockgate_sqe_set_rw_flags(sqe, blockgate_rwf_dsync()) }
        case .syncData:
            io_uring_prep_fsync(sqe, descriptor, UInt32(IORING_FSYNC_DATASYNC))
        case .allocate(let mode, let length, _):
            io_uring_prep_fallocate(sqe, descriptor, mode.fallocateFlags, off_t(operation.offset), off_t(length))
        }
    }

    /// Hands prepared entries to the kernel. Entries it did not take (it failed, or took fewer,
    /// as when it cannot allocate a request) stay queued and are offered again shortly, so that
    /// none waits for an unrelated operation to come by.
    private func flushSubmissions() {
        guard unsubmitted > 0 else { return }
        var result: CInt
        repeat {
            result = io_uring_submit(&ring)
        } while result == -EINTR
        unsubmitted = Int(io_uring_sq_ready(&ring))
        if unsubmitted > 0 { scheduleSubmission(after: Self.submissionRetry) }
    }

    /// How long entries the kernel did not take wait before they are offered again.
    private static let submissionRetry = TimeAmount.milliseconds(1)

    // MARK: - Completion

    /// Applies one completion: resubmits the rest of a short or retryable transfer, or fulfils
    /// the promise.
    private func complete(_ operation: Operation, result: Int32) {
        var operation = operation
        if result == -EAGAIN || result == -EINTR {
            enqueue(operation)
            return
        }
        let error = result < 0 ? LocalIOError(errno: -result, operation: describe(operation)) : nil
        switch operation.kind {
        case .read(let buffer, let completion):
            if let error { return completion(.failure(error)) }
            if result == 0 {
                (operation.base! + operation.done).initializeMemory(
                    as: UInt8.self, repeating: 0, count: operation.length - operation.done)
                return completion(.success(buffer))
            }
            operation.done += Int(result)
            if operation.done == operation.length { completion(.success(buffer)) } else { enqueue(operation) }
        case .write(_, _, let promise):
            if let error { return promise.fail(error) }
            guard result > 0 else {
                return promise.fail(LocalIOError(errno: EIO, operation: describe(operation)))
            }
            operation.done += Int(result)
            if operation.done == operation.length { promise.succeed(()) } else { enqueue(operation) }
        case .syncData(let promise), .allocate(_, _, let promise):
            if let error { promise.fail(error) } else { promise.succeed(()) }
        }
    }

    private func fail(_ operation: Operation, _ error: LocalIOError) {
        switch operation.kind {
        case .read(_, let completion): completion(.failure(error))
        case .write(_, _, let promise), .syncData(let promise), .allocate(_, _, let promise): promise.fail(error)
        }
    }

    private func describe(_ operation: Operation) -> String {
        let path = operation.file.path
        switch operation.kind {
        case .read: return "read \(path) at \(operation.offset)"
        case .write: return "write \(path) at \(operation.offset)"
        case .syncData: return "fdatasync \(path)"
        case .allocate(let mode, _, _): return "fallocate \(mode) \(path) at \(operation.offset)"
        }
    }
}

/// Watches a ring's eventfd: each signal means completions are waiting.
private final class CompletionSignalHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private unowned(unsafe) let ring: LoopRing

    init(ring: LoopRing) {
        self.ring = ring
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        ring.reap()
    }
}
