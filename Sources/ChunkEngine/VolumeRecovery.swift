import Codecs
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
    /// Chunks the database marks dirty (changed after their last commit, e.g. before a crash)
    /// are recovered by the kind of volume:
    /// - thin: their bitmaps become the blocks the file holds (whatever a flush made durable is
    ///   there; anything else is unflushed and may be kept or not), and they are committed clean;
    /// - cached: the record is what the last durability round's sync covered, so it is kept as it
    ///   is, and the blocks the file holds beyond its present ones (unflushed writes or downloads
    ///   a power loss may have torn) are punched out; the chunk stays dirty, to be uploaded again.
    /// A cached chunk recorded clean but `unsynced` (a naming round recorded it without a sync)
    /// has the blocks the file holds beyond its present ones punched out too, and is recorded
    /// again without the mark.
    /// A cached volume then deletes the objects its database owes, and only those.
    /// - Throws: `LocalIOError` or `MetadataError`.
    public static func open(
        record: VolumeRecord, path: String, store: MetadataStore, journal: MetadataJournal, io: any FileIO,
        remote context: RemoteContext?, dataKey: DataKey? = nil, logger: Logger
    ) async throws -> Volume {
        let cached = record.kind == Kind.cached.rawValue
        guard !cached || context != nil else {
            throw MetadataError("volume '\(record.name)' is cached but no object store is configured")
        }
        let codec = cached ? try codec(of: record, dataKey: dataKey) : nil
        let geometry = ChunkGeometry(volumeSize: record.size, chunkSize: Int(record.chunkSize))
        let file = try LocalFile.open(path: path, length: record.size)
        var states = ChunkMap(
            geometry: geometry, cached: cached, capacity: Int(try store.chunkCount(volumeID: record.id)))
        var highestGeneration: UInt64 = 0
        var changes: [ChunkChange] = []
        var dirty: [ChunkRecord] = []
        var unsynced: [ChunkRecord] = []
        try store.forEachChunk(volumeID: record.id) { chunk in
            let index = Int(chunk.index)
            highestGeneration = max(highestGeneration, chunk.remoteGeneration)
            if index >= geometry.chunkCount {
                changes.append(.delete(volumeID: record.id, index: chunk.index))
            } else if chunk.dirty {
                dirty.append(chunk)
            } else {
                let blocks = geometry.blocks(inChunk: index)
                let valid = BlockBitmap(count: blocks, bytes: chunk.valid)
                guard !valid.isEmpty || chunk.remoteGeneration > 0 else { return }
                if cached, chunk.unsynced { unsynced.append(chunk) }
                states.addAtRest(
                    index, valid: valid, present: BlockBitmap(count: blocks, bytes: chunk.present),
                    remoteGeneration: chunk.remoteGeneration)
            }
        }
        var punched = 0  // dirty chunks whose unsynced blocks were punched out
        var unsyncedPunched = 0  // the same of chunks recorded clean but unsynced
        for chunk in unsynced {
            let index = Int(chunk.index)
            let present = BlockBitmap(count: geometry.blocks(inChunk: index), bytes: chunk.present)
            let written = try writtenBlocks(of: index, file: file, geometry: geometry)
            if try punch(written, outside: present, ofChunk: index, file: file, geometry: geometry) {
                unsyncedPunched += 1
            }
            changes.append(
                .store(
                    volumeID: record.id,
                    ChunkRecord(
                        index: chunk.index, valid: chunk.valid, dirty: false, present: chunk.present,
                        remoteGeneration: chunk.remoteGeneration)))
        }
        for chunk in dirty {
            let index = Int(chunk.index)
            let blocks = geometry.blocks(inChunk: index)
            var valid = BlockBitmap(count: blocks, bytes: chunk.valid)
            let present = BlockBitmap(count: blocks, bytes: chunk.present)
            let written = try writtenBlocks(of: index, file: file, geometry: geometry)
            if cached {
                if try punch(written, outside: present, ofChunk: index, file: file, geometry: geometry) {
                    punched += 1
                }
            } else {
                valid = written
                changes.append(
                    valid.isEmpty
                        ? .delete(volumeID: record.id, index: chunk.index)
                        : .store(volumeID: record.id, ChunkRecord(index: chunk.index, valid: valid.bytes, dirty: false))
                )
            }
            guard cached || !valid.isEmpty else { continue }
            states[index] = ChunkState(
                valid: valid, journal: cached ? .dirty : .clean, present: present,
                remoteGeneration: chunk.remoteGeneration)
        }
        if !changes.isEmpty || punched > 0 || unsyncedPunched > 0 {
            let recovered = changes.count - unsynced.count + punched
            if recovered > 0 {
                logger.notice(
                    "volume '\(record.name)': recovered \(recovered) chunk(s) changed since their last commit")
            }
            if unsyncedPunched > 0 {
                logger.notice(
                    "volume '\(record.name)': dropped from the cache the blocks of \(unsyncedPunched) chunk(s) that no sync covered (they are in the object store)"
                )
            }
            try file.syncData()
            try store.apply(changes)
        }
        var backing: RemoteBacking?
        if let codec, let context {
            let objects = ChunkObjects(
                store: context.store, codec: codec, formatSince: record.objectFormat.formatSince, geometry: geometry,
                volume: record.name, logger: logger)
            backing = await makeBacking(
                record: record, objects: objects, highestGeneration: highestGeneration, metadata: store,
                journal: journal, context: context, logger: logger)
        }
        let table = ChunkTable(
            volumeID: record.id, geometry: geometry, journal: journal, cached: cached,
            uploadGenerations: backing?.nextGeneration, chunks: states)
        let directFile = cached ? LocalFile.openDirect(path: path) : nil
        if directFile != nil { file.adviseRandomAccess() }
        return Volume(
            name: record.name, table: table, file: file, directFile: directFile,
            io: io, journal: journal, remote: backing, logger: logger)
    }

    /// Punches the blocks of a chunk the file holds beyond `present`; returns whether there were any.
    private static func punch(
        _ written: BlockBitmap, outside present: BlockBitmap, ofChunk index: Int, file: LocalFile,
        geometry: ChunkGeometry
    ) throws -> Bool {
        let blockSize = UInt64(ChunkGeometry.blockSize)
        var any = false
        for (run, isWritten) in written.runs(in: 0..<written.count) where isWritten {
            for (piece, isPresent) in present.runs(in: run) where !isPresent {
                try file.allocate(
                    .punchHole, offset: geometry.chunkStart(index) + UInt64(piece.lowerBound) * blockSize,
                    length: UInt64(piece.count) * blockSize)
                any = true
            }
        }
        return any
    }

    /// Builds the backing with upload generations above every generation begun (recorded in the
    /// database) or seen in the store, and starts deleting the objects the database owes. Objects
    /// the listing shows that no record names are left in place: the database may be older than
    /// the store (restored from a backup), and only what it owes is known to be garbage.
    private static func makeBacking(
        record: VolumeRecord, objects: ChunkObjects, highestGeneration: UInt64, metadata: MetadataStore,
        journal: MetadataJournal, context: RemoteContext, logger: Logger
    ) async -> RemoteBacking {
        // Never below `format_since`: a generation below it would be read as a raw object.
        var highest = max(highestGeneration, max(record.objectFormat.formatSince, 1) - 1)
        if let next = try? metadata.nextGeneration(volumeID: record.id) { highest = max(highest, next - 1) }
        do {
            let known = highest
            var unknown = 0
            for object in try await context.store.list(prefix: RemoteBacking.chunkPrefix(uuid: record.uuid)) {
                guard let (_, generation) = RemoteBacking.parseChunkKey(object.key, uuid: record.uuid) else {
                    continue
                }
                if generation > known { unknown += 1 }
                highest = max(highest, generation)
            }
            if unknown > 0 {
                logger.warning(
                    "volume '\(record.name)': the object store holds \(unknown) chunk object(s) newer than this database knows (was it restored from an older copy?); they are left in place"
                )
            }
        } catch {
            logger.warning(
                "volume '\(record.name)': cannot list its objects (\(error)); generations continue from the database")
        }
        let backing = RemoteBacking(
            store: context.store, objects: objects, uuid: record.uuid, volumeID: record.id, metadata: metadata,
            journal: journal,
            settings: context.settings, firstGeneration: highest + 1, group: context.group, logger: logger)
        backing.collect(volume: record.name)
        return backing
    }

    /// The codec of a cached volume's chunk objects, as its record says.
    /// - Throws: `MetadataError` for an unknown algorithm, or an encrypted volume without its key.
    private static func codec(of record: VolumeRecord, dataKey: DataKey?) throws -> ObjectCodec {
        let format = record.objectFormat
        guard let compression = Compression(parsing: format.compression), let cipher = Cipher(parsing: format.cipher)
        else {
            throw MetadataError(
                "volume '\(record.name)' uses compression '\(format.compression)' or cipher '\(format.cipher)', which this blockgate does not know"
            )
        }
        guard cipher == .off || dataKey != nil else {
            throw MetadataError(
                "volume '\(record.name)' is encrypted (\(cipher)): start blockgate with its master key (objects.key_file)"
            )
        }
        return try ObjectCodec(
            compression: compression, cipher: cipher, key: cipher == .off ? nil : dataKey, scope: record.uuid)
    }

    /// The prefix of every object of a cached volume's chunks.
    public static func objectPrefix(uuid: String) -> String { "volumes/\(uuid)/" }

    /// The chunk records of a cached volume rebuilt from its objects alone: per chunk the newest
    /// generation, all blocks valid (invalid ones were uploaded as zeros), none cached; the first
    /// generation its uploads may use, above every one in the store; and the first generation
    /// in format 1 (`formatSince` when the manifest knows it, else found in the store).
    public static func chunksInStore(
        uuid: String, geometry: ChunkGeometry, store: any ObjectStore, formatSince: UInt64? = 1
    ) async throws -> (chunks: [ChunkRecord], nextGeneration: UInt64, formatSince: UInt64) {
        var newest: [Int: UInt64] = [:]
        var highest: UInt64 = 0
        var objects: [(generation: UInt64, index: Int)] = []
        for object in try await store.list(prefix: RemoteBacking.chunkPrefix(uuid: uuid)) {
            guard let (index, generation) = RemoteBacking.parseChunkKey(object.key, uuid: uuid) else { continue }
            highest = max(highest, generation)
            objects.append((generation, index))
            guard index < geometry.chunkCount else { continue }
            newest[index] = max(newest[index] ?? 0, generation)
        }
        let chunks = newest.sorted { $0.key < $1.key }.map { index, generation in
            var all = BlockBitmap(count: geometry.blocks(inChunk: index))
            all.set(0..<all.count)
            return ChunkRecord(index: Int64(index), valid: all.bytes, dirty: false, remoteGeneration: generation)
        }
        let since: UInt64
        if let formatSince {
            since = formatSince
        } else {
            since =
                try await firstInFormatOne(objects.sorted { $0.generation < $1.generation }, uuid: uuid, store: store)
                ?? highest + 1
        }
        return (chunks, highest + 1, since)
    }

    /// The generation of the oldest object in format 1 among `objects` (in generation order),
    /// nil when none is. Every upload of a volume since blockgate wrote format 1 has a higher
    /// generation than every raw one before, so a binary search reading a header at each step
    /// finds the boundary.
    private static func firstInFormatOne(
        _ objects: [(generation: UInt64, index: Int)], uuid: String, store: any ObjectStore
    ) async throws -> UInt64? {
        var low = 0
        var high = objects.count  // objects[high...] are in format 1
        while low < high {
            let middle = (low + high) / 2
            let (generation, index) = objects[middle]
            let key = try ObjectKey("\(RemoteBacking.chunkPrefix(uuid: uuid))\(index)-\(generation)")
            let prefix = try await store.get(key, range: 0..<64)
            if ChunkObjects.isFormatOne(prefix, chunk: index, generation: generation) {
                high = middle
            } else {
                low = middle + 1
            }
        }
        return high < objects.count ? objects[high].generation : nil
    }

    /// The blocks of a chunk that hold allocated data in the file.
    private static func writtenBlocks(of index: Int, file: LocalFile, geometry: ChunkGeometry) throws -> BlockBitmap {
        let start = geometry.chunkStart(index)
        let end = start + UInt64(geometry.bytes(inChunk: index))
        var bitmap = BlockBitmap(count: geometry.blocks(inChunk: index))
        for range in try file.dataRanges(in: start..<end) {
            bitmap.set(ChunkGeometry.blocksTouching(Int(range.lowerBound - start)..<Int(range.upperBound - start)))
        }
        return bitmap
    }
}
