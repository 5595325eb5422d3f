import BlockDevice
import Codecs
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ObjectStore

/// How a cached volume's chunks are kept as objects (docs/object-format.md): generations from
/// `formatSince` on are written in format 1 through `codec` (frames checksummed, and compressed
/// or encrypted as the volume says); older generations, written before blockgate had a format,
/// are the chunk's bytes as they are (format 0) and are read as such. Holds the frame tables of
/// compressed objects read or written lately (at most `tableLimit`), so that a ranged read of one
/// needs its table fetched once.
///
/// Every frame read is verified. One that fails is fetched again (the first copy may have been
/// damaged on the way); if it fails again it is never served: the read fails with EIO, the
/// failure is logged and counted, and the volume is marked degraded.
final class ChunkObjects: Sendable {
    let store: any ObjectStore
    let codec: ObjectCodec
    /// The first generation written in format 1.
    let formatSince: UInt64
    let geometry: ChunkGeometry
    let volume: String
    let logger: Logger
    private let tables = NIOLockedValueBox(FrameTables())
    private let failures = NIOLockedValueBox(UInt64(0))

    static let tableLimit = 1024

    init(
        store: any ObjectStore, codec: ObjectCodec, formatSince: UInt64, geometry: ChunkGeometry, volume: String,
        logger: Logger
    ) {
        self.store = store
        self.codec = codec
        self.formatSince = formatSince
        self.geometry = geometry
        self.volume = volume
        self.logger = logger
    }

    /// Reads that failed verification twice since the volume was opened: if any, the volume is
    /// degraded (something in the store is damaged, or was altered).
    var integrityFailures: UInt64 { failures.withLockedValue { $0 } }

    /// Stores a chunk's bytes as `key`, generation `generation`; returns the object's size.
    func write(_ data: ByteBuffer, chunk index: Int, generation: UInt64, key: ObjectKey) async throws -> Int {
        let identity = ObjectIdentity.chunk(index: index, generation: generation)
        let object = try codec.encodePieces(data, as: identity)
        try await store.put(key, pieces: object.pieces, crc32c: object.crc32c)
        let size = object.size
        let dimensions = [("volume", volume)]
        Counter(label: "blockgate_upload_logical_bytes_total", dimensions: dimensions).increment(by: data.readableBytes)
        Counter(label: "blockgate_upload_stored_bytes_total", dimensions: dimensions).increment(by: size)
        if codec.hasFrameTable,
            let table = try? codec.frameTable(
                from: ObjectBytes(object.pieces), identity: identity, logicalLength: data.readableBytes)
        {
            tables.withLockedValue { $0.insert(table, for: identity) }
        }
        return size
    }

    /// The bytes of blocks `blocks` of chunk `index` as generation `generation` holds them,
    /// verified; in memory aligned for direct I/O, or, `asViews`, as views of the memory the
    /// download arrived in where they can be (nothing copied: `ObjectCodec.decodeWholeAsViews`,
    /// for bytes that never go to the local file, such as a reader's served from memory).
    /// - Throws: `ObjectStoreError` (`.notFound` when the object is gone), or `BlockDeviceError`
    ///   `.damaged` when the object fails verification twice.
    func read(chunk index: Int, generation: UInt64, blocks: Range<Int>, key: ObjectKey, asViews: Bool = false)
        async throws -> ObjectBytes
    {
        let blockSize = ChunkGeometry.blockSize
        let range = (blocks.lowerBound * blockSize)..<(blocks.upperBound * blockSize)
        guard generation >= formatSince else {
            let stored = UInt64(range.lowerBound)..<UInt64(range.upperBound)
            guard asViews else { return ObjectBytes(try await store.get(key, range: stored)) }
            return ObjectBytes(try await store.getPieces(key, range: stored))
        }
        let identity = ObjectIdentity.chunk(index: index, generation: generation)
        var attempt = 1
        while true {
            do {
                return try await readFormatOne(
                    key, identity: identity, range: range, length: geometry.blocks(inChunk: index) * blockSize,
                    asViews: asViews)
            } catch let error as ObjectFormatError {
                tables.withLockedValue { $0.remove(identity) }
                guard error.kind == .corrupt, attempt < 2 else {
                    throw reportFailure(error, chunk: index, generation: generation)
                }
                logger.warning(
                    "volume '\(volume)': chunk \(index) generation \(generation) failed verification (\(error)); fetching it again"
                )
                attempt += 1
            }
        }
    }

    private func readFormatOne(
        _ key: ObjectKey, identity: ObjectIdentity, range: Range<Int>, length: Int, asViews: Bool
    ) async throws -> ObjectBytes {
        if range == 0..<length {
            let object = ObjectBytes(try await store.getPieces(key, range: nil))
            if asViews, let views = try codec.decodeWholeAsViews(object, identity: identity, logicalLength: length) {
                return views
            }
            var output = ByteBuffer.aligned(capacity: length)
            try codec.decodeWhole(object, identity: identity, logicalLength: length, into: &output)
            return ObjectBytes(output)
        }
        var table: FrameTable?
        if codec.hasFrameTable {
            table = tables.withLockedValue { $0[identity] }
            if table == nil {
                let prefix = try await store.get(key, range: 0..<UInt64(codec.prefixLength(logicalLength: length)))
                table = try codec.frameTable(from: ObjectBytes(prefix), identity: identity, logicalLength: length)
                tables.withLockedValue { $0.insert(table!, for: identity) }
            }
        }
        let plan = codec.plan(range, logicalLength: length, table: table)
        let fetched = ObjectBytes(
            plan.objectRange.isEmpty ? [] : try await store.getPieces(key, range: plan.objectRange))
        var output = ByteBuffer.aligned(capacity: plan.logical.count)
        try codec.decode(fetched, plan: plan, identity: identity, logicalLength: length, into: &output)
        return ObjectBytes(
            output.getSlice(at: output.readerIndex + range.lowerBound - plan.logical.lowerBound, length: range.count)!)
    }

    /// Logs and counts a read that failed verification for good, and marks the volume degraded.
    private func reportFailure(_ error: ObjectFormatError, chunk index: Int, generation: UInt64) -> BlockDeviceError {
        failures.withLockedValue { $0 += 1 }
        Counter(label: "blockgate_object_integrity_failures_total", dimensions: [("volume", volume)]).increment()
        let what =
            error.kind == .wrongKey
            ? "was sealed with another key" : "is damaged in the object store (\(error)); the volume is degraded"
        logger.error("volume '\(volume)': chunk \(index) generation \(generation) \(what)")
        return BlockDeviceError(.damaged, "volume '\(volume)': chunk \(index) generation \(generation) \(what)")
    }

    /// Whether the object of a chunk generation is in format 1 (its header names it): how a
    /// volume rebuilt from the store alone finds where format 1 begins when its manifest does not
    /// say (a volume created before blockgate had a format).
    static func isFormatOne(_ prefix: ByteBuffer, chunk index: Int, generation: UInt64) -> Bool {
        ObjectCodec.identity(of: prefix) == .chunk(index: index, generation: generation)
    }
}

/// The frame tables of objects read or written lately, the oldest dropped first past
/// `ChunkObjects.tableLimit`.
private struct FrameTables {
    private var tables: [ObjectIdentity: FrameTable] = [:]
    private var order: [ObjectIdentity] = []

    subscript(identity: ObjectIdentity) -> FrameTable? { tables[identity] }

    mutating func insert(_ table: FrameTable, for identity: ObjectIdentity) {
        if tables.updateValue(table, forKey: identity) == nil { order.append(identity) }
        while order.count > ChunkObjects.tableLimit {
            tables[order.removeFirst()] = nil
        }
    }

    mutating func remove(_ identity: ObjectIdentity) {
        guard tables.removeValue(forKey: identity) != nil else { return }
        order.removeAll { $0 == identity }
    }
}
