import Foundation
import NIOCore
import NIOPosix
import ObjectStore
import Testing

/// The file store's direct writes: objects of every length around the direct-I/O block and the
/// staging buffer (2 MiB) come back as they were put, in one piece or in many, and leave no
/// temporary file.
@Suite struct FileObjectStoreTests {
    private static let staging = 2 << 20

    @Test(arguments: [
        0, 1, 4095, 4096, 4097, 1 << 20, (1 << 20) + 128, staging - 1, staging, staging + 1, 2 * staging + 4096 + 17,
    ])
    func anObjectOfAnyLengthComesBackAsPut(_ length: Int) async throws {
        let directory = NSTemporaryDirectory() + "blockgate-file-store-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = FileObjectStore(root: directory, pool: NIOThreadPool.singleton)
        try await store.prepare()
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ ($0 >> 12)) }
        // Pieces of odd lengths, so that none ends where a block or the staging buffer does.
        var pieces: [ByteBuffer] = []
        var start = 0
        while start < length {
            let count = min(length - start, 1 + (start % 9973) * 37)
            pieces.append(ByteBuffer(bytes: bytes[start..<(start + count)]))
            start += count
        }
        let whole = try ObjectKey("vol/chunks/\(length)-1")
        let inPieces = try ObjectKey("vol/chunks/\(length)-2")
        try await store.put(whole, data: ByteBuffer(bytes: bytes))
        try await store.put(inPieces, pieces: pieces, crc32c: nil)
        for key in [whole, inPieces] {
            let stored = try await store.get(key, range: nil)
            #expect(stored.readableBytes == length)
            #expect(Array(stored.readableBytesView) == bytes)
            #expect(try await store.head(key)?.size == UInt64(length))
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/vol/chunks")
        #expect(left.sorted() == ["\(length)-1", "\(length)-2"])
    }
}
