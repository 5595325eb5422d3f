import Glibc
import LocalIO
import NIOConcurrencyHelpers
import NIOCore

/// Writes a new file's bytes around the page cache (`O_DIRECT`): the bytes are copied into an
/// aligned staging buffer and written from there, `stagingSize` at a time; the last partial
/// block goes through the page cache. A store that syncs every object and keeps none in memory
/// gains twice: the kernel copies nothing into page-cache pages it must first allocate (in a
/// virtual machine that hands freed memory back to its host, a fresh page costs more than the
/// copy into it), and the sync only has to flush the device.
///
/// Owns the staging buffers: taken by one write at a time, kept for the next (at most
/// `keptBuffers`), so that their memory is touched once.
final class DirectFileWriting: Sendable {
    /// The alignment direct I/O needs of memory, offsets and lengths.
    static let alignment = LocalFile.directAlignment
    /// Bytes one staging buffer holds: a default chunk object (1 MiB and its frame checksums) in
    /// one write.
    static let stagingSize = 2 << 20
    private static let keptBuffers = 16

    private let kept = NIOLockedValueBox<[StagingBuffer]>([])

    /// Opens `path` as a new file (`O_EXCL`) for direct writes; nil when that fails (its
    /// filesystem may have no direct I/O), with no file left behind by the attempt.
    static func create(_ path: String) -> Int32? {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | LocalFile.directFlag, 0o600)
        guard descriptor < 0 else { return descriptor }
        // Refused for O_DIRECT only once the file was created.
        if errno == EINVAL { unlink(path) }
        return nil
    }

    /// Writes `pieces`, one after another, from the start of the empty file `descriptor` (opened
    /// by `create`).
    func write(_ pieces: [ByteBuffer], to descriptor: Int32) throws {
        let staging = kept.withLockedValue { $0.popLast() } ?? StagingBuffer()
        defer { kept.withLockedValue { if $0.count < Self.keptBuffers { $0.append(staging) } } }
        let base = staging.memory.baseAddress!
        var offset = 0
        var filled = 0
        for piece in pieces {
            try piece.withUnsafeReadableBytes { bytes in
                var done = 0
                while done < bytes.count {
                    let taken = min(bytes.count - done, Self.stagingSize - filled)
                    (base + filled).copyMemory(from: bytes.baseAddress! + done, byteCount: taken)
                    done += taken
                    filled += taken
                    guard filled == Self.stagingSize else { continue }
                    try Self.write(base, filled, at: offset, to: descriptor)
                    offset += filled
                    filled = 0
                }
            }
        }
        let whole = filled & ~(Self.alignment - 1)
        if whole > 0 { try Self.write(base, whole, at: offset, to: descriptor) }
        guard filled > whole else { return }
        // The last partial block through the page cache: direct writes take whole blocks only.
        try Self.clearDirect(descriptor)
        try Self.write(base + whole, filled - whole, at: offset + whole, to: descriptor)
    }

    /// Writes `count` bytes at `offset`, through short writes and EINTR.
    private static func write(_ bytes: UnsafeRawPointer, _ count: Int, at offset: Int, to descriptor: Int32) throws {
        var done = 0
        while done < count {
            let result = pwrite(descriptor, bytes + done, count - done, off_t(offset + done))
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw failure("write") }
            done += result
        }
    }

    private static func failure(_ operation: String) -> ObjectStoreError {
        ObjectStoreError(.unavailable, "direct \(operation): \(String(cString: strerror(errno)))")
    }

    private static func clearDirect(_ descriptor: Int32) throws {
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0, fcntl(descriptor, F_SETFL, flags & ~LocalFile.directFlag) == 0 else {
            throw failure("fcntl")
        }
    }
}

/// One staging buffer's aligned memory, freed with it.
private final class StagingBuffer: @unchecked Sendable {
    let memory: UnsafeMutableRawBufferPointer

    init() {
        memory = .allocate(byteCount: DirectFileWriting.stagingSize, alignment: DirectFileWriting.alignment)
    }

    deinit { memory.deallocate() }
}
