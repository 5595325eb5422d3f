import Logging
import NIOCore

/// Asynchronous positioned I/O on local files: the chunk engine's only way to disk.
/// Futures complete on the event loop passed in; failures are `LocalIOError`.
public protocol FileIO: Sendable {
    /// A short name for logs ("io_uring", "posix").
    var backendName: String { get }

    /// Reads exactly `length` bytes at `offset` (bytes past the end of the file read as zeros) and
    /// hands them, or the failure, to `completion` on `eventLoop`. The read path answers a request
    /// with this and one future of its own; `read(_:offset:length:on:)` is the same as a future.
    func read(
        _ file: LocalFile, offset: UInt64, length: Int, on eventLoop: any EventLoop,
        completion: @escaping @Sendable (Result<ByteBuffer, any Error>) -> Void)
    /// Writes all of `data` at `offset`; with `dsync` the data is on stable storage when the future succeeds.
    func write(_ file: LocalFile, offset: UInt64, data: ByteBuffer, dsync: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    /// fdatasync: every completed write to the file is on stable storage.
    func syncData(_ file: LocalFile, on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// fallocate with `mode` (e.g. punch a hole, zero a range).
    func allocate(_ file: LocalFile, mode: FileAllocation, offset: UInt64, length: UInt64, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    /// Stops the backend's threads; no call may follow.
    func shutdown() async
}

extension FileIO {
    /// Reads exactly `length` bytes at `offset` (bytes past the end of the file read as zeros).
    public func read(_ file: LocalFile, offset: UInt64, length: Int, on eventLoop: any EventLoop)
        -> EventLoopFuture<ByteBuffer>
    {
        let promise = eventLoop.makePromise(of: ByteBuffer.self)
        read(file, offset: offset, length: length, on: eventLoop) { promise.completeWith($0) }
        return promise.futureResult
    }
}

/// What an `allocate` call does to a range.
public enum FileAllocation: Sendable, Equatable {
    /// Deallocate the range; it reads as zeros (FALLOC_FL_PUNCH_HOLE | KEEP_SIZE).
    case punchHole
    /// Make the range read as zeros, keeping it allocated (FALLOC_FL_ZERO_RANGE | KEEP_SIZE).
    case zeroRange
}

/// Which backend to use.
public enum FileIOBackendChoice: String, Sendable, CaseIterable {
    /// io_uring when the kernel allows it, else POSIX.
    case auto
    /// io_uring or fail.
    case uring
    /// pread/pwrite on a thread pool.
    case posix
}

/// Builds the file I/O backend for this process.
/// - Parameters:
///   - choice: the backend wanted.
///   - logger: gets one line saying which backend runs, and why when it is the fallback.
/// - Throws: `LocalIOError` when `.uring` was demanded and is not available.
public func makeFileIO(_ choice: FileIOBackendChoice, logger: Logger) throws -> any FileIO {
    switch choice {
    case .posix:
        logger.info("local I/O: POSIX pread/pwrite (chosen by configuration)")
        return PosixFileIO()
    case .uring:
        let io = try UringFileIO()
        logger.info("local I/O: io_uring")
        return io
    case .auto:
        do {
            let io = try UringFileIO()
            logger.info("local I/O: io_uring")
            return io
        } catch {
            logger.notice("local I/O: io_uring unavailable (\(error)); using POSIX pread/pwrite")
            return PosixFileIO()
        }
    }
}
