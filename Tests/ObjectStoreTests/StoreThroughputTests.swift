import NIOCore
import ObjectStore
import Testing

/// The store measurement that `blockgate objstore bench` and `make bench` take the ceiling from:
/// it stores, checks and deletes what it says, on every backend.
@Suite struct StoreThroughputTests {
    @Test(arguments: Backend.allCases)
    func storesChecksAndDeletesEveryObject(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let bench = try StoreThroughput(
            store: fixture.store, prefix: "bench/run", objects: 9, size: 70_001, concurrency: 4)
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
        let bench = try StoreThroughput(store: fixture.store, prefix: "bench", objects: 6, size: 4096, concurrency: 3)
        _ = try await bench.put()
        // Object 4 holding object 2's bytes, then a short object 4.
        try await fixture.store.put(try bench.key(4), data: try await fixture.store.get(try bench.key(2), range: nil))
        await #expect(throws: Self.wrong("bench/4", "4096 bytes numbered 2", "4096 bytes numbered 4")) {
            _ = try await bench.get()
        }
        try await fixture.store.put(try bench.key(4), data: ByteBuffer(integer: UInt64(4)))
        await #expect(throws: Self.wrong("bench/4", "8 bytes numbered 4", "4096 bytes numbered 4")) {
            _ = try await bench.get()
        }
        try await fixture.store.delete(try bench.key(4))
        await #expect(throws: ObjectStoreError(.notFound, "no object bench/4")) { _ = try await bench.get() }
        // Fewer objects than workers, the last one wrong: the error still ends the run.
        let few = try StoreThroughput(store: fixture.store, prefix: "bench", objects: 3, size: 4096, concurrency: 8)
        try await fixture.store.put(try few.key(2), data: ByteBuffer(integer: UInt64(7)))
        await #expect(throws: Self.wrong("bench/2", "8 bytes numbered 7", "4096 bytes numbered 2")) {
            _ = try await few.get()
        }
        await fixture.close()
    }

    @Test func aPrefixThatMakesNoKeyIsRefused() async throws {
        let fixture = try await StoreFixture(.file)
        for prefix in ["", "kept/", "/abs", "a b"] {
            #expect(throws: ObjectStoreError.self) {
                try StoreThroughput(store: fixture.store, prefix: prefix, objects: 1, size: 8, concurrency: 1)
            }
        }
        await fixture.close()
    }

    private static func wrong(_ key: String, _ found: String, _ expected: String) -> ObjectStoreError {
        ObjectStoreError(
            .invalidResponse, "\(key) is \(found), not \(expected): stored by another run? (give each its own --prefix)"
        )
    }
}
