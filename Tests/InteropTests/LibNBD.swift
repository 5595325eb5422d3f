import CNBD
import NIOPosix

/// A libnbd connection (the real client library behind nbdinfo, nbdcopy and fio's nbd engine).
/// Every call runs on a `Blocking` thread; libnbd handles are thread-safe.
final class LibNBD: @unchecked Sendable {
    private let handle: OpaquePointer

    struct Failure: Error, CustomStringConvertible {
        let description: String
        /// The errno the server's error mapped to (EIO, EPERM, ENOSPC, …), 0 when none.
        var errno: Int32 = 0
    }

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    /// Connects to an NBD URI, asking for base:allocation; the URI may name local files (the
    /// certificates of an nbds URI).
    static func connect(_ uri: String) async throws -> LibNBD {
        try await Blocking.run {
            guard let handle = nbd_create() else { throw Failure(description: "nbd_create failed") }
            let client = LibNBD(handle: handle)
            nbd_add_meta_context(handle, "base:allocation")
            nbd_set_uri_allow_local_file(handle, true)
            try client.check(nbd_connect_uri(handle, uri))
            return client
        }
    }

    deinit {
        nbd_close(handle)
    }

    var size: UInt64 { UInt64(nbd_get_size(handle)) }
    var canMultiConn: Bool { nbd_can_multi_conn(handle) == 1 }
    var isReadOnly: Bool { nbd_is_read_only(handle) == 1 }

    /// Sends NBD_CMD_DISC, as a client detaching does.
    func shutdown() async throws { try await Blocking.run { try self.check(nbd_shutdown(self.handle, 0)) } }

    func read(_ offset: UInt64, _ count: Int) async throws -> [UInt8] {
        try await Blocking.run {
            var buffer = [UInt8](repeating: 0, count: count)
            try self.check(nbd_pread(self.handle, &buffer, count, offset, 0))
            return buffer
        }
    }

    func write(_ offset: UInt64, _ bytes: [UInt8], fua: Bool = false) async throws {
        try await Blocking.run {
            try self.check(nbd_pwrite(self.handle, bytes, bytes.count, offset, fua ? UInt32(LIBNBD_CMD_FLAG_FUA) : 0))
        }
    }

    func trim(_ offset: UInt64, _ count: UInt64) async throws {
        try await Blocking.run { try self.check(nbd_trim(self.handle, count, offset, 0)) }
    }

    func zero(_ offset: UInt64, _ count: UInt64, noHole: Bool = false) async throws {
        try await Blocking.run {
            try self.check(nbd_zero(self.handle, count, offset, noHole ? UInt32(LIBNBD_CMD_FLAG_NO_HOLE) : 0))
        }
    }

    func flush() async throws { try await Blocking.run { try self.check(nbd_flush(self.handle, 0)) } }

    /// base:allocation extents from `offset`: (length, flags).
    func blockStatus(_ offset: UInt64, _ count: UInt64) async throws -> [(length: UInt64, flags: UInt32)] {
        try await Blocking.run { try self.blockStatusBlocking(offset, count) }
    }

    private func blockStatusBlocking(_ offset: UInt64, _ count: UInt64) throws -> [(length: UInt64, flags: UInt32)] {
        final class Box { var extents: [(UInt64, UInt32)] = [] }
        let box = Box()
        let callback = nbd_extent_callback(
            callback: { userData, _, _, entries, count, _ in
                let box = Unmanaged<Box>.fromOpaque(userData!).takeUnretainedValue()
                for index in stride(from: 0, to: count, by: 2) {
                    box.extents.append((UInt64(entries![index]), entries![index + 1]))
                }
                return 0
            }, user_data: Unmanaged.passUnretained(box).toOpaque(), free: nil)
        try check(nbd_block_status(handle, count, offset, callback, 0))
        return withExtendedLifetime(box) { box.extents.map { (length: $0.0, flags: $0.1) } }
    }

    private func check(_ result: Int32) throws {
        if result == -1 { throw Failure(description: String(cString: nbd_get_error()), errno: nbd_get_errno()) }
    }
}
