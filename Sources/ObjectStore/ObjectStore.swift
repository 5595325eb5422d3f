import NIOCore

/// A flat namespace of objects (one bucket): what cached volumes and the tape shelf keep their
/// data in. Implementations: `FileObjectStore` (embedded, a directory) and `S3ObjectStore`
/// (any S3-compatible service).
public protocol ObjectStore: Sendable {
    /// Makes sure the bucket exists, creating it if needed.
    func prepare() async throws
    /// Stores an object whole, replacing any object of that key.
    func put(_ key: ObjectKey, data: ByteBuffer) async throws
    /// Stores an object whole from pieces sent one after another, without joining them first
    /// where the store can; `crc32c`, when the caller knows it, is their CRC32C (a store that
    /// sends one with the object then needs not read the bytes for it).
    func put(_ key: ObjectKey, pieces: [ByteBuffer], crc32c: UInt32?) async throws
    /// Reads an object, or the bytes of `range` of it.
    /// - Throws: `ObjectStoreError` of kind `.notFound` when there is no such object.
    func get(_ key: ObjectKey, range: Range<UInt64>?) async throws -> ByteBuffer
    /// Reads like `get`, handing the bytes over in the pieces they arrived in, neither joined
    /// nor aligned: for a reader that walks them once (a frame decoder), saving a copy.
    func getPieces(_ key: ObjectKey, range: Range<UInt64>?) async throws -> [ByteBuffer]
    /// Describes an object, or returns nil when there is none.
    func head(_ key: ObjectKey) async throws -> ObjectInfo?
    /// Deletes an object; deleting a missing object succeeds.
    func delete(_ key: ObjectKey) async throws
    /// Every object whose key starts with `prefix`, in key order.
    func list(prefix: String) async throws -> [ObjectInfo]
}

extension ObjectStore {
    /// A store that takes an object in one buffer has the pieces joined.
    public func put(_ key: ObjectKey, pieces: [ByteBuffer], crc32c: UInt32?) async throws {
        guard pieces.count != 1 else { return try await put(key, data: pieces[0]) }
        var data = ByteBuffer()
        data.reserveCapacity(pieces.reduce(0) { $0 + $1.readableBytes })
        for piece in pieces { data.writeImmutableBuffer(piece) }
        try await put(key, data: data)
    }

    /// A store whose reads arrive whole hands them over as one piece.
    public func getPieces(_ key: ObjectKey, range: Range<UInt64>?) async throws -> [ByteBuffer] {
        [try await get(key, range: range)]
    }
}

/// What a listing or HEAD tells of an object.
public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var size: UInt64

    public init(key: String, size: UInt64) {
        self.key = key
        self.size = size
    }
}

/// A failed object-store operation.
public struct ObjectStoreError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What kind of failure, which decides whether retrying can help.
    public enum Kind: Sendable, Equatable {
        /// The object does not exist.
        case notFound
        /// The store is unreachable or answered with a server error, after all retries.
        case unavailable
        /// The store refused the request (a 4xx other than 404): retrying will not help.
        case rejected
        /// The store answered something this client cannot understand.
        case invalidResponse
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
