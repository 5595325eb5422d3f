/// The allocated chunks of a volume, kept small at rest. A chunk nobody is using whose record
/// holds it (`ChunkState.isAtRest`) is kept in one of three compact tables, by what it needs:
/// - its valid bitmap alone (a thin volume's chunk; 24 bytes a slot);
/// - with the object that holds it (a cached chunk none of whose blocks is in the cache);
/// - with its cached blocks, last use and last upload too (bounded by the cache size).
/// Bitmaps whose set bits are none, all or one run hold no words. Any other chunk is kept whole
/// as a `ChunkState`. A chunk is in exactly one table. Reading or changing a chunk through the
/// subscript gives its whole state and files it again afterwards, so callers see one map of
/// `ChunkState`s; the totals over all chunks are kept as chunks are filed, so that no count
/// walks the map. Not thread-safe: `ChunkTable` guards it.
struct ChunkMap {
    /// Sums over every chunk in the map.
    struct Totals: Equatable {
        /// Chunks with at least one valid block.
        var chunksWithData = 0
        var validBlocks = 0
        /// Blocks in the local cache (cached volumes).
        var presentBlocks = 0
        /// Chunks with an uploaded generation (cached volumes).
        var uploadedChunks = 0
    }

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
        var lastUse: UInt64
        let lastSnapshot: UInt64
    }

    private let geometry: ChunkGeometry
    private let cached: Bool
    private var active: [Int: ChunkState] = [:]
    private var cold: [Int: BlockBitmap.Storage] = [:]
    private var stored: [Int: Stored] = [:]
    private var warm: [Int: Warm] = [:]
    private(set) var totals = Totals()

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

    /// Calls `body` with every chunk not at rest (in use, or changed since its record), in no order.
    func forEachActive(_ body: (Int, ChunkState) -> Void) {
        for (index, state) in active { body(index, state) }
    }

    /// Calls `body` with every chunk that has blocks in the cache and could be at rest: the chunks
    /// not at rest, and those at rest with cached blocks (their number is bounded by the cache).
    func forEachWithCachedBlocks(_ body: (Int, ChunkState) -> Void) {
        for (index, state) in active where !state.present.isEmpty { body(index, state) }
        for (index, chunk) in warm { body(index, wake(index, chunk)) }
    }

    /// Whether a chunk is allocated (without building its state).
    func contains(_ index: Int) -> Bool {
        active.index(forKey: index) != nil || cold.index(forKey: index) != nil
            || stored.index(forKey: index) != nil || warm.index(forKey: index) != nil
    }

    /// Changes a chunk in place: taken from its table once, filed again once. Nil when the
    /// chunk is not allocated.
    mutating func update<T>(_ index: Int, _ body: (inout ChunkState) -> T) -> T? {
        guard var state = take(index) else { return nil }
        defer { file(index, state) }
        return body(&state)
    }

    /// Sets when a chunk was last used, in place: a chunk at rest stays in its compact form.
    mutating func touch(_ index: Int, at time: UInt64) {
        if let position = active.index(forKey: index) {
            active.values[position].lastUse = time
        } else if let position = warm.index(forKey: index) {
            warm.values[position].lastUse = time
        }
    }

    /// Whether the local file holds all of `blocks` of a chunk: each is valid and, in a cached
    /// volume's chunk that has been uploaded, in the cache. False when the chunk is not allocated.
    /// The check of most reads: a chunk at rest is read in its compact form, not woken.
    @inline(__always)
    func holdsLocally(_ index: Int, blocks: Range<Int>) -> Bool {
        if let state = active[index] {
            return Self.holdsLocally(
                blocks, valid: state.valid, present: state.present,
                remoteGeneration: cached ? state.remoteGeneration : 0)
        }
        let count = geometry.blocks(inChunk: index)
        if !cached {
            guard let valid = cold[index] else { return false }
            return BlockBitmap(count: count, storage: valid).allSet(in: blocks)
        }
        if let chunk = warm[index] {
            return Self.holdsLocally(
                blocks, valid: BlockBitmap(count: count, storage: chunk.valid),
                present: BlockBitmap(count: count, storage: chunk.present), remoteGeneration: chunk.remoteGeneration)
        }
        guard let chunk = stored[index] else { return false }
        return Self.holdsLocally(
            blocks, valid: BlockBitmap(count: count, storage: chunk.valid), present: BlockBitmap(count: count),
            remoteGeneration: chunk.remoteGeneration)
    }

    /// Blocks are local when they are valid and either never uploaded (a thin volume's are not)
    /// or in the cache.
    private static func holdsLocally(
        _ blocks: Range<Int>, valid: BlockBitmap, present: BlockBitmap, remoteGeneration: UInt64
    ) -> Bool {
        valid.allSet(in: blocks) && (remoteGeneration == 0 || present.allSet(in: blocks))
    }

    /// A chunk's whole state, or nil when it is not allocated.
    subscript(index: Int) -> ChunkState? {
        get {
            if let state = active[index] { return state }
            // A thin volume's chunks at rest are all cold; a cached volume's warm or stored.
            guard cached else { return cold[index].map { wake(index, valid: $0) } }
            if let chunk = warm[index] { return wake(index, chunk) }
            return stored[index].map { wake(index, valid: $0.valid, remoteGeneration: $0.remoteGeneration) }
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

    /// Adds a chunk that is not in the map, at rest as its record holds it (also when opening a
    /// volume: this skips building a whole state for each of perhaps millions of chunks).
    mutating func addAtRest(
        _ index: Int, valid: BlockBitmap, present: BlockBitmap, remoteGeneration: UInt64, lastUse: UInt64 = 0,
        lastSnapshot: UInt64 = 0
    ) {
        var present = present
        if !cached {
            present = BlockBitmap(count: valid.count)
            cold[index] = valid.storage
        } else if present.isEmpty {
            stored[index] = Stored(valid: valid.storage, remoteGeneration: remoteGeneration)
        } else {
            warm[index] = Warm(
                valid: valid.storage, present: present.storage, remoteGeneration: remoteGeneration, lastUse: lastUse,
                lastSnapshot: lastSnapshot)
        }
        count(valid: valid, present: present, remoteGeneration: remoteGeneration, 1)
    }

    /// Removes a chunk from its table and from the totals; its whole state.
    private mutating func take(_ index: Int) -> ChunkState? {
        var state = active.removeValue(forKey: index)
        if state == nil, let valid = cold.removeValue(forKey: index) { state = wake(index, valid: valid) }
        if state == nil, let chunk = stored.removeValue(forKey: index) {
            state = wake(index, valid: chunk.valid, remoteGeneration: chunk.remoteGeneration)
        }
        if state == nil { state = warm.removeValue(forKey: index).map { wake(index, $0) } }
        if let state { count(valid: state.valid, present: state.present, remoteGeneration: state.remoteGeneration, -1) }
        return state
    }

    /// Files a chunk, not in any table, in the one its state belongs to (nil: nowhere), and
    /// counts it in the totals as it will be read back.
    private mutating func file(_ index: Int, _ state: ChunkState?) {
        guard let state else { return }
        guard !state.isAtRest else {
            return addAtRest(
                index, valid: state.valid, present: state.present, remoteGeneration: state.remoteGeneration,
                lastUse: state.lastUse, lastSnapshot: state.lastSnapshot)
        }
        active[index] = state
        count(valid: state.valid, present: state.present, remoteGeneration: state.remoteGeneration, 1)
    }

    /// Adds a chunk to the totals (`sign` 1) or takes it out (-1).
    private mutating func count(valid: BlockBitmap, present: BlockBitmap, remoteGeneration: UInt64, _ sign: Int) {
        totals.chunksWithData += valid.isEmpty ? 0 : sign
        totals.validBlocks += sign * valid.setCount
        totals.presentBlocks += sign * present.setCount
        totals.uploadedChunks += remoteGeneration > 0 ? sign : 0
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
        state.lastSnapshot = chunk.lastSnapshot
        return state
    }
}
