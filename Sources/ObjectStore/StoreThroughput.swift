import NIOCore

/// Measures what an object store sustains through this client: `objects` objects of `size`
/// bytes under `prefix`, `concurrency` requests in flight, PUT, GET or DELETE. It is the
/// ceiling a gateway's uploads and cold reads are compared with, since it pays everything
/// they pay on the wire (signing, the payload's CRC32C, the connection pool) and nothing of
/// theirs (object format, cache, NBD).
///
/// Object `i` holds a shared random pattern with `i` in its first 8 bytes; a GET checks the
/// length and that number, so an answer of the wrong size or the wrong object fails the run.
public struct StoreThroughput: Sendable {
    public let store: any ObjectStore
    public let prefix: String
    public let objects: Int
    public let size: Int
    public let concurrency: Int

    /// - Precondition: `objects`, `concurrency` ≥ 1 and `size` ≥ 8.
    public init(store: any ObjectStore, prefix: String, objects: Int, size: Int, concurrency: Int) {
        precondition(objects >= 1 && concurrency >= 1 && size >= 8)
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
        return try await timed { index in
            var body = pattern
            body.setInteger(UInt64(index), at: body.readerIndex)
            try await store.put(try key(index), data: body)
        }
    }

    /// Reads every object back, checking it; the time it took.
    /// - Throws: `ObjectStoreError` `.invalidResponse` for an object of the wrong size or number.
    public func get() async throws -> Duration {
        try await timed { index in
            let pieces = try await store.getPieces(try key(index), range: nil)
            var head = ByteBuffer()
            for piece in pieces where head.readableBytes < 8 {
                head.writeImmutableBuffer(
                    piece.getSlice(at: piece.readerIndex, length: min(8 - head.readableBytes, piece.readableBytes))!)
            }
            let count = pieces.reduce(0) { $0 + $1.readableBytes }
            guard count == size, head.getInteger(at: 0, as: UInt64.self) == UInt64(index) else {
                throw ObjectStoreError(
                    .invalidResponse, "\(try key(index)) came back as \(count) bytes of other contents")
            }
        }
    }

    /// Deletes every object; the time it took.
    public func delete() async throws -> Duration {
        try await timed { index in try await store.delete(try key(index)) }
    }

    /// The key of object `index`.
    public func key(_ index: Int) throws -> ObjectKey {
        try ObjectKey("\(prefix)/\(index)")
    }

    /// Runs `operation` on each object, `concurrency` at a time.
    private func timed(_ operation: @escaping @Sendable (Int) async throws -> Void) async throws -> Duration {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<min(concurrency, objects) { group.addTask { try await operation(index) } }
            var next = min(concurrency, objects)
            while try await group.next() != nil, next < objects {
                let index = next
                group.addTask { try await operation(index) }
                next += 1
            }
            try await group.waitForAll()
        }
        return ContinuousClock.now - start
    }
}
