import LocalIO
import Logging
import Metadata
import NIOCore
import ObjectStore

/// What a cached volume needs besides its local parts.
public struct RemoteContext: Sendable {
    public let store: any ObjectStore
    public let settings: RemoteSettings
    public let group: any EventLoopGroup

    public init(store: any ObjectStore, settings: RemoteSettings, group: any EventLoopGroup) {
        self.store = store
        self.settings = settings
        self.group = group
    }
}

extension Volume {
    /// Opens a volume: its file, and its chunk map from the database.
    ///
    /// Chunks the database marks dirty (changed after their last commit, e.g. before a crash) get
    /// the blocks the file holds added to their bitmaps. A thin volume then commits them clean; a
    /// cached volume keeps them dirty so that they are uploaded again, and sweeps objects no
    /// record names (uploads a crash interrupted, generations it could not delete).
    /// - Throws: `LocalIOError`, `MetadataError`, or `ObjectStoreError` (listing the objects).
    public static func open(
        record: VolumeRecord, path: String, store: MetadataStore, journal: MetadataJournal, io: any FileIO,
        remote context: RemoteContext?, logger: Logger
    ) async throws -> Volume {
        let cached = record.kind == Kind.cached.rawValue
        guard !cached || context != nil else {
            throw MetadataError("volume '\(record.name)' is cached but no object store is configured")
        }
        let geometry = ChunkGeometry(volumeSize: record.size, chunkSize: Int(record.chunkSize))
        let file = try LocalFile.open(path: path, length: record.size)
        var states: [Int: ChunkState] = [:]
        var changes: [ChunkChange] = []
        for chunk in try store.chunks(volumeID: record.id) {
            let index = Int(chunk.index)
            guard index < geometry.chunkCount else {
                changes.append(.delete(volumeID: record.id, index: chunk.index))
                continue
            }
            let blocks = geometry.blocks(inChunk: index)
            var valid = BlockBitmap(count: blocks, bytes: chunk.valid)
            var present = BlockBitmap(count: blocks, bytes: chunk.present)
            if chunk.dirty {
                let written = try writtenBlocks(of: index, file: file, geometry: geometry)
                valid = cached ? valid.union(written) : written
                present = present.union(written)
            }
            let state = ChunkState(
                valid: valid, journal: chunk.dirty && cached ? .dirty : .clean, present: present,
                remoteGeneration: chunk.remoteGeneration)
            if chunk.dirty && !cached {
                changes.append(
                    valid.isEmpty
                        ? .delete(volumeID: record.id, index: chunk.index)
                        : .store(volumeID: record.id, ChunkRecord(index: chunk.index, valid: valid.bytes, dirty: false))
                )
            }
            if !valid.isEmpty || chunk.remoteGeneration > 0 || (cached && chunk.dirty) { states[index] = state }
        }
        if !changes.isEmpty {
            logger.notice(
                "volume '\(record.name)': recovered \(changes.count) chunk(s) changed since their last commit")
            try file.syncData()
            try store.apply(changes)
        }
        var backing: RemoteBacking?
        if cached, let context {
            backing = await sweep(record: record, states: states, context: context, logger: logger)
        }
        let table = ChunkTable(
            volumeID: record.id, geometry: geometry, journal: journal, cached: cached, chunks: states)
        return Volume(
            name: record.name, table: table, file: file, io: io, journal: journal, remote: backing, logger: logger)
    }

    /// Lists the volume's objects, deletes those no record names, and returns the backing with
    /// upload generations above every generation seen.
    private static func sweep(
        record: VolumeRecord, states: [Int: ChunkState], context: RemoteContext, logger: Logger
    ) async -> RemoteBacking {
        var highest: UInt64 = states.values.map(\.remoteGeneration).max() ?? 0
        var unreferenced: [(index: Int, generation: UInt64)] = []
        do {
            for object in try await context.store.list(prefix: RemoteBacking.chunkPrefix(uuid: record.uuid)) {
                guard let (index, generation) = RemoteBacking.parseChunkKey(object.key, uuid: record.uuid) else {
                    continue
                }
                highest = max(highest, generation)
                if states[index]?.remoteGeneration != generation { unreferenced.append((index, generation)) }
            }
        } catch {
            // Without the listing nothing is swept; new generations start above the recorded
            // ones, and a leftover object they meet is one no record names.
            logger.warning("volume '\(record.name)': cannot list its objects (\(error)); no sweep this time")
        }
        let backing = RemoteBacking(
            store: context.store, uuid: record.uuid, settings: context.settings, firstGeneration: highest + 1,
            group: context.group, logger: logger)
        if !unreferenced.isEmpty {
            logger.notice("volume '\(record.name)': deleting \(unreferenced.count) object(s) no record names")
            backing.deleteObjects(unreferenced, volume: record.name)
        }
        return backing
    }

    /// The prefix of every object of a cached volume's chunks.
    public static func objectPrefix(uuid: String) -> String { "volumes/\(uuid)/" }

    /// The chunk records of a cached volume rebuilt from its objects alone: per chunk the newest
    /// generation, all blocks valid (invalid ones were uploaded as zeros), none cached.
    public static func chunksInStore(uuid: String, geometry: ChunkGeometry, store: any ObjectStore) async throws
        -> [ChunkRecord]
    {
        var newest: [Int: UInt64] = [:]
        for object in try await store.list(prefix: RemoteBacking.chunkPrefix(uuid: uuid)) {
            guard let (index, generation) = RemoteBacking.parseChunkKey(object.key, uuid: uuid),
                index < geometry.chunkCount
            else { continue }
            newest[index] = max(newest[index] ?? 0, generation)
        }
        return newest.sorted { $0.key < $1.key }.map { index, generation in
            var all = BlockBitmap(count: geometry.blocks(inChunk: index))
            all.set(0..<all.count)
            return ChunkRecord(index: Int64(index), valid: all.bytes, dirty: false, remoteGeneration: generation)
        }
    }

    /// The blocks of a chunk that hold allocated data in the file.
    private static func writtenBlocks(of index: Int, file: LocalFile, geometry: ChunkGeometry) throws -> BlockBitmap {
        let start = geometry.chunkStart(index)
        let end = start + UInt64(geometry.blocks(inChunk: index) * ChunkGeometry.blockSize)
        var bitmap = BlockBitmap(count: geometry.blocks(inChunk: index))
        for range in try file.dataRanges(in: start..<end) {
            bitmap.set(ChunkGeometry.blocksTouching(Int(range.lowerBound - start)..<Int(range.upperBound - start)))
        }
        return bitmap
    }
}
