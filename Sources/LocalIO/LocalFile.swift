import CURing
import Glibc
import NIOCore
import Synchronization

/// An open file on local disk, closed when the last reference goes; I/O in flight keeps a
/// reference, so the descriptor outlives every request that uses it.
public final class LocalFile: Sendable {
    /// The descriptor.
    public let descriptor: CInt
    /// The path it was opened at (for messages).
    public let path: String
    /// Opened for direct I/O (`openDirect`): its transfers bypass the page cache.
    public let isDirect: Bool

    private init(descriptor: CInt, path: String, isDirect: Bool = false) {
        self.descriptor = descriptor
        self.path = path
        self.isDirect = isDirect
    }

    deinit {
        close(descriptor)
    }

    /// Opens (creating if needed) a file read-write and sets its length.
    /// - Parameters:
    ///   - path: where the file lives.
    ///   - length: the length to give it (a sparse extension costs no space).
    /// - Throws: `LocalIOError` with the errno of the failed call.
    public static func open(path: String, length: UInt64) throws(LocalIOError) -> LocalFile {
        let descriptor = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw LocalIOError(errno: errno, operation: "open \(path)") }
        let file = LocalFile(descriptor: descriptor, path: path)
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw LocalIOError(errno: errno, operation: "fstat \(path)") }
        if UInt64(status.st_size) != length, ftruncate(descriptor, off_t(length)) != 0 {
            throw LocalIOError(errno: errno, operation: "ftruncate \(path)")
        }
        return file
    }

    /// The open(2) flag of direct I/O (O_DIRECT, which Swift's Glibc does not export).
    public static var directFlag: Int32 { blockgate_o_direct() }

    /// Opens an existing file a second time for direct I/O (O_DIRECT: no page cache), for writes
    /// of data the process has in memory and will not soon read again; nil where the filesystem
    /// refuses direct I/O (tmpfs, for one). Writes through it need `isDirectAligned` buffers.
    public static func openDirect(path: String) -> LocalFile? {
        let descriptor = Glibc.open(path, O_RDWR | O_CLOEXEC | directFlag)
        return descriptor >= 0 ? LocalFile(descriptor: descriptor, path: path, isDirect: true) : nil
    }

    /// Turns the kernel's read-ahead off for this descriptor (POSIX_FADV_RANDOM): for a file
    /// with holes that direct writes fill, where read-ahead would read those holes as zeros into
    /// the page cache only for the direct write to throw them out again.
    public func adviseRandomAccess() {
        _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_RANDOM)
    }

    /// A range of this file to hand to a socket without copying it (sendfile), when the page
    /// cache holds every page of it now, so that sending it soon waits for no disk; nil
    /// otherwise, or when the kernel cannot tell (before Linux 6.5). The region reads through a
    /// descriptor of its own, which whoever sends it closes: it may outlive this file.
    public func cachedRegion(offset: UInt64, length: Int) -> FileRegion? {
        guard pageCacheHolds(offset: offset, length: length) else { return nil }
        let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { return nil }
        return FileRegion(
            fileHandle: NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: copy), readerIndex: Int(offset),
            endIndex: Int(offset) + length)
    }

    /// Whether the page cache holds every page of a range now (cachestat); false when it does
    /// not, or when the kernel cannot tell (before Linux 6.5).
    public func pageCacheHolds(offset: UInt64, length: Int) -> Bool {
        guard length > 0, !Self.cachestatRefused.load(ordering: .relaxed) else { return false }
        let page = Self.pageSize
        let pages = (offset + UInt64(length) - 1) / page - offset / page + 1
        let cached = blockgate_cached_pages(descriptor, Int64(offset), Int64(length))
        if cached < 0, errno == ENOSYS || errno == EPERM { Self.cachestatRefused.store(true, ordering: .relaxed) }
        return cached == Int64(pages)
    }

    /// The page size, asked once: `pageCacheHolds` runs for each large write.
    private static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    /// The kernel refused cachestat (older than 6.5, or seccomp): no more calls are made.
    private static let cachestatRefused = Atomic(false)

    /// The alignment of memory, file offsets and lengths that direct I/O asks for (the largest
    /// logical block size a Linux filesystem has).
    public static let directAlignment = 4096

    /// Whether `data` may be written at `offset` through a file opened by `openDirect`.
    public static func isDirectAligned(_ data: ByteBuffer, offset: UInt64) -> Bool {
        let alignment = directAlignment
        guard offset % UInt64(alignment) == 0, data.readableBytes % alignment == 0 else { return false }
        return data.withUnsafeReadableBytes { Int(bitPattern: $0.baseAddress) % alignment == 0 }
    }

    /// fdatasync, blocking: for startup and recovery, not for the data path.
    public func syncData() throws(LocalIOError) {
        guard fdatasync(descriptor) == 0 else { throw LocalIOError(errno: errno, operation: "fdatasync \(path)") }
    }

    /// fallocate with `mode`, blocking: for recovery and the POSIX backend's threads, not for an
    /// event loop.
    public func allocate(_ mode: FileAllocation, offset: UInt64, length: UInt64) throws(LocalIOError) {
        guard blockgate_fallocate(descriptor, mode.fallocateFlags, Int64(offset), Int64(length)) == 0 else {
            throw LocalIOError(errno: errno, operation: "fallocate \(mode) \(path) at \(offset)")
        }
    }

    /// Bytes of disk the file occupies.
    public func allocatedBytes() throws(LocalIOError) -> UInt64 {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw LocalIOError(errno: errno, operation: "fstat \(path)") }
        return UInt64(status.st_blocks) * 512
    }

    /// The data (non-hole) ranges of the file within `range`, from SEEK_DATA/SEEK_HOLE.
    public func dataRanges(in range: Range<UInt64>) throws(LocalIOError) -> [Range<UInt64>] {
        var ranges: [Range<UInt64>] = []
        var position = range.lowerBound
        while position < range.upperBound {
            let dataStart = lseek(descriptor, off_t(position), blockgate_seek_data())
            if dataStart < 0 {
                if errno == ENXIO { break }
                throw LocalIOError(errno: errno, operation: "lseek SEEK_DATA \(path)")
            }
            guard UInt64(dataStart) < range.upperBound else { break }
            let holeStart = lseek(descriptor, dataStart, blockgate_seek_hole())
            guard holeStart >= 0 else { throw LocalIOError(errno: errno, operation: "lseek SEEK_HOLE \(path)") }
            let end = min(UInt64(holeStart), range.upperBound)
            ranges.append(UInt64(dataStart)..<end)
            position = end
        }
        return ranges
    }
}

/// A failed system call on a local file.
public struct LocalIOError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The errno value.
    public let errno: CInt
    /// What was being done.
    public let operation: String

    public init(errno: CInt, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    /// Whether the failure means the disk is full.
    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT || errno == EFBIG }

    /// Whether the failure means the file refuses a direct write of that alignment (EINVAL).
    public var refusesDirectIO: Bool { errno == EINVAL }

    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

extension FileAllocation {
    /// The fallocate(2) mode bits of this allocation.
    var fallocateFlags: CInt {
        switch self {
        case .punchHole: FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
        case .zeroRange: FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
        }
    }
}
