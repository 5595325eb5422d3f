import Foundation
import Glibc
import NIOCore
import NIOPosix

/// The embedded object store: each object is a file under a directory (keys' "/" become
/// subdirectories). A put writes a temporary file, fsyncs it and renames it into place, so an
/// object is either wholly there or not at all, also after a crash. Objects stored are not kept
/// in memory: a put writes around the page cache where the filesystem allows it
/// (`DirectFileWriting`), and drops what went through it once synced (a store of many GiB would
/// otherwise grow it by every byte stored, which costs the processor more than the copy into it
/// where memory is first touched, as in a virtual machine); reads bring back what they read.
public final class FileObjectStore: ObjectStore {
    /// The directory holding the objects.
    public let root: String
    private let pool: NIOThreadPool
    private let directWriting = DirectFileWriting()

    /// - Parameters:
    ///   - root: the directory (created by `prepare`).
    ///   - pool: threads for the blocking file calls.
    public init(root: String, pool: NIOThreadPool) {
        self.root = root
        self.pool = pool
    }

    public func prepare() async throws {
        try await pool.runIfActive {
            try FileManager.default.createDirectory(atPath: self.root, withIntermediateDirectories: true)
        }
    }

    public func put(_ key: ObjectKey, data: ByteBuffer) async throws {
        try await put(key, pieces: [data], crc32c: nil)
    }

    /// Writes the pieces one after another into the temporary file: they are never joined.
    public func put(_ key: ObjectKey, pieces: [ByteBuffer], crc32c: UInt32?) async throws {
        try await pool.runIfActive {
            let path = self.path(key)
            let directory = (path as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let temporary = "\(directory)/.tmp-\(UInt64.random(in: 0...UInt64.max))"
            let direct = DirectFileWriting.create(temporary)
            let descriptor = direct ?? open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw Self.failure("create \(temporary)") }
            do {
                if direct != nil {
                    try self.directWriting.write(pieces, to: descriptor)
                } else {
                    try Self.writeAll(pieces, to: descriptor, path: temporary)
                }
                guard fsync(descriptor) == 0 else { throw Self.failure("fsync \(temporary)") }
                // Clean once synced, so dropped at once; only advice, so a refusal changes nothing.
                _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
                close(descriptor)
            } catch {
                close(descriptor)
                unlink(temporary)
                throw error
            }
            guard rename(temporary, path) == 0 else {
                unlink(temporary)
                throw Self.failure("rename \(temporary)")
            }
            try Self.syncDirectory(directory)
        }
    }

    /// The most pieces one writev takes (Linux's IOV_MAX).
    private static let maximumIOVecs = 1024

    /// Writes the pieces one after another at the descriptor's position, as many in one call as
    /// it takes (writev), through short writes and EINTR.
    private static func writeAll(_ pieces: [ByteBuffer], to descriptor: Int32, path: String) throws {
        var iovecs: [iovec] = []
        iovecs.reserveCapacity(pieces.count)
        // Keeps the pieces' storage alive and unmoved while their addresses are in use.
        try withExtendedLifetime(pieces) {
            for piece in pieces where piece.readableBytes > 0 {
                piece.withUnsafeReadableBytes { bytes in
                    iovecs.append(
                        iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
                }
            }
            var first = 0
            while first < iovecs.count {
                let count = Int32(min(iovecs.count - first, Self.maximumIOVecs))
                let result = iovecs[first...].withUnsafeBufferPointer { writev(descriptor, $0.baseAddress, count) }
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { throw failure("write \(path)") }
                // Skips the pieces written whole, then the written part of the next.
                var left = result
                while first < iovecs.count, left >= iovecs[first].iov_len {
                    left -= iovecs[first].iov_len
                    first += 1
                }
                if left > 0 {
                    iovecs[first].iov_base += left
                    iovecs[first].iov_len -= left
                }
            }
        }
    }

    public func get(_ key: ObjectKey, range: Range<UInt64>?) async throws -> ByteBuffer {
        try await pool.runIfActive {
            let path = self.path(key)
            let descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else {
                if errno == ENOENT { throw ObjectStoreError(.notFound, "no object \(key)") }
                throw Self.failure("open \(path)")
            }
            defer { close(descriptor) }
            var status = stat()
            guard fstat(descriptor, &status) == 0 else { throw Self.failure("stat \(path)") }
            let size = UInt64(status.st_size)
            let wanted = range.map { $0.clamped(to: 0..<size) } ?? 0..<size
            var buffer = ByteBuffer.aligned(capacity: wanted.count)
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted.count) { bytes in
                var done = 0
                while done < wanted.count {
                    let result = pread(
                        descriptor, bytes.baseAddress! + done, wanted.count - done,
                        off_t(wanted.lowerBound) + off_t(done))
                    if result < 0 && errno == EINTR { continue }
                    guard result > 0 else { throw Self.failure("read \(path)") }
                    done += result
                }
                return done
            }
            return buffer
        }
    }

    /// Opens an object's file for reading, for a server that sends it without copying it
    /// (sendfile): the handle, which the caller closes, and the object's size; nil when there is
    /// no such object. Blocks for an open and a stat of a local file.
    public func openForSending(_ key: ObjectKey) throws -> (file: NIOFileHandle, size: UInt64)? {
        let path = self.path(key)
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw Self.failure("open \(path)")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            close(descriptor)
            throw Self.failure("stat \(path)")
        }
        return (NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor), UInt64(status.st_size))
    }

    public func head(_ key: ObjectKey) async throws -> ObjectInfo? {
        try await pool.runIfActive {
            var status = stat()
            guard stat(self.path(key), &status) == 0 else {
                if errno == ENOENT { return nil }
                throw Self.failure("stat \(self.path(key))")
            }
            return ObjectInfo(key: key.rawValue, size: UInt64(status.st_size))
        }
    }

    public func delete(_ key: ObjectKey) async throws {
        try await pool.runIfActive {
            guard unlink(self.path(key)) == 0 || errno == ENOENT else { throw Self.failure("unlink \(key)") }
        }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        try await pool.runIfActive {
            // Walk only the directory the prefix's last "/" names.
            let base = prefix.lastIndex(of: "/").map { String(prefix[..<$0]) } ?? ""
            let start = base.isEmpty ? self.root : "\(self.root)/\(base)"
            guard let enumerator = FileManager.default.enumerator(atPath: start) else { return [] }
            var objects: [ObjectInfo] = []
            while let relative = enumerator.nextObject() as? String {
                let key = base.isEmpty ? relative : "\(base)/\(relative)"
                var status = stat()
                guard key.hasPrefix(prefix), !(relative as NSString).lastPathComponent.hasPrefix(".tmp-"),
                    stat("\(start)/\(relative)", &status) == 0, status.st_mode & S_IFMT == S_IFREG
                else { continue }
                objects.append(ObjectInfo(key: key, size: UInt64(status.st_size)))
            }
            return objects.sorted { $0.key < $1.key }
        }
    }

    private func path(_ key: ObjectKey) -> String { "\(root)/\(key.rawValue)" }

    private static func syncDirectory(_ directory: String) throws {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("open \(directory)") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw failure("fsync \(directory)") }
    }

    private static func failure(_ operation: String) -> ObjectStoreError {
        ObjectStoreError(.unavailable, "\(operation): \(String(cString: strerror(errno)))")
    }
}
