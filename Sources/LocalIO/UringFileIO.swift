import CURing
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// File I/O through one io_uring shared by all callers.
///
/// Submission happens on the caller's thread under a lock; completions that the kernel posts
/// during submission (page-cache hits) are reaped right there, so a cached read costs one
/// system call and no thread hop. Completions that come later are reaped by one background
/// thread that waits in `io_uring_enter`. Operations beyond the ring's capacity wait in a backlog.
public final class UringFileIO: FileIO, @unchecked Sendable {
    public let backendName = "io_uring"

    /// One operation in flight or waiting; `done` counts bytes already transferred.
    /// `base` points into the buffer the operation holds (taken while that buffer was uniquely
    /// referenced, so no copy-on-write can move it).
    private struct Operation {
        enum Kind {
            case read(ByteBuffer, EventLoopPromise<ByteBuffer>)
            case write(ByteBuffer, dsync: Bool, EventLoopPromise<Void>)
            case syncData(EventLoopPromise<Void>)
            case allocate(FileAllocation, length: UInt64, EventLoopPromise<Void>)
            /// Wakes the reaper so it can exit.
            case stop
        }
        var kind: Kind
        let file: LocalFile?
        let offset: UInt64
        let length: Int
        var base: UnsafeMutableRawPointer? = nil
        var done = 0
    }

    /// A finished operation whose promise is fulfilled outside the lock.
    private enum Completion {
        case read(EventLoopPromise<ByteBuffer>, Result<ByteBuffer, LocalIOError>)
        case void(EventLoopPromise<Void>, Result<Void, LocalIOError>)

        func deliver() {
            switch self {
            case .read(let promise, let result): promise.completeWith(result.mapError { $0 as any Error })
            case .void(let promise, let result): promise.completeWith(result.mapError { $0 as any Error })
            }
        }
    }

    private static let submissionEntries: UInt32 = 256
    private static let completionEntries: UInt32 = 2048
    private static let reapBatch = 64

    private let ring: UnsafeMutablePointer<io_uring>
    private let cqes: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private let lock = NIOLock()
    private var slots: [Operation?]
    private var freeSlots: [Int]
    private var backlog = CircularBuffer<Operation>()
    private var unsubmitted = 0
    private let reaperPool = NIOThreadPool(numberOfThreads: 1)
    private let allocator = ByteBufferAllocator()

    /// Sets up the ring and starts the reaper thread.
    /// - Throws: `LocalIOError` when the kernel refuses io_uring (ENOSYS, EPERM under seccomp or
    ///   `kernel.io_uring_disabled`).
    public init() throws(LocalIOError) {
        ring = .allocate(capacity: 1)
        var params = io_uring_params()
        params.flags = UInt32(IORING_SETUP_CQSIZE)
        params.cq_entries = Self.completionEntries
        let result = io_uring_queue_init_params(Self.submissionEntries, ring, &params)
        guard result == 0 else {
            ring.deallocate()
            throw LocalIOError(errno: -result, operation: "io_uring_queue_init")
        }
        cqes = .allocate(capacity: Self.reapBatch)
        let capacity = Int(params.cq_entries)
        slots = Array(repeating: nil, count: capacity)
        freeSlots = Array((0..<capacity).reversed())
        reaperPool.start()
        reaperPool.submit { [self] _ in reapUntilStopped() }
    }

    deinit {
        io_uring_queue_exit(ring)
        ring.deallocate()
        cqes.deallocate()
    }

    /// Wakes the reaper with a marker it alone consumes (nothing else submits by then) and waits
    /// for its thread to end.
    public func shutdown() async {
        lock.withLock {
            enqueue(Operation(kind: .stop, file: nil, offset: 0, length: 0))
            flushSubmissions()
        }
        try? await reaperPool.shutdownGracefully()
    }

    public func read(_ file: LocalFile, offset: UInt64, length: Int, on eventLoop: any EventLoop)
        -> EventLoopFuture<ByteBuffer>
    {
        let promise = eventLoop.makePromise(of: ByteBuffer.self)
        var buffer = allocator.buffer(capacity: length)
        let base = buffer.withUnsafeMutableWritableBytes { $0.baseAddress! }
        buffer.moveWriterIndex(forwardBy: length)
        submit([Operation(kind: .read(buffer, promise), file: file, offset: offset, length: length, base: base)])
        return promise.futureResult
    }

    public func write(_ file: LocalFile, offset: UInt64, data: ByteBuffer, dsync: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let promise = eventLoop.makePromise(of: Void.self)
        let base = data.withUnsafeReadableBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
        submit([
            Operation(
                kind: .write(data, dsync: dsync, promise), file: file, offset: offset, length: data.readableBytes,
                base: base)
        ])
        return promise.futureResult
    }

    public func syncData(_ file: LocalFile, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        submit([Operation(kind: .syncData(promise), file: file, offset: 0, length: 0)])
        return promise.futureResult
    }

    public func allocate(
        _ file: LocalFile, mode: FileAllocation, offset: UInt64, length: UInt64, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        submit([Operation(kind: .allocate(mode, length: length, promise), file: file, offset: offset, length: 0)])
        return promise.futureResult
    }

    // MARK: - Ring

    /// Queues operations, submits them, and delivers whatever has completed meanwhile.
    private func submit(_ operations: [Operation]) {
        var completions: [Completion] = []
        lock.withLock {
            for operation in operations { enqueue(operation) }
            flushSubmissions()
            reap(into: &completions)
        }
        for completion in completions { completion.deliver() }
    }

    /// Puts an operation on the ring, or in the backlog when the ring is full. Lock held.
    private func enqueue(_ operation: Operation) {
        guard let slot = freeSlots.popLast() else {
            backlog.append(operation)
            return
        }
        var sqe = io_uring_get_sqe(ring)
        if sqe == nil {
            flushSubmissions()
            sqe = io_uring_get_sqe(ring)
        }
        guard let sqe else {
            freeSlots.append(slot)
            backlog.append(operation)
            return
        }
        prepare(sqe, operation)
        io_uring_sqe_set_data64(sqe, UInt64(slot))
        slots[slot] = operation
        unsubmitted += 1
    }

    private func prepare(_ sqe: UnsafeMutablePointer<io_uring_sqe>, _ operation: Operation) {
        let descriptor = operation.file?.descriptor ?? -1
        let offset = operation.offset + UInt64(operation.done)
        let remaining = UInt32(operation.length - operation.done)
        switch operation.kind {
        case .read:
            io_uring_prep_read(sqe, descriptor, operation.base! + operation.done, remaining, offset)
        case .write(_, let dsync, _):
            io_uring_prep_write(sqe, descriptor, operation.base! + operation.done, remaining, offset)
            if dsync { blockgate_sqe_set_rw_flags(sqe, blockgate_rwf_dsync()) }
        case .syncData:
            io_uring_prep_fsync(sqe, descriptor, UInt32(IORING_FSYNC_DATASYNC))
        case .allocate(let mode, let length, _):
            let flags =
                switch mode {
                case .punchHole: FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                case .zeroRange: FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
                }
            io_uring_prep_fallocate(sqe, descriptor, flags, off_t(operation.offset), off_t(length))
        case .stop:
            io_uring_prep_nop(sqe)
        }
    }

    /// Hands prepared entries to the kernel. Lock held.
    private func flushSubmissions() {
        guard unsubmitted > 0 else { return }
        var result: CInt
        repeat {
            result = io_uring_submit(ring)
        } while result == -EINTR
        if result >= 0 { unsubmitted = 0 }
    }

    /// Takes every posted completion off the ring; resubmits short transfers; refills from the
    /// backlog. Lock held. Returns whether the stop marker was seen.
    @discardableResult
    private func reap(into completions: inout [Completion]) -> Bool {
        var stopped = false
        while true {
            let count = Int(io_uring_peek_batch_cqe(ring, cqes, UInt32(Self.reapBatch)))
            if count == 0 { break }
            for index in 0..<count {
                let cqe = cqes[index]!
                let slot = Int(io_uring_cqe_get_data64(cqe))
                let result = cqe.pointee.res
                guard var operation = slots[slot] else { continue }
                slots[slot] = nil
                freeSlots.append(slot)
                if case .stop = operation.kind {
                    stopped = true
                    continue
                }
                if let completion = advance(&operation, result: result) {
                    completions.append(completion)
                } else {
                    enqueue(operation)
                }
            }
            io_uring_cq_advance(ring, UInt32(count))
        }
        while !backlog.isEmpty, !freeSlots.isEmpty {
            enqueue(backlog.removeFirst())
        }
        flushSubmissions()
        return stopped
    }

    /// Applies one completion result; returns the completion when the operation is finished,
    /// nil when the rest must be submitted again.
    private func advance(_ operation: inout Operation, result: Int32) -> Completion? {
        if result == -EAGAIN || result == -EINTR { return nil }
        let error = result < 0 ? LocalIOError(errno: -result, operation: describe(operation)) : nil
        switch operation.kind {
        case .read(let buffer, let promise):
            if let error { return .read(promise, .failure(error)) }
            if result == 0 {
                (operation.base! + operation.done).initializeMemory(
                    as: UInt8.self, repeating: 0, count: operation.length - operation.done)
                return .read(promise, .success(buffer))
            }
            operation.done += Int(result)
            return operation.done == operation.length ? .read(promise, .success(buffer)) : nil
        case .write(_, _, let promise):
            if let error { return .void(promise, .failure(error)) }
            if result == 0 {
                return .void(promise, .failure(LocalIOError(errno: EIO, operation: describe(operation))))
            }
            operation.done += Int(result)
            return operation.done == operation.length ? .void(promise, .success(())) : nil
        case .syncData(let promise), .allocate(_, _, let promise):
            return .void(promise, error.map { .failure($0) } ?? .success(()))
        case .stop:
            return nil
        }
    }

    private func describe(_ operation: Operation) -> String {
        let path = operation.file?.path ?? "-"
        switch operation.kind {
        case .read: return "read \(path) at \(operation.offset)"
        case .write: return "write \(path) at \(operation.offset)"
        case .syncData: return "fdatasync \(path)"
        case .allocate(let mode, _, _): return "fallocate \(mode) \(path) at \(operation.offset)"
        case .stop: return "stop"
        }
    }

    /// The reaper: waits for completions the kernel posts after submission returned.
    private func reapUntilStopped() {
        let ringDescriptor = UInt32(ring.pointee.ring_fd)
        while true {
            _ = io_uring_enter(ringDescriptor, 0, 1, UInt32(IORING_ENTER_GETEVENTS), nil)
            var completions: [Completion] = []
            let stopped = lock.withLock { reap(into: &completions) }
            for completion in completions { completion.deliver() }
            if stopped { return }
        }
    }
}
