import BlockDevice
import Codecs
import LocalIO
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// A volume on the chunk engine. One sparse file holds chunk `i` at offset `i × chunkSize`;
/// chunks are allocated by their first write and punched out when TRIM leaves no valid block in
/// them. Writes of all-zero data deallocate like WRITE_ZEROES.
///
/// A thin volume keeps its data in that file alone. A cached volume also uploads each changed
/// chunk to an object store (see Volume+Remote.swift): the file is then a cache, blocks missing
/// from it are downloaded when read, and clean chunks may be evicted from it.
///
/// Invariant: a block whose valid bit is clear reads as zeros from the file (never written, or
/// punched before the bit was cleared). Reads therefore need the bitmap only to report holes.
public final class Volume: BlockDevice, @unchecked Sendable {
    /// Where a volume's data lives.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// On local disk only.
        case thin
        /// In an object store, with a local cache.
        case cached
    }

    /// The volume's name (its export name).
    public let name: String
    /// Where its data lives.
    public var kind: Kind { remote == nil ? .thin : .cached }
    /// The layout of chunks and blocks.
    public var geometry: ChunkGeometry { table.geometry }
    public var size: UInt64 { table.geometry.volumeSize }
    public let capabilities = BlockDeviceCapabilities(
        canFlush: true, canFUA: true, canTrim: true, canZero: true, canFastZero: true, canCache: true,
        canMultiConn: true, minimumBlockSize: 1, preferredBlockSize: 4096, maximumRequest: 32 * 1024 * 1024)

    let table: ChunkTable
    let file: LocalFile
    /// The same file opened for direct I/O, which downloads of a cached volume are written
    /// through (they would cost more processor time copied into the page cache than the
    /// download itself did); nil for a thin volume, or where the filesystem has no direct I/O.
    let directFile: LocalFile?
    let io: any FileIO
    let journal: MetadataJournal
    let logger: Logger
    /// The object store side of a cached volume; nil for a thin volume.
    let remote: RemoteBacking?
    private let flushes = NIOLockedValueBox(FlushState.idle)
    /// Set for good when a sync of the file failed: the kernel may have dropped the pages it
    /// could not write, so no later sync can prove them durable ("fsyncgate"). Every later flush
    /// and FUA write fails with it until the volume is opened again (and recovered).
    private let fence = NIOLockedValueBox<BlockDeviceError?>(nil)

    /// Whether a durability round runs, who waits for the next one, and whether that one syncs
    /// the file (a flush waits for it) or only names uploads (`nameUploads`).
    private enum FlushState {
        case idle
        case running(next: [EventLoopPromise<Void>], syncs: Bool)
    }

    /// Most extents one BLOCK_STATUS answer carries.
    static let maximumExtents = 16384
    /// A read split into more data runs than this is read whole (the holes read as zeros anyway).
    static let maximumReadSegments = 16
    /// Chunks zeroed at once by a WRITE_ZEROES that keeps its range allocated.
    static let zeroWindow = 64
    /// Times a read or write retries when eviction took its blocks between download and use.
    static let cacheRetries = 8

    init(
        name: String, table: ChunkTable, file: LocalFile, directFile: LocalFile?, io: any FileIO,
        journal: MetadataJournal, remote: RemoteBacking?, logger: Logger
    ) {
        self.name = name
        self.table = table
        self.file = file
        self.directFile = directFile
        self.io = io
        self.journal = journal
        self.remote = remote
        self.logger = logger
    }

    /// Chunks holding data and the bytes of their valid blocks.
    public var usage: (chunks: Int, bytes: UInt64) { table.usage() }

    /// Why the volume refuses to flush (a sync of its file failed), or nil.
    public var fenced: String? { fence.withLockedValue { $0?.message } }

    /// Fences the volume after a failed sync of its file; logged and counted once.
    func fence(after error: any Error, in operation: String) {
        let first = fence.withLockedValue { fence in
            guard fence == nil else { return false }
            fence = BlockDeviceError(
                .io,
                "volume '\(name)' is fenced: \(operation) failed (\(error)), so writes since its last flush may be lost; every flush fails until blockgate is restarted and the volume recovered"
            )
            return true
        }
        guard first else { return }
        logger.critical("volume '\(name)': \(operation) failed (\(error)); flushes fail from now on until a restart")
        Counter(label: "blockgate_sync_failures_total", dimensions: [("volume", name)]).increment()
    }

    /// Bytes the volume's file occupies on disk.
    public func diskUsage() throws -> UInt64 { try file.allocatedBytes() }

    // MARK: - BlockDevice

    public func read(offset: UInt64, length: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ReadResult> {
        guard remote != nil else {
            return readLocal(
                table.runs(offset: offset, length: UInt64(length)), offset: offset, length: length, on: eventLoop)
        }
        return readCached(offset: offset, length: length, attempt: 1, on: eventLoop)
    }

    /// A large read that the local file holds whole and the page cache holds now, as a region
    /// of the file (`LocalFile.cachedRegion`). On a cached volume its chunks are pinned against
    /// eviction until it is sent (`ChunkTable.pinForRegion`): a hole punched there meanwhile
    /// would not read as zeros, but as blocks only the store has.
    public func readRegion(offset: UInt64, length: Int) -> RegionRead? {
        guard length >= Self.regionMinimum else { return nil }
        guard let remote else {
            guard table.isLocal(offset: offset, length: UInt64(length)) else { return nil }
            return file.cachedRegion(offset: offset, length: length).map { RegionRead(region: $0) }
        }
        let now = NIODeadline.now().uptimeNanoseconds
        guard let pinned = table.pinForRegion(offset: offset, length: UInt64(length), now: now) else { return nil }
        guard let region = file.cachedRegion(offset: offset, length: length) else {
            table.unpin(pinned)
            return nil
        }
        // Seen by read-ahead like any read (a stream served from the cache reads on into chunks
        // it has yet to download).
        _ = readAhead(offset: offset, length: UInt64(length), on: remote.group.next())
        remote.hits.add(1, ordering: .relaxed)
        return RegionRead(region: region) { [table] in table.unpin(pinned) }
    }

    /// Reads from this size up go to the socket as file regions when they can: below it, the
    /// copy costs less than the region's descriptor and page-cache check.
    static let regionMinimum = 128 << 10

    /// Reads blocks that are holes or in the local file. A cached volume's read made without gates
    /// passes the evictions begun when its runs were taken: if one began since, the file may have
    /// been punched under the read, which is then done again the long way (`readCached`).
    private func readLocal(
        _ runs: [(range: Range<UInt64>, placement: ChunkTable.Placement)], offset: UInt64, length: Int,
        unlessEvictedSince evictionsBegun: UInt64? = nil, on eventLoop: any EventLoop
    ) -> EventLoopFuture<ReadResult> {
        let dataRuns = runs.count(where: { $0.placement != .hole })
        if dataRuns == 0 {
            return eventLoop.makeSucceededFuture(.segments([.hole(length)]))
        }
        // The hot path of every read: one future, the answer's, and no chained ones.
        let promise = eventLoop.makePromise(of: ReadResult.self)
        let answer: @Sendable (Result<ReadResult, any Error>) -> Void = { result in
            switch result {
            case .success(let read):
                if let evictionsBegun, self.table.evicted(since: evictionsBegun) {
                    promise.completeWith(self.readCached(offset: offset, length: length, attempt: 2, on: eventLoop))
                } else {
                    promise.succeed(read)
                }
            case .failure(let error): promise.fail(self.deviceError(error))
            }
        }
        if dataRuns == runs.count {
            io.read(file, offset: offset, length: length, on: eventLoop) { answer($0.map { .data($0) }) }
        } else if runs.count > Self.maximumReadSegments {
            // One read, its holes zeroed: the file need not hold zeros there.
            let holes = runs.filter { $0.placement == .hole }.map {
                Int($0.range.lowerBound - offset)..<Int($0.range.upperBound - offset)
            }
            io.read(file, offset: offset, length: length, on: eventLoop) {
                answer($0.map { .data(Self.zeroing(holes, of: $0)) })
            }
        } else {
            let pieces = runs.map { run -> EventLoopFuture<ReadSegment> in
                let runLength = Int(run.range.upperBound - run.range.lowerBound)
                guard run.placement != .hole else { return eventLoop.makeSucceededFuture(.hole(runLength)) }
                return readFile(offset: run.range.lowerBound, length: runLength, on: eventLoop).map { .data($0) }
            }
            EventLoopFuture.whenAllSucceed(pieces, on: eventLoop).map { .segments($0) }.whenComplete(answer)
        }
        return promise.futureResult
    }

    /// Downloads what the range misses (whole chunks, and chunks ahead, when the read continues a
    /// sequential stream), then reads it from memory or the local file (`readCachedWithoutGates`),
    /// or, when that finds blocks missing, with its chunks held, so that no eviction can
    /// intervene; if one did in between, tries again. A range spanning several
    /// chunks that lost such a race (it may be larger than the cache) is then read chunk by chunk.
    private func readCached(offset: UInt64, length: Int, attempt: Int, on eventLoop: any EventLoop)
        -> EventLoopFuture<ReadResult>
    {
        let sequential = attempt == 1 && readAhead(offset: offset, length: UInt64(length), on: eventLoop)
        if attempt == 1, let hit = readCachedWithoutGates(offset: offset, length: length, on: eventLoop) {
            remote?.hits.add(1, ordering: .relaxed)
            return hit
        }
        let indexes = Array(geometry.chunks(touching: offset, length: UInt64(length)))
        if attempt > 1, indexes.count > 1 {
            return readCachedChunkByChunk(indexes, offset: offset, length: length, on: eventLoop)
        }
        let goal: FillGoal = sequential && streamsPastCache ? .memoryOnly : .memory
        return fetch(offset: offset, length: UInt64(length), wholeChunks: sequential, goal: goal, on: eventLoop)
            .flatMap { () -> EventLoopFuture<ReadResult?> in
                // Downloads landed in memory (their fills may still be writing them) need no gates,
                // nor does the local file, given that no eviction intervenes.
                if let landed = self.readCachedWithoutGates(offset: offset, length: length, on: eventLoop) {
                    return landed.map { Optional($0) }
                }
                return self.table.with(indexes, exclusive: false, changing: false, on: eventLoop) {
                    () -> EventLoopFuture<ReadResult?> in
                    // The gates keep evictions out, so the eviction count need not be compared.
                    let now = NIODeadline.now().uptimeNanoseconds
                    switch self.table.cachedRead(offset: offset, length: UInt64(length), now: now) {
                    case nil: return eventLoop.makeSucceededFuture(nil)
                    case .landed(let buffers): return eventLoop.makeSucceededFuture(Self.result(of: buffers))
                    case .local(let runs, _):
                        return self.readLocal(runs, offset: offset, length: length, on: eventLoop).map { Optional($0) }
                    }
                }
            }.flatMap { (result: ReadResult?) -> EventLoopFuture<ReadResult> in
                if let result { return eventLoop.makeSucceededFuture(result) }
                guard attempt < Self.cacheRetries else {
                    return eventLoop.makeFailedFuture(
                        BlockDeviceError(
                            .io, "volume '\(self.name)': blocks at \(offset) keep being evicted before they are read"))
                }
                return self.readCached(offset: offset, length: length, attempt: attempt + 1, on: eventLoop)
            }
            .flatMapErrorThrowing { throw self.deviceError($0) }
    }

    /// A read the cache holds whole, served without taking gates or waiting for anything but the
    /// local file (`ChunkTable.cachedRead`); nil when some of it must be downloaded. When an
    /// eviction began during the read of the file, the read is done again the long way.
    private func readCachedWithoutGates(offset: UInt64, length: Int, on eventLoop: any EventLoop)
        -> EventLoopFuture<ReadResult>?
    {
        let now = NIODeadline.now().uptimeNanoseconds
        guard remote != nil, let hit = table.cachedRead(offset: offset, length: UInt64(length), now: now) else {
            return nil
        }
        switch hit {
        case .landed(let buffers):
            return eventLoop.makeSucceededFuture(Self.result(of: buffers))
        case .local(let runs, let evictionsBegun):
            return readLocal(runs, offset: offset, length: length, unlessEvictedSince: evictionsBegun, on: eventLoop)
        }
    }

    /// A read's answer made of consecutive buffers.
    private static func result(of buffers: [ByteBuffer]) -> ReadResult {
        buffers.count == 1 ? .data(buffers[0]) : .segments(buffers.map { .data($0) })
    }

    /// Reads a range one chunk at a time, so that only one chunk of it needs to stay cached.
    private func readCachedChunkByChunk(
        _ indexes: [Int], offset: UInt64, length: Int, on eventLoop: any EventLoop
    ) -> EventLoopFuture<ReadResult> {
        let start = eventLoop.makeSucceededFuture([ReadSegment]())
        return indexes.reduce(start) { previous, index in
            let slice = geometry.slice(ofChunk: index, offset: offset, length: UInt64(length))
            let sliceOffset = geometry.chunkStart(index) + UInt64(slice.lowerBound)
            return previous.flatMap { segments in
                self.readCached(offset: sliceOffset, length: slice.count, attempt: 1, on: eventLoop).map { piece in
                    switch piece {
                    case .data(let buffer): segments + [.data(buffer)]
                    case .segments(let pieces): segments + pieces
                    }
                }
            }
        }.map { .segments($0) }
    }

    public func write(offset: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let length = UInt64(data.readableBytes)
        if data.isAllZero {
            // Zero detection: a write of zeros (mkfs zeroing a journal, lazy inode table
            // initialisation) deallocates instead of filling the disk with zeros.
            return writeZeroes(offset: offset, length: length, options: fua ? [.fua] : [], on: eventLoop)
        }
        let indexes = Array(geometry.chunks(touching: offset, length: length))
        // A thin volume's recovery finds a FUA write's blocks in the file; a cached volume's
        // trusts only committed records, so there FUA is a flush after the write.
        let dsync = fua && remote == nil
        if let remote {
            let limit = ChunkTable.keptLimit(
                chunkSize: geometry.chunkSize, uploadConcurrency: remote.settings.uploadConcurrency)
            let pastCache = streamsPastCache
            let slices = indexes.map { geometry.slice(ofChunk: $0, offset: offset, length: length) }
            let deferring = zip(indexes, slices).map {
                table.mayDefer($0, bytes: $1, pastCache: pastCache, limit: limit)
            }
            if deferring.contains(true) {
                let pieces = indexes.indices.map {
                    writePiece(
                        of: data, at: offset, chunk: indexes[$0], bytes: slices[$0], deferring: deferring[$0],
                        whole: indexes.count == 1, limit: limit, on: eventLoop)
                }
                return finish(pieces, durable: fua, on: eventLoop)
            }
        }
        let written = writeIntoFile(offset: offset, data: data, indexes: indexes, dsync: dsync, on: eventLoop)
        return finish([written], durable: fua && !dsync, on: eventLoop)
    }

    /// A cached volume's write, chunk by chunk, when some of its chunks may be deferred (a
    /// sequential stream's writes cross chunks, a kernel's most often): the piece of `data` in
    /// `chunk` (`bytes` of it) is deferred when it can be, or written into the file. `whole`: the
    /// piece is all of the write (else a piece that covers its chunk is deferred as a copy, which
    /// does not hold the rest of the write in memory, and none is kept for its upload).
    private func writePiece(
        of data: ByteBuffer, at offset: UInt64, chunk index: Int, bytes: Range<Int>, deferring: Bool, whole: Bool,
        limit: Int, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        let start = geometry.chunkStart(index) + UInt64(bytes.lowerBound)
        let piece = whole ? data : data.getSlice(at: data.readerIndex + Int(start - offset), length: bytes.count)!
        guard deferring else {
            return writeIntoFile(offset: start, data: piece, indexes: [index], keeping: whole, on: eventLoop)
        }
        let covering = bytes.count == geometry.bytes(inChunk: index)
        let deferred = whole || !covering ? piece : ByteBuffer(bytes: piece.readableBytesView)
        return deferredWrite(deferred, chunk: index, bytes: bytes, limit: limit, on: eventLoop)
            .always { [table] _ in table.endDeferral(index) }
            .flatMapError { error in
                guard error is NotDeferred else { return eventLoop.makeFailedFuture(error) }
                return self.writeIntoFile(offset: start, data: piece, indexes: [index], keeping: whole, on: eventLoop)
            }
    }

    /// A write into the local file (with `dsync`, durable when done), its partial edge blocks
    /// first downloaded; with `keeping`, a write of one whole chunk leaves its bytes for the upload.
    private func writeIntoFile(
        offset: UInt64, data: ByteBuffer, indexes: [Int], dsync: Bool = false, keeping keep: Bool = true,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        let length = UInt64(data.readableBytes)
        let geometry = self.geometry
        let edges = partialBlocks(offset: offset, length: length)
        let keeping = keep ? keptWrite(offset: offset, data: data, indexes: indexes) : nil
        return admit(indexes, on: eventLoop).flatMap {
            self.changeOutsideMemory(indexes, on: eventLoop) {
                self.changeWithEdges(indexes, edges: edges, exclusive: false, keeping: keeping, on: eventLoop) {
                    [io = self.io, file = self.file] in
                    if let refused = self.refuseDeferred(indexes, on: eventLoop) { return refused }
                    guard dsync else { return self.writeChanged(data, at: offset, on: eventLoop) }
                    if let fenced = self.fence.withLockedValue({ $0 }) { return eventLoop.makeFailedFuture(fenced) }
                    return io.write(file, offset: offset, data: data, dsync: true, on: eventLoop).flatMapError {
                        error in
                        // Space that could not be allocated is no lost write-back; anything else may be.
                        if (error as? LocalIOError)?.isNoSpace != true { self.fence(after: error, in: "a FUA write") }
                        return eventLoop.makeFailedFuture(error)
                    }
                } update: { index, state in
                    let blocks = ChunkGeometry.blocksTouching(
                        geometry.slice(ofChunk: index, offset: offset, length: length))
                    state.valid.set(blocks)
                    state.present.set(blocks)
                    if !state.partialTrims.isEmpty {
                        state.partialTrims = state.partialTrims.filter { !blocks.contains($0.key) }
                    }
                }
            }
        }
    }

    /// A cached volume's write within one chunk that the local file holds nothing of, into a
    /// full cache (where streams go past it: the chunk would only push out chunks in use), or
    /// into a chunk deferred already: deferred (`WrittenChunks`) when the table allows it with
    /// the chunk held alone, its bytes then the chunk's data in memory until its upload is named
    /// (it then goes around the cache, to the store alone) or something needs them in the file.
    /// Fails with `NotDeferred` otherwise, having changed no data (the chunk was marked dirty),
    /// for the write to go into the file.
    private func deferredWrite(
        _ data: ByteBuffer, chunk index: Int, bytes: Range<Int>, limit: Int, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        admit([index], on: eventLoop).flatMap {
            self.table.with([index], exclusive: true, on: eventLoop) {
                guard
                    self.table.deferWrite(
                        data, inChunk: index, at: bytes, pastCache: self.streamsPastCache, limit: limit)
                else { return eventLoop.makeFailedFuture(NotDeferred()) }
                self.remote?.deferredWrites.add(1, ordering: .relaxed)
                Counter(label: "blockgate_deferred_writes_total", dimensions: [("volume", self.name)]).increment()
                return eventLoop.makeSucceededVoidFuture()
            } update: { _, state in
                // A deferred chunk's blocks are not in the file: present stays empty.
                let blocks = ChunkGeometry.blocksTouching(bytes)
                state.valid.set(blocks)
                if !state.partialTrims.isEmpty {
                    state.partialTrims = state.partialTrims.filter { !blocks.contains($0.key) }
                }
            }
        }
    }

    /// A write the table would not defer after all: it goes into the file instead.
    private struct NotDeferred: Error {}

    /// A cached volume's write of one whole chunk, no more, into the file leaves its bytes for
    /// the upload, which then need not read the file (`WrittenChunks`), while the uploader
    /// catches up (`uploadsAreUrgent`): in the background the upload comes long after later
    /// writes have taken the bytes' place, and keeping them only makes each write land in memory
    /// touched for the first time instead of the memory the one before it left (60–80 µs more
    /// processor per 1 MiB write). (A slice of a larger write would hold all of it in memory until
    /// its own upload.) Within `ChunkTable.keptLimit` bytes.
    private func keptWrite(offset: UInt64, data: ByteBuffer, indexes: [Int]) -> ChunkTable.KeptWrite? {
        guard let remote, indexes.count == 1, offset == geometry.chunkStart(indexes[0]),
            data.readableBytes == geometry.bytes(inChunk: indexes[0]), uploadsAreUrgent(remote)
        else { return nil }
        let limit = ChunkTable.keptLimit(
            chunkSize: geometry.chunkSize, uploadConcurrency: remote.settings.uploadConcurrency)
        return ChunkTable.KeptWrite(chunk: indexes[0], data: data, limit: limit)
    }

    public func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        round(syncing: true, on: eventLoop)
    }

    /// Has a round name the uploads stored so far, without syncing the file when it can
    /// (`ChunkTable.commitNames`): a flush would write to the disk the blocks of chunks that,
    /// once named, the cache may evict before they ever need to be there.
    func nameUploads(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        round(syncing: false, on: eventLoop)
    }

    /// Runs a round now, or has the next one serve the caller (and sync if it asks).
    private func round(syncing: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        let start = flushes.withLockedValue { state in
            switch state {
            case .idle:
                state = .running(next: [], syncs: false)
                return true
            case .running(var next, let syncs):
                next.append(promise)
                state = .running(next: next, syncs: syncs || syncing)
                return false
            }
        }
        if start { runFlushRound(for: [promise], syncing: syncing, on: eventLoop) }
        return promise.futureResult
    }

    public func trim(offset: UInt64, length: UInt64, fua: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let work = table.allocatedChunks(in: geometry.chunks(touching: offset, length: length)).compactMap {
            index -> EventLoopFuture<Void>? in
            let slice = geometry.slice(ofChunk: index, offset: offset, length: length)
            guard !table.trimPlan(ofChunk: index, bytes: slice).isEmpty else { return nil }
            return invalidate(chunk: index, bytes: slice, on: eventLoop)
        }
        return finish(work, durable: fua, on: eventLoop)
    }

    public func writeZeroes(offset: UInt64, length: UInt64, options: ZeroOptions, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let chunkRange = geometry.chunks(touching: offset, length: length)
        let edgeChunks: Set = [chunkRange.lowerBound, chunkRange.upperBound - 1]
        let keepAllocated = options.contains(.noHole)
        let zeroChunk: @Sendable (Int) -> EventLoopFuture<Void> = { index in
            let slice = self.geometry.slice(ofChunk: index, offset: offset, length: length)
            if keepAllocated || edgeChunks.contains(index) {
                return self.zero(chunk: index, bytes: slice, keepAllocated: keepAllocated, on: eventLoop)
            }
            return self.invalidate(chunk: index, bytes: slice, on: eventLoop)
        }
        guard keepAllocated else {
            let work = table.allocatedChunks(in: chunkRange).map(zeroChunk)
            return finish(work, durable: options.contains(.fua), on: eventLoop)
        }
        let zeroed = zeroWindows(from: chunkRange.lowerBound, of: chunkRange, zeroChunk, on: eventLoop)
        return options.contains(.fua) ? zeroed.flatMap { self.flush(on: eventLoop) } : zeroed
    }

    /// Runs `zeroChunk` over every chunk of a range, a window at a time, so that zeroing a huge
    /// range while keeping it allocated costs time, not memory.
    private func zeroWindows(
        from start: Int, of chunks: Range<Int>, _ zeroChunk: @escaping @Sendable (Int) -> EventLoopFuture<Void>,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        guard start < chunks.upperBound else { return eventLoop.makeSucceededVoidFuture() }
        let window = start..<min(start + Self.zeroWindow, chunks.upperBound)
        return finish(window.map(zeroChunk), durable: false, on: eventLoop).flatMap {
            self.zeroWindows(from: window.upperBound, of: chunks, zeroChunk, on: eventLoop)
        }
    }

    /// Downloads the range into the cache (cached volumes); thin volumes have nothing to do.
    public func cache(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard remote != nil else { return eventLoop.makeSucceededVoidFuture() }
        return fetch(offset: offset, length: length, on: eventLoop).flatMapErrorThrowing { throw self.deviceError($0) }
    }

    public func blockStatus(offset: UInt64, length: UInt64, on eventLoop: any EventLoop)
        -> EventLoopFuture<[BlockExtent]>
    {
        let extents = table.extents(offset: offset, length: length, maximumExtents: Self.maximumExtents)
        return eventLoop.makeSucceededFuture(
            extents.map { BlockExtent(length: $0.length, isHole: !$0.allocated, isZero: !$0.allocated) })
    }

    // MARK: - Operations on chunks

    /// Trims a chunk-relative byte range (see `TrimPlan`): punches the blocks it invalidates (the
    /// whole chunk when nothing in it stays valid) and clears their bits.
    private func invalidate(chunk index: Int, bytes: Range<Int>, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let chunkStart = geometry.chunkStart(index)
        let blockSize = UInt64(ChunkGeometry.blockSize)
        return admit([index], on: eventLoop).flatMap {
            self.changeOutsideMemory([index], on: eventLoop) {
                self.table.with([index], exclusive: true, on: eventLoop) {
                    [table = self.table, io = self.io, file = self.file] in
                    if let refused = self.refuseDeferred([index], on: eventLoop) { return refused }
                    let plan = table.trimPlan(ofChunk: index, bytes: bytes)
                    let runs = plan.emptiesChunk ? [0..<table.geometry.blocks(inChunk: index)] : plan.invalidatedRuns
                    let punches = runs.map { run in
                        io.allocate(
                            file, mode: .punchHole, offset: chunkStart + UInt64(run.lowerBound) * blockSize,
                            length: UInt64(run.count) * blockSize, on: eventLoop)
                    }
                    return EventLoopFuture.allDone(punches, on: eventLoop)
                } update: { _, state in
                    let plan = TrimPlan(valid: state.valid, partialTrims: state.partialTrims, bytes: bytes)
                    plan.apply(to: &state)
                    for run in plan.invalidatedRuns { state.present.clear(run) }
                }
            }
        }
    }

    /// Zeros a chunk-relative byte range: whole blocks by punching (or, keeping them allocated,
    /// by FALLOC_FL_ZERO_RANGE), partial blocks by writing zeros where they hold data.
    private func zero(chunk index: Int, bytes: Range<Int>, keepAllocated: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let chunkStart = geometry.chunkStart(index)
        let blockSize = ChunkGeometry.blockSize
        let covered = ChunkGeometry.blocksCovered(bytes)
        let touched = ChunkGeometry.blocksTouching(bytes)
        let bitmap = table.bitmap(ofChunk: index)
        let headEnd = min(bytes.upperBound, (bytes.lowerBound + blockSize - 1) / blockSize * blockSize)
        let tailStart = max(headEnd, bytes.upperBound / blockSize * blockSize)
        let partialBytes = [bytes.lowerBound..<headEnd, tailStart..<bytes.upperBound].filter {
            !$0.isEmpty && (keepAllocated || bitmap.contains($0.lowerBound / blockSize))
        }
        let partialBlocks = partialBytes.map { ($0.lowerBound / blockSize)..<($0.lowerBound / blockSize + 1) }
        if covered.isEmpty && partialBytes.isEmpty { return eventLoop.makeSucceededVoidFuture() }
        let edges = remote == nil ? [] : partialBlocks.map { Edge(chunk: index, blocks: $0) }
        return admit([index], on: eventLoop).flatMap {
            self.changeOutsideMemory([index], on: eventLoop) {
                self.changeWithEdges([index], edges: edges, exclusive: true, on: eventLoop) {
                    [io = self.io, file = self.file] in
                    if let refused = self.refuseDeferred([index], on: eventLoop) { return refused }
                    var work = partialBytes.map { range -> EventLoopFuture<Void> in
                        var zeros = ByteBuffer()
                        zeros.writeRepeatingByte(0, count: range.count)
                        return io.write(
                            file, offset: chunkStart + UInt64(range.lowerBound), data: zeros, dsync: false,
                            on: eventLoop)
                    }
                    if !covered.isEmpty {
                        work.append(
                            io.allocate(
                                file, mode: keepAllocated ? .zeroRange : .punchHole,
                                offset: chunkStart + UInt64(covered.lowerBound * blockSize),
                                length: UInt64(covered.count * blockSize), on: eventLoop))
                    }
                    return EventLoopFuture.allDone(work, on: eventLoop)
                } update: { _, state in
                    if keepAllocated {
                        state.valid.set(touched)
                        state.present.set(touched)
                    } else {
                        state.valid.clear(covered)
                        state.present.clear(covered)
                        for blocks in partialBlocks {
                            state.valid.set(blocks)
                            state.present.set(blocks)
                        }
                    }
                    state.partialTrims = state.partialTrims.filter { !touched.contains($0.key) }
                }
            }
        }
    }

    /// Waits for per-chunk work, then, for FUA, flushes.
    private func finish(_ work: [EventLoopFuture<Void>], durable: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        // One piece of work (most writes) needs no combined future.
        let all = work.count == 1 ? work[0].hop(to: eventLoop) : EventLoopFuture.andAllSucceed(work, on: eventLoop)
        let settled = all.flatMapErrorThrowing { throw self.deviceError($0) }
        return durable ? settled.flatMap { self.flush(on: eventLoop) } : settled
    }

    // MARK: - Flush

    /// One durability round: capture the records to commit, fdatasync the file, commit them
    /// (naming uploaded objects and retiring replaced ones), then let the collector delete what
    /// the commit retired. Unless `syncing`, a round that can name the stored uploads without a
    /// sync does only that (`nameWithoutSync`). Flushes and uploads that arrive meanwhile are
    /// served together by the next round. A failed sync fences the volume; a failed commit
    /// leaves its chunks dirty and its uploads unnamed, for the next round.
    private func runFlushRound(for waiters: [EventLoopPromise<Void>], syncing: Bool, on eventLoop: any EventLoop) {
        let round: EventLoopFuture<Void>
        if let fenced = fence.withLockedValue({ $0 }) {
            table.failStoredUploads(fenced)
            round = eventLoop.makeFailedFuture(fenced)
        } else if !syncing, let named = nameWithoutSync(on: eventLoop) {
            round = named
        } else {
            round = materializeDeferred(on: eventLoop).flatMap { self.syncAndCommit(on: eventLoop) }
        }
        round.whenComplete { result in
            if case .failure(let error) = result, self.fenced == nil {
                self.logger.error("flush of volume '\(self.name)' failed: \(error)")
            }
            let mapped = result.mapError { self.deviceError($0) as any Error }
            for waiter in waiters { waiter.completeWith(mapped) }
            let (next, syncs) = self.flushes.withLockedValue { state -> ([EventLoopPromise<Void>], Bool) in
                guard case .running(let next, let syncs) = state, !next.isEmpty else {
                    state = .idle
                    return ([], false)
                }
                state = .running(next: [], syncs: false)
                return (next, syncs)
            }
            if !next.isEmpty { self.runFlushRound(for: next, syncing: syncs, on: eventLoop) }
        }
    }

    /// Before a round that syncs captures its records: writes the deferred chunks into the file,
    /// deferring none until the capture (`ChunkTable.pauseDeferring`), so that the sync (or an
    /// upload the round names) covers every write acknowledged so far. When that fails, the
    /// uploads waiting to be named are failed too (they are made again, and ask for rounds of
    /// their own).
    private func materializeDeferred(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard remote != nil else { return eventLoop.makeSucceededVoidFuture() }
        let deferred = table.pauseDeferring()
        return materialize(deferred, on: eventLoop).flatMapErrorThrowing { [table] error in
            table.resumeDeferring()
            table.failStoredUploads(error)
            throw error
        }
    }

    /// A round's capture, sync and commit.
    private func syncAndCommit(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        // Announced before the capture, so that nothing it takes looks finished meanwhile.
        remote?.committing()
        // This round names every upload stored so far: the background round due for them
        // would sync the file again for nothing.
        remote?.cancelBackgroundRound()
        let snapshot = table.flushSnapshot()
        if snapshot.isEmpty {
            remote?.committed(volume: name, owes: false)
            snapshot.settleUploads(.success(()))
            return eventLoop.makeSucceededVoidFuture()
        }
        let committed = io.syncData(file, on: eventLoop).flatMapError { error in
            self.fence(after: error, in: "fdatasync")
            return eventLoop.makeFailedFuture(error)
        }.flatMap { [table] in
            let (committed, retires, changes) = table.commitFlush(snapshot, on: eventLoop)
            return committed.always { table.settle(changes, committed: (try? $0.get()) != nil) }.map { retires }
        }
        committed.whenComplete { [table] result in
            if case .failure = result { table.restore(snapshot) }
            self.remote?.committed(volume: self.name, owes: (try? result.get()) ?? false)
            snapshot.settleUploads(result.map { _ in })
        }
        return committed.map { _ in }
    }

    /// A round that names the stored uploads without syncing the file; nil when one of them
    /// needs a round that syncs (`ChunkTable.commitNames`).
    private func nameWithoutSync(on eventLoop: any EventLoop) -> EventLoopFuture<Void>? {
        remote?.committing()
        // Before the uploads are taken: one stored after them asks for a round of its own.
        remote?.cancelBackgroundRound()
        switch table.commitNames(on: eventLoop) {
        case .needsSync:
            remote?.committed(volume: name, owes: false)
            return nil
        case .nothing:
            remote?.committed(volume: name, owes: false)
            return eventLoop.makeSucceededVoidFuture()
        case .committed(let commit, let changes, let uploads):
            let settled = commit.always { [table] in table.settle(changes, committed: (try? $0.get()) != nil) }
            settled.whenComplete { result in
                self.remote?.committed(volume: self.name, owes: (try? result.get()) != nil)
                for upload in uploads { upload.named.completeWith(result) }
            }
            return settled
        }
    }

    // MARK: - Helpers

    func readFile(offset: UInt64, length: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        io.read(file, offset: offset, length: length, on: eventLoop).flatMapErrorThrowing { throw self.deviceError($0) }
    }

    /// `buffer` with the bytes of `ranges` zeroed. Where the file holds no block's data (a hole
    /// of the chunk map), it holds zeros only as long as the punch that made the hole survived:
    /// a punch a power cut undid, with nothing that recorded the block since, leaves old bytes
    /// there, which a read of several blocks in one piece must not return.
    static func zeroing(_ ranges: [Range<Int>], of buffer: ByteBuffer) -> ByteBuffer {
        var buffer = buffer
        for range in ranges where !range.isEmpty {
            buffer.setRepeatingByte(0, count: range.count, at: buffer.readerIndex + range.lowerBound)
        }
        return buffer
    }

    /// The chunk engine's boundary: every failure leaves as a `BlockDeviceError`.
    func deviceError(_ error: any Error) -> BlockDeviceError {
        if let error = error as? BlockDeviceError { return error }
        if let error = error as? LocalIOError {
            return BlockDeviceError(error.isNoSpace ? .noSpace : .io, "volume '\(name)': \(error)")
        }
        return BlockDeviceError(.io, "volume '\(name)': \(error)")
    }
}
