/// The allocated chunks of a volume, kept small at rest. A chunk nobody is using whose record
/// holds it (`ChunkState.isAtRest`) is kept in one of three compact tables, by what it needs:
/// - its valid bitmap alone (a thin volume's chunk; 16 bytes a slot);
/// - with the object that holds it (a cached chunk none of whose blocks is in the cache);
/// - with its cached blocks and last use too (bounded by the cache size).
/// Bitmaps that are empty or full hold no words. Any other chunk is kept whole as a
/// `ChunkState`. A chunk is in exactly one table. Reading or changing a chunk through the
/// subscript gives its whole state and files it again afterwards, so callers see one map of
/// `ChunkState`s. Not thread-safe: `ChunkTable` guards it.
struct ChunkMap {
    /// A cached chunk at rest with no block in the cache.
    private struct Stored {
        let valid: BlockBitmap.Storage
        let remoteGeneration: UInt64
    }

    /// A cached chunk at rest with blocks in the cache.
    private struct Warm {
        let valid: BlockBitmap.Storage
        let present: BlockBitmap.Storage
        let remoteGeneration: UInt64
        let lastUse: UInt64
    }

    private let geometry: ChunkGeometry
    private let cached: Bool
    private var active: [Int: ChunkState] = [:]
    private var cold: [Int: BlockBitmap.Storage] = [:]
    private var stored: [Int: Stored] = [:]
    private var warm: [Int: Warm] = [:]

    /// An empty map, with room for `capacity` chunks at rest (of a thin volume, or evicted).
    init(geometry: ChunkGeometry, cached: Bool, capacity: Int = 0) {
        self.geometry = geometry
        self.cached = cached
        if cached { stored.reserveCapacity(capacity) } else { cold.reserveCapacity(capacity) }
    }

    /// Chunks in the map.
    var count: Int { active.count + cold.count + stored.count + warm.count }

    /// The indexes of the chunks that satisfy `include`, in no order.
    func indexes(where include: (Int) -> Bool) -> [Int] {
        active.keys.filter(include) + cold.keys.filter(include) + stored.keys.filter(include)
            + warm.keys.filter(include)
    }

    /// Calls `body` with every chunk, in no order.
    func forEach(_ body: (Int, ChunkState) -> Void) {
        for (index, state) in active { body(index, state) }
        for (index, valid) in cold { body(index, wake(index, valid: valid)) }
        for (index, chunk) in stored {
            body(index, wake(index, valid: chunk.valid, remoteGeneration: chunk.remoteGeneration))
        }
        for (index, chunk) in warm { body(index, wake(index, chunk)) }
    }

    /// A chunk's whole state, or nil when it is not allocated.
    subscript(index: Int) -> ChunkState? {
        get {
            if let state = active[index] { return state }
            if let valid = cold[index] { return wake(index, valid: valid) }
            if let chunk = stored[index] {
                return wake(index, valid: chunk.valid, remoteGeneration: chunk.remoteGeneration)
            }
            return warm[index].map { wake(index, $0) }
        }
        _modify {
            var state = take(index)
            defer { file(index, state) }
            yield &state
        }
        set {
            _ = take(index)
            file(index, newValue)
        }
    }

    /// Removes a chunk from its table; its whole state.
    private mutating func take(_ index: Int) -> ChunkState? {
        if let state = active.removeValue(forKey: index) { return state }
        if let valid = cold.removeValue(forKey: index) { return wake(index, valid: valid) }
        if let chunk = stored.removeValue(forKey: index) {
            return wake(index, valid: chunk.valid, remoteGeneration: chunk.remoteGeneration)
        }
        return warm.removeValue(forKey: index).map { wake(index, $0) }
    }

    /// Files a chunk, not in any table, in the one its state belongs to (nil: nowhere).
    private mutating func file(_ index: Int, _ state: ChunkState?) {
        guard let state else { return }
        if !state.isAtRest {
            active[index] = state
        } else if !cached {
            cold[index] = state.valid.storage
        } else if state.present.isEmpty {
            stored[index] = Stored(valid: state.valid.storage, remoteGeneration: state.remoteGeneration)
        } else {
            warm[index] = Warm(
                valid: state.valid.storage, present: state.present.storage,
                remoteGeneration: state.remoteGeneration, lastUse: state.lastUse)
        }
    }

    /// The whole state of a chunk at rest with nothing in the cache.
    private func wake(_ index: Int, valid: BlockBitmap.Storage, remoteGeneration: UInt64 = 0) -> ChunkState {
        ChunkState(
            valid: BlockBitmap(count: geometry.blocks(inChunk: index), storage: valid), journal: .clean,
            remoteGeneration: remoteGeneration)
    }

    /// The whole state of a chunk at rest with blocks in the cache.
    private func wake(_ index: Int, _ chunk: Warm) -> ChunkState {
        let blocks = geometry.blocks(inChunk: index)
        var state = ChunkState(
            valid: BlockBitmap(count: blocks, storage: chunk.valid), journal: .clean,
            present: BlockBitmap(count: blocks, storage: chunk.present), remoteGeneration: chunk.remoteGeneration)
        state.lastUse = chunk.lastUse
        return state
    }
}
