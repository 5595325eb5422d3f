import CNBD

/// A libnbd connection (the real client library behind nbdinfo, nbdcopy and fio's nbd engine).
final class LibNBD {
    private let handle: OpaquePointer

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Connects to an NBD URI, asking for base:allocation.
    init(uri: String) throws {
        guard let handle = nbd_create() else { throw Failure(description: "nbd_create failed") }
        self.handle = handle
        nbd_add_meta_context(handle, "base:allocation")
        try check(nbd_connect_uri(handle, uri))
    }

    deinit {
        nbd_close(handle)
    }

    var size: UInt64 { UInt64(nbd_get_size(handle)) }
    var canMultiConn: Bool { nbd_can_multi_conn(handle) == 1 }

    func read(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        try check(nbd_pread(handle, &buffer, count, offset, 0))
        return buffer
    }

    func write(_ offset: UInt64, _ bytes: [UInt8], fua: Bool = false) throws {
        try check(nbd_pwrite(handle, bytes, bytes.count, offset, fua ? UInt32(LIBNBD_CMD_FLAG_FUA) : 0))
    }

    func trim(_ offset: UInt64, _ count: UInt64) throws { try check(nbd_trim(handle, count, offset, 0)) }

    func zero(_ offset: UInt64, _ count: UInt64, noHole: Bool = false) throws {
        try check(nbd_zero(handle, count, offset, noHole ? UInt32(LIBNBD_CMD_FLAG_NO_HOLE) : 0))
    }

    func flush() throws { try check(nbd_flush(handle, 0)) }

    /// base:allocation extents from `offset`: (length, flags).
    func blockStatus(_ offset: UInt64, _ count: UInt64) throws -> [(length: UInt64, flags: UInt32)] {
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
        if result == -1 { throw Failure(description: String(cString: nbd_get_error())) }
    }
}
