import LocalIO
import Logging
import Metadata

extension ThinVolume {
    /// Opens a volume: its file, and its chunk map from the database. Chunks the database marks
    /// dirty (changed after their last commit, e.g. before a crash) get their bitmap back from
    /// the file's allocated ranges, are made durable, and are committed clean.
    /// Blocks on disk and database; call it off the event loops.
    /// - Throws: `LocalIOError` or `MetadataError`.
    public static func open(
        record: VolumeRecord, path: String, store: MetadataStore, journal: MetadataJournal, io: any FileIO,
        logger: Logger
    ) throws -> ThinVolume {
        let geometry = ChunkGeometry(volumeSize: record.size, chunkSize: Int(record.chunkSize))
        let file = try LocalFile.open(path: path, length: record.size)
        var bitmaps: [Int: BlockBitmap] = [:]
        var changes: [ChunkChange] = []
        for chunk in try store.chunks(volumeID: record.id) {
            let index = Int(chunk.index)
            guard index < geometry.chunkCount else {
                changes.append(.delete(volumeID: record.id, index: chunk.index))
                continue
            }
            let bitmap =
                chunk.dirty
                ? try recoveredBitmap(of: index, file: file, geometry: geometry)
                : BlockBitmap(count: geometry.blocks(inChunk: index), bytes: chunk.valid)
            if chunk.dirty {
                changes.append(
                    bitmap.isEmpty
                        ? .delete(volumeID: record.id, index: chunk.index)
                        : .store(
                            volumeID: record.id, ChunkRecord(index: chunk.index, valid: bitmap.bytes, dirty: false)))
            }
            if !bitmap.isEmpty { bitmaps[index] = bitmap }
        }
        if !changes.isEmpty {
            logger.notice(
                "volume '\(record.name)': recovered the bitmaps of \(changes.count) chunk(s) changed since their last commit"
            )
            try file.syncData()
            try store.apply(changes)
        }
        let table = ChunkTable(volumeID: record.id, geometry: geometry, journal: journal, chunks: bitmaps)
        return ThinVolume(name: record.name, table: table, file: file, io: io, journal: journal, logger: logger)
    }

    /// The blocks of a chunk that hold allocated data in the file.
    private static func recoveredBitmap(of index: Int, file: LocalFile, geometry: ChunkGeometry) throws -> BlockBitmap {
        let start = geometry.chunkStart(index)
        let end = start + UInt64(geometry.blocks(inChunk: index) * ChunkGeometry.blockSize)
        var bitmap = BlockBitmap(count: geometry.blocks(inChunk: index))
        for range in try file.dataRanges(in: start..<end) {
            bitmap.set(
                ChunkGeometry.blocksTouching(Int(range.lowerBound - start)..<Int(range.upperBound - start)))
        }
        return bitmap
    }
}
