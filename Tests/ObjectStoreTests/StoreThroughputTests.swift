import NIOCore
import ObjectStore
import Testing

/// The store measurement that `blockgate objstore bench` and `make bench` take the ceiling from:
/// it stores, checks and deletes what it says, on every backend.
@Suite struct StoreThroughputTests {
    @Test(arguments: Backend.allCases)
    func storesChecksAndDeletesEveryObject(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let bench = StoreThroughput(store: fixture.store, prefix: "bench/run", objects: 9, size: 70_001, concurrency: 4)
        _ = try await bench.put()
        let stored = try await fixture.store.list(prefix: "bench/run/")
        #expect(stored.map(\.key).sorted() == (0..<9).map { "bench/run/\($0)" }.sorted())
        #expect(stored.allSatisfy { $0.size == 70_001 })
        // Each object carries its number; the rest is one pattern.
        let first = try await fixture.store.get(try bench.key(0), range: nil)
        let fifth = try await fixture.store.get(try bench.key(5), range: nil)
        #expect(first.getInteger(at: first.readerIndex, as: UInt64.self) == 0)
        #expect(fifth.getInteger(at: fifth.readerIndex, as: UInt64.self) == 5)
        #expect(
            first.getSlice(at: first.readerIndex + 8, length: 69_993)
                == fifth.getSlice(at: fifth.readerIndex + 8, length: 69_993))
        _ = try await bench.get()
        _ = try await bench.delete()
        #expect(try await fixture.store.list(prefix: "bench/run/").isEmpty)
        await fixture.close()
    }

    @Test(arguments: [Backend.file, .emulator])
    func aGetFailsOnAWrongObject(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let bench = StoreThroughput(store: fixture.store, prefix: "bench", objects: 6, size: 4096, concurrency: 3)
        _ = try await bench.put()
        // Object 4 holding object 2's bytes, then a short object 3.
        try await fixture.store.put(try bench.key(4), data: try await fixture.store.get(try bench.key(2), range: nil))
        await #expect(throws: ObjectStoreError(.invalidResponse, "bench/4 came back as 4096 bytes of other contents")) {
            _ = try await bench.get()
        }
        try await fixture.store.put(try bench.key(4), data: ByteBuffer(integer: UInt64(4)))
        await #expect(throws: ObjectStoreError(.invalidResponse, "bench/4 came back as 8 bytes of other contents")) {
            _ = try await bench.get()
        }
        try await fixture.store.delete(try bench.key(4))
        await #expect(throws: ObjectStoreError(.notFound, "no object bench/4")) { _ = try await bench.get() }
        await fixture.close()
    }
}
