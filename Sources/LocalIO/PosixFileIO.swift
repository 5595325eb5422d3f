import CURing
import Glibc
import NIOCore
import NIOPosix

/// File I/O with pread/pwrite/fdatasync/fallocate on a pool of threads: the fallback where
/// io_uring is not allowed (seccomp, `kernel.io_uring_disabled`, old kernels).
public final class PosixFileIO: FileIO {
    public let backendName = "posix"
    private let pool: NIOThreadPool
    private let allocator = ByteBufferAllocator()

    /// - Parameter threads: how many blocking calls may run at once.
    public init(threads: Int = 8) {
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }

    public func read(
        _ file: LocalFile, offset: UInt64, length: Int, on eventLoop: any EventLoop,
        completion: @escaping @Sendable (Result<ByteBuffer, any Error>) -> Void
    ) {
        let allocator = self.allocator
        pool.runIfActive(eventLoop: eventLoop) {
            var buffer = allocator.buffer(capacity: length)
            let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { bytes in
                var done = 0
                while done < length {
                    let result = pread(
                        file.descriptor, bytes.baseAddress! + done, length - done, off_t(offset) + off_t(done))
                    if result < 0 {
                        if errno == EINTR || errno == EAGAIN { continue }
                        throw LocalIOError(errno: errno, operation: "read \(file.path) at \(offset)")
                    }
                    if result == 0 {
                        (bytes.baseAddress! + done).initializeMemory(as: UInt8.self, repeating: 0, count: length - done)
                        break
                    }
                    done += result
                }
                return length
            }
            precondition(count == length)
            return buffer
        }.whenComplete(completion)
    }

    public func write(_ file: LocalFile, offset: UInt64, data: ByteBuffer, dsync: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        pool.runIfActive(eventLoop: eventLoop) {
            try data.withUnsafeReadableBytes { bytes in
                let inPieces = !dsync && PageCacheWrites.goesInPieces(file, offset: offset, length: bytes.count)
                var done = 0
                while done < bytes.count {
                    let length =
                        inPieces
                        ? PageCacheWrites.length(at: offset + UInt64(done), remaining: bytes.count - done)
                        : bytes.count - done
                    let result = pwrite(file.descriptor, bytes.baseAddress! + done, length, off_t(offset) + off_t(done))
                    if result < 0 {
                        if errno == EINTR || errno == EAGAIN { continue }
                        throw LocalIOError(errno: errno, operation: "write \(file.path) at \(offset)")
                    }
                    done += result
                }
            }
            if dsync, fdatasync(file.descriptor) != 0 {
                throw LocalIOError(errno: errno, operation: "fdatasync \(file.path)")
            }
        }
    }

    public func syncData(_ file: LocalFile, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        pool.runIfActive(eventLoop: eventLoop) {
            if fdatasync(file.descriptor) != 0 {
                throw LocalIOError(errno: errno, operation: "fdatasync \(file.path)")
            }
        }
    }

    public func allocate(
        _ file: LocalFile, mode: FileAllocation, offset: UInt64, length: UInt64, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        pool.runIfActive(eventLoop: eventLoop) { try file.allocate(mode, offset: offset, length: length) }
    }
}
