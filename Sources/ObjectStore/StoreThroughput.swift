import NIOConcurrencyHelpers
import NIOCore

/// Measures what an object store sustains through this client: `objects` objects of `size`
/// bytes under `prefix`, `concurrency` requests in flight, PUT, GET or DELETE. It is the
/// ceiling a gateway's uploads and cold reads are compared with, since it pays what they pay on
/// the wire (signing, the payload's CRC32C, the connection pool) and nothing of theirs (object
/// format, cache, NBD).
///
/// Object `i` holds a shared random pattern with `i` in its first 8 bytes; a GET checks the
/// length and that number, so an answer of the wrong size or the wrong object fails the run.
/// Each of the `concurrency` workers stores from a buffer of its own, numbering it in place, so
/// that no PUT copies its object.
public struct StoreThroughput: Sendable {
    public let store: any ObjectStore
    public let prefix: String
    public let objects: Int
    public let size: Int
    public let concurrency: Int

    /// - Throws: `ObjectStoreError` `.rejected` for a prefix that makes no valid key.
    /// - Precondition: `objects`, `concurrency` ≥ 1 and `size` ≥ 8.
    public init(store: any ObjectStore, prefix: String, objects: Int, size: Int, concurrency: Int)
        throws(ObjectStoreError)
    {
        precondition(objects >= 1 && concurrency >= 1 && size >= 8)
        _ = try ObjectKey("\(prefix)/0")
        self.store = store
        self.prefix = prefix
        self.objects = objects
        self.size = size
        self.concurrency = concurrency
    }

    /// Stores every object; the time it took.
    public func put() async throws -> Duration {
        var random = ByteBuffer()
        for _ in 0..<(size / 8) { random.writeInteger(UInt64.random(in: .min ... .max)) }
        random.writeRepeatingByte(0x5a, count: size % 8)
        let pattern = random
        return try await timed { next in
            var body = pattern
            while let index = next() {
                body.setInteger(UInt64(index), at: body.readerIndex)
                try await store.put(try key(index), data: body)
            }
        }
    }

    /// Reads every object back, checking it; the time it took.
    /// - Throws: `ObjectStoreError` `.invalidResponse` for an object of the wrong size or number.
    public func get() async throws -> Duration {
        try await timed { next in
            while let index = next() {
                let pieces = try await store.getPieces(try key(index), range: nil)
                var head = ByteBuffer()
                for piece in pieces where head.readableBytes < 8 {
                    let length = min(8 - head.readableBytes, piece.readableBytes)
                    head.writeImmutableBuffer(piece.getSlice(at: piece.readerIndex, length: length)!)
                }
                let count = pieces.reduce(0) { $0 + $1.readableBytes }
                let number = head.getInteger(at: 0, as: UInt64.self)
                guard count == size, number == UInt64(index) else {
                    throw ObjectStoreError(
                        .invalidResponse,
                        "\(try key(index)) is \(count) bytes numbered \(number.map(String.init) ?? "nothing"), "
                            + "not \(size) bytes numbered \(index): stored by another run? (give each its own --prefix)"
                    )
                }
            }
        }
    }

    /// Deletes every object; the time it took.
    public func delete() async throws -> Duration {
        try await timed { next in
            while let index = next() { try await store.delete(try key(index)) }
        }
    }

    /// The key of object `index`.
    public func key(_ index: Int) throws(ObjectStoreError) -> ObjectKey {
        try ObjectKey("\(prefix)/\(index)")
    }

    /// Runs `concurrency` workers, each taking the next object's index from `next` until none is
    /// left; the time until all are done. The first error ends the run (the others are cancelled).
    private func timed(_ worker: @escaping @Sendable (_ next: @escaping @Sendable () -> Int?) async throws -> Void)
        async throws -> Duration
    {
        let taken = NIOLockedValueBox(0)
        let objects = objects
        let next: @Sendable () -> Int? = {
            taken.withLockedValue { taken in
                guard taken < objects else { return nil }
                taken += 1
                return taken - 1
            }
        }
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<min(concurrency, objects) { group.addTask { try await worker(next) } }
            try await group.waitForAll()
        }
        return ContinuousClock.now - start
    }
}
