import BlockDevice
import Codecs
import LocalIO
import Metadata
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ObjectStore

/// A cached volume's traffic with its object store: downloading what the cache misses,
/// uploading dirty chunks, evicting clean ones, and holding writers back when too much is dirty.
extension Volume {
    /// A partial block at the edge of a write or zeroing whose other bytes must first come from
    /// the object store.
    struct Edge: Sendable {
        let chunk: Int
        let blocks: Range<Int>
    }

    /// The edge blocks a byte range covers only partly.
    func partialBlocks(offset: UInt64, length: UInt64) -> [Edge] {
        guard remote != nil, length > 0 else { return [] }
        let blockSize = UInt64(ChunkGeometry.blockSize)
        var edges: [Edge] = []
        for position in [offset, offset + length] where position % blockSize != 0 {
            let chunk = Int(min(position, offset + length - 1) / UInt64(geometry.chunkSize))
            let block = Int((position - geometry.chunkStart(chunk)) / blockSize)
            if !edges.contains(where: { $0.chunk == chunk && $0.blocks.lowerBound == block }) {
                edges.append(Edge(chunk: chunk, blocks: block..<(block + 1)))
            }
        }
        return edges
    }

    /// Runs a change whose partial edge blocks are first downloaded; checks, with the chunks held,
    /// that no eviction took them since, and starts over if one did.
    func changeWithEdges(
        _ indexes: [Int], edges: [Edge], exclusive: Bool, keeping: ChunkTable.KeptWrite? = nil, attempt: Int = 1,
        on eventLoop: any EventLoop, _ body: @escaping @Sendable () -> EventLoopFuture<Void>,
        update: @escaping @Sendable (Int, inout ChunkState) -> Void
    ) -> EventLoopFuture<Void> {
        guard remote != nil, !edges.isEmpty else {
            return table.with(indexes, exclusive: exclusive, keeping: keeping, on: eventLoop, body, update: update)
        }
        let fetched = edges.map { fill(chunk: $0.chunk, blocks: $0.blocks, on: eventLoop) }
        return EventLoopFuture.andAllSucceed(fetched, on: eventLoop).flatMap {
            // Failing (rather than succeeding without `body`) keeps `update` from running.
            self.table.with(indexes, exclusive: exclusive, keeping: keeping, on: eventLoop) {
                let complete = edges.allSatisfy { self.table.missingBlocks(ofChunk: $0.chunk, in: $0.blocks) == nil }
                return complete ? body() : eventLoop.makeFailedFuture(EdgeEvicted())
            } update: { index, state in
                update(index, &state)
            }
        }.flatMapError { error in
            guard error is EdgeEvicted else { return eventLoop.makeFailedFuture(error) }
            guard attempt < Self.cacheRetries else {
                return eventLoop.makeFailedFuture(
                    BlockDeviceError(.io, "volume '\(self.name)': edge blocks keep being evicted"))
            }
            return self.changeWithEdges(
                indexes, edges: edges, exclusive: exclusive, keeping: keeping, attempt: attempt + 1, on: eventLoop,
                body,
                update: update)
        }
    }

    /// An edge block left the cache between its download and the change: start over.
    private struct EdgeEvicted: Error {}

    /// Runs a change that must find none of its chunks deferred (`refuseDeferred`): when one is,
    /// writes the deferred chunks into the file (`materialize`) and runs the change again. A
    /// chunk written into the file is not deferred again before it is uploaded and evicted.
    func changeOutsideMemory(
        _ indexes: [Int], attempt: Int = 1, on eventLoop: any EventLoop,
        _ change: @escaping @Sendable () -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Void> {
        change().flatMapError { error in
            guard let deferred = error as? ChunksDeferred else { return eventLoop.makeFailedFuture(error) }
            guard attempt < Self.cacheRetries else {
                return eventLoop.makeFailedFuture(
                    BlockDeviceError(.io, "volume '\(self.name)': chunks \(deferred.indexes) keep being deferred"))
            }
            return self.materialize(deferred.indexes, on: eventLoop).flatMap {
                self.changeOutsideMemory(indexes, attempt: attempt + 1, on: eventLoop, change)
            }
        }
    }

    /// Fails a change's body, run with its chunks held, when one of them is deferred: the file
    /// holds nothing of such a chunk, so a change there would leave it half old.
    func refuseDeferred(_ indexes: [Int], on eventLoop: any EventLoop) -> EventLoopFuture<Void>? {
        guard remote != nil else { return nil }
        let deferred = table.deferredChunks(among: indexes)
        return deferred.isEmpty ? nil : eventLoop.makeFailedFuture(ChunksDeferred(indexes: deferred))
    }

    /// Writes deferred chunks into the local file (`ChunkTable.materialize`).
    func materialize(_ indexes: [Int], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let keptLimit = ChunkTable.keptLimit(
            chunkSize: geometry.chunkSize, uploadConcurrency: remote?.settings.uploadConcurrency ?? 1)
        let writes = indexes.map { index in
            table.materialize(index, keptLimit: keptLimit, on: eventLoop) { [geometry] data in
                self.writeChanged(data, at: geometry.chunkStart(index), on: eventLoop)
            }
        }
        return EventLoopFuture.andAllSucceed(writes, on: eventLoop)
    }

    /// A change found chunks deferred: they are written into the file, and it starts over.
    private struct ChunksDeferred: Error {
        let indexes: [Int]
    }

    // MARK: - Downloading

    /// Downloads whatever of a byte range is only in the object store (with `wholeChunks`, all
    /// that its chunks lack, in one GET each where it can); counts a hit or a miss; done when
    /// the bytes are where `goal` says.
    func fetch(
        offset: UInt64, length: UInt64, wholeChunks: Bool = false, goal: FillGoal = .file,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        let blockSize = UInt64(ChunkGeometry.blockSize)
        var missed = false
        let work = table.allocatedChunks(in: geometry.chunks(touching: offset, length: length)).compactMap {
            index -> EventLoopFuture<Void>? in
            let slice = geometry.slice(ofChunk: index, offset: offset, length: length)
            let wanted =
                Int(UInt64(slice.lowerBound) / blockSize)..<Int((UInt64(slice.upperBound) + blockSize - 1) / blockSize)
            guard table.missingBlocks(ofChunk: index, in: wanted) != nil else { return nil }
            missed = true
            guard wholeChunks else { return fill(chunk: index, blocks: wanted, goal: goal, on: eventLoop) }
            // A damaged part of the object the read does not need must not fail it: fetch only
            // the wanted blocks then (the damage is logged and counted either way).
            return fill(chunk: index, blocks: 0..<geometry.blocks(inChunk: index), goal: goal, on: eventLoop)
                .flatMapError { error in
                    guard (error as? BlockDeviceError)?.kind == .damaged else {
                        return eventLoop.makeFailedFuture(error)
                    }
                    return self.fill(chunk: index, blocks: wanted, goal: goal, on: eventLoop)
                }
        }
        if missed { remote?.misses.add(1, ordering: .relaxed) } else { remote?.hits.add(1, ordering: .relaxed) }
        return EventLoopFuture.andAllSucceed(work, on: eventLoop)
    }

    /// Where a fill's blocks must be before it is done, and whether they go into the cache.
    enum FillGoal {
        /// In the local file (edges of a change, an upload, read-ahead into a cache with room).
        case file
        /// Readable: landed in memory (a reader); the fill goes on writing them to the file.
        case memory
        /// Landed in memory and never written to the file: a sequential stream past a full
        /// cache, whose chunks, read once, would only push out chunks in use. Falls back to
        /// `memory` unless the whole chunk is downloaded in one piece (a partial entry goes with
        /// its first read).
        case memoryOnly
    }

    /// Downloads the valid blocks of `blocks` that the cache lacks (ranged GETs of the chunk's
    /// object) and writes them into the local file, with the chunk held alone so that no write
    /// lands in between. One download per chunk at a time; others wait for it, then look again.
    /// Blocks are landed (`ChunkTable.land`) before they are written, so a reader need not wait
    /// for the disk; `goal` says when the fill is done and whether it writes them.
    func fill(chunk index: Int, blocks: Range<Int>, goal: FillGoal = .file, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        guard let remote, let (generation, runs) = table.missingBlocks(ofChunk: index, in: blocks) else {
            return eventLoop.makeSucceededVoidFuture()
        }
        if goal != .file, table.landedHolds(runs, ofChunk: index) { return eventLoop.makeSucceededVoidFuture() }
        if let busy = table.beginFill(ofChunk: index, on: eventLoop) {
            return busy.flatMap { self.fill(chunk: index, blocks: blocks, goal: goal, on: eventLoop) }
        }
        remote.fills.withLockedValue { $0 += 1 }
        let served = goal == .file ? nil : eventLoop.makePromise(of: Void.self)
        let memoryOnly = goal == .memoryOnly && runs == [0..<geometry.blocks(inChunk: index)]
        let blockSize = ChunkGeometry.blockSize
        let chunkStart = geometry.chunkStart(index)
        let downloads = runs.map { run in
            eventLoop.makeFutureWithTask { () -> (Range<Int>, ObjectBytes) in
                let data: ObjectBytes
                do {
                    // Never written to the file: views of the download will do, unaligned.
                    data = try await remote.objects.read(
                        chunk: index, generation: generation, blocks: run, key: try remote.chunkKey(index, generation),
                        asViews: memoryOnly)
                } catch let error as ObjectStoreError where error.kind == .notFound {
                    // An upload replaced (and deleted) the generation meanwhile: look again.
                    guard self.table.missingBlocks(ofChunk: index, in: blocks)?.generation != generation else {
                        throw error
                    }
                    throw GenerationReplaced()
                }
                guard data.count == run.count * blockSize else {
                    throw BlockDeviceError(
                        .io, "volume '\(self.name)': chunk \(index) generation \(generation) is shorter than expected")
                }
                return (run, data)
            }
        }
        let filled = EventLoopFuture.whenAllSucceed(downloads, on: eventLoop).flatMap { pieces in
            // The blocks the fill writes into the file, which are then present (no others: a
            // block a write landed in meanwhile is present already, and one of a chunk deferred
            // meanwhile must stay not present).
            let writing = NIOLockedValueBox<[Range<Int>]>([])
            return self.table.with([index], exclusive: true, changing: false, on: eventLoop) {
                () -> EventLoopFuture<Void> in
                // Only blocks still missing: a write may have landed while the download ran (or
                // deferred the chunk, which then misses none). Missing from a newer generation
                // (the chunk was deferred, uploaded and named meanwhile), the download is stale.
                let missing = self.table.missingBlocks(ofChunk: index, in: blocks)
                if let missing, missing.generation != generation {
                    return eventLoop.makeFailedFuture(GenerationReplaced())
                }
                let stillMissing = missing?.runs ?? []
                let landing = stillMissing == pieces.map(\.0)
                if landing {
                    let lost = self.table.land(
                        pieces.map { (blocks: $0.0, data: $0.1) }, inChunk: index, memoryOnly: memoryOnly,
                        limit: remote.landedLimit)
                    for chunk in lost { self.evictedUnread(chunk: chunk) }
                    served?.succeed(())
                    if memoryOnly {
                        Counter(label: "blockgate_cache_bypass_bytes_total", dimensions: [("volume", self.name)])
                            .increment(by: pieces[0].1.count)
                    }
                }
                // (Memory only: a write that landed meanwhile leaves the reader to look again.)
                guard !memoryOnly else { return eventLoop.makeSucceededVoidFuture() }
                var writes: [EventLoopFuture<Void>] = []
                for (run, data) in pieces {
                    for missing in stillMissing where missing.overlaps(run) {
                        let part = max(missing.lowerBound, run.lowerBound)..<min(missing.upperBound, run.upperBound)
                        writing.withLockedValue { $0.append(part) }
                        let start = (part.lowerBound - run.lowerBound) * blockSize
                        let slice = data.slice(start..<(start + part.count * blockSize)).joined
                        writes.append(
                            self.writeDownloaded(
                                slice, at: chunkStart + UInt64(part.lowerBound * blockSize), on: eventLoop))
                    }
                }
                return EventLoopFuture.allDone(writes, on: eventLoop).always { result in
                    if landing { self.table.settleLanded(inChunk: index, written: (try? result.get()) != nil) }
                }
            } update: { _, state in
                guard state.remoteGeneration == generation else { return }
                for run in writing.withLockedValue({ $0 }) { state.present.set(run) }
            }
        }.always { _ in
            self.table.endFill(ofChunk: index)
            remote.fills.withLockedValue { $0 -= 1 }
        }
        .flatMapError { error in
            guard error is GenerationReplaced else { return eventLoop.makeFailedFuture(error) }
            return self.fill(chunk: index, blocks: blocks, goal: goal, on: eventLoop)
        }
        guard let served else { return filled }
        // Whichever comes first: the landing, or the end of the fill (which may have landed
        // nothing, or failed).
        filled.cascade(to: served)
        return served.futureResult
    }

    /// The object a fill was reading was replaced by a newer upload.
    private struct GenerationReplaced: Error {}

    /// Downloaded runs from this size up go to the cache file with direct I/O.
    static let directWriteMinimum = 128 << 10

    /// Writes downloaded bytes into the local file: around the page cache when they are many
    /// (`directWriteMinimum`; a few blocks cost little to copy there, and a random reader waits
    /// for them). Downloaded data is clean (its object holds it), so no sync is needed; the next
    /// durability round syncs the file before it records the blocks as cached.
    private func writeDownloaded(_ data: ByteBuffer, at offset: UInt64, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        writeCacheFile(data, at: offset, aroundPageCache: data.readableBytes >= Self.directWriteMinimum, on: eventLoop)
            .map { _ in }
    }

    /// Writes a change into the local file: on a cached volume whose uploads are catching up
    /// (or whose streams go past a full cache), a large write (`directWriteMinimum`, or a whole
    /// chunk of a smaller size) goes around the page cache, as downloads do: it will be uploaded
    /// and evicted soon, and copying it into page-cache pages only for a flush to write them out
    /// later costs the processor and delays that flush. Either way not durable until the next
    /// sync of the file.
    func writeChanged(_ data: ByteBuffer, at offset: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard let remote else { return io.write(file, offset: offset, data: data, dsync: false, on: eventLoop) }
        let around =
            data.readableBytes >= min(Self.directWriteMinimum, geometry.chunkSize)
            && (streamsPastCache || uploadsAreUrgent(remote))
        return writeCacheFile(data, at: offset, aroundPageCache: around, on: eventLoop).map { wentAround in
            guard wentAround else { return }
            remote.directWrites.add(1, ordering: .relaxed)
            Counter(label: "blockgate_direct_writes_total", dimensions: [("volume", self.name)]).increment()
        }
    }

    /// Writes bytes into the cache file, through `directFile` when `aroundPageCache` and the
    /// buffer and offset allow it (`LocalFile.isDirectAligned`); through the page cache otherwise
    /// or when the filesystem refuses the direct write (EINVAL). Returns whether it went around.
    private func writeCacheFile(
        _ data: ByteBuffer, at offset: UInt64, aroundPageCache: Bool, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Bool> {
        let throughPageCache: @Sendable () -> EventLoopFuture<Bool> = { [io, file] in
            io.write(file, offset: offset, data: data, dsync: false, on: eventLoop).map { false }
        }
        guard aroundPageCache, let directFile, LocalFile.isDirectAligned(data, offset: offset) else {
            return throughPageCache()
        }
        return io.write(directFile, offset: offset, data: data, dsync: false, on: eventLoop).map { true }
            .flatMapError { error in
                guard (error as? LocalIOError)?.refusesDirectIO == true else {
                    return eventLoop.makeFailedFuture(error)
                }
                return throughPageCache()
            }
    }

    // MARK: - Backpressure

    /// Lets a change in; on a cached volume whose dirty data has reached the upload buffer, a
    /// change that would dirty another chunk waits for uploads, failing with ENOSPC past the timeout.
    /// Each wait is counted (`blockgate_backpressure_waits_total`, and
    /// `blockgate_backpressure_timeouts_total` for those that failed) and is held in `heldWrites`.
    func admit(_ indexes: [Int], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard let remote else { return eventLoop.makeSucceededVoidFuture() }
        guard !table.canDirty(indexes, limit: remote.settings.dirtyLimit) else {
            return eventLoop.makeSucceededVoidFuture()
        }
        let dimensions = [("volume", name)]
        Counter(label: "blockgate_backpressure_waits_total", dimensions: dimensions).increment()
        remote.heldWrites.withLockedValue { $0 += 1 }
        let promise = eventLoop.makePromise(of: Void.self)
        wait(toDirty: indexes, remote, until: .now() + remote.settings.backpressureTimeout, promise, on: eventLoop)
        return promise.futureResult.always { result in
            remote.heldWrites.withLockedValue { $0 -= 1 }
            if case .failure = result {
                Counter(label: "blockgate_backpressure_timeouts_total", dimensions: dimensions).increment()
            }
        }
    }

    /// Looks again every 20 ms until the change may dirty its chunks, or fails it at `deadline`.
    private func wait(
        toDirty indexes: [Int], _ remote: RemoteBacking, until deadline: NIODeadline,
        _ promise: EventLoopPromise<Void>, on eventLoop: any EventLoop
    ) {
        eventLoop.scheduleTask(in: .milliseconds(20)) {
            if self.table.canDirty(indexes, limit: remote.settings.dirtyLimit) {
                promise.succeed(())
            } else if NIODeadline.now() >= deadline {
                self.logger.error(
                    "volume '\(self.name)': the upload buffer (\(remote.settings.dirtyLimit >> 10) KiB of dirty chunks) did not drain within \(remote.settings.backpressureTimeout); failing the write with ENOSPC (is the object store reachable?)"
                )
                promise.fail(BlockDeviceError(.noSpace, "volume '\(self.name)': the upload buffer is full"))
            } else {
                self.wait(toDirty: indexes, remote, until: deadline, promise, on: eventLoop)
            }
        }
    }

    // MARK: - Uploading

    /// Starts the uploader of a cached volume (no-op for a thin one or when it runs).
    public func startUploader() {
        guard let remote else { return }
        remote.uploader.withLockedValue { task in
            guard task == nil else { return }
            task = Task { await self.uploadLoop(remote) }
        }
    }

    /// Stops the uploader, and waits for the rounds that name the objects it stored (running the
    /// one due in the background now); dirty chunks stay dirty (and recorded so) for the next
    /// start.
    public func stopUploader() async {
        guard let remote else { return }
        let task = remote.uploader.withLockedValue { task in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
        remote.cancelBackgroundRound()
        // Rounds run one at a time: this one ends after any under way, and names what they did not.
        if table.hasUploadsUnderWay { _ = try? await flush(on: remote.group.next()).get() }
    }

    private func uploadLoop(_ remote: RemoteBacking) async {
        var lastDeleteRetry = NIODeadline.now()
        var lastDropRound = NIODeadline.now()
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                // Chunks forgotten (TRIM emptied them) are recorded by the next durability round,
                // which makes their objects owed: run one if no client flush comes soon.
                if table.hasUnrecordedDrops, NIODeadline.now() - lastDropRound > Self.dropRoundInterval {
                    lastDropRound = .now()
                    group.addTask { _ = try? await self.flush(on: remote.group.next()).get() }
                }
                if remote.takeSettled() {
                    remote.collect(volume: name)
                } else if NIODeadline.now() - lastDeleteRetry > Self.deleteRetryInterval {
                    if remote.outstandingDeletes > 0 { remote.collect(volume: name) }
                    lastDeleteRetry = .now()
                }
                let pace = uploadPace(remote)
                let free = pace.slots - remote.activeUploads.withLockedValue { $0 }
                // A fenced volume's cache may have lost writes: nothing more of it goes to the store.
                if free > 0, fenced == nil {
                    for index in table.uploadCandidates(limit: free, due: pace.due)
                    where table.beginUpload(index) {
                        remote.activeUploads.withLockedValue { $0 += 1 }
                        group.addTask {
                            await self.uploadSlot(from: index, remote)
                            remote.activeUploads.withLockedValue { $0 -= 1 }
                        }
                    }
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// One of the uploader's slots: uploads a chunk, then goes straight on to the oldest dirty
    /// chunk no upload handles, so that a slot never idles until the loop looks again; it ends
    /// when there is none, or when the pace wants fewer slots.
    private func uploadSlot(from first: Int, _ remote: RemoteBacking) async {
        var index = first
        while true {
            await upload(chunk: index, remote)
            let pace = uploadPace(remote)
            guard !Task.isCancelled, fenced == nil, remote.activeUploads.withLockedValue({ $0 }) <= pace.slots,
                let next = table.uploadCandidates(limit: 1, due: pace.due).first(where: { table.beginUpload($0) })
            else { return }
            index = next
        }
    }

    /// How fast the uploader goes now. It catches up (every slot, chunks however recently
    /// changed) while dirty data passes half the upload buffer (so before any write waits for
    /// room) or someone waits for the uploads; otherwise it works in the background (a quarter
    /// of the slots), leaving the disk and the processors to the writes: once nothing in the
    /// volume has changed for `uploadDelay`, every dirty chunk; while the volume is being
    /// written, only chunks holding a change no upload took for `maximumUploadDelays` of it (a
    /// volume written all the time still goes to the store, a chunk once per
    /// `maximumUploadDelays`). A chunk of a volume in use is likely written again, and its upload
    /// would slow the writes it races.
    private func uploadPace(_ remote: RemoteBacking) -> (slots: Int, due: ChunkTable.UploadDue) {
        let settings = remote.settings
        let delay = UInt64(max(0, settings.uploadDelay.nanoseconds))
        let now = NIODeadline.now().uptimeNanoseconds
        let before = { (age: UInt64) in now > age ? now - age : 0 }
        // However the uploads are ordered, none waits much longer than it would in the background.
        let overdueBy = before(delay * Self.maximumUploadDelays)
        guard !uploadsAreUrgent(remote) else {
            return (settings.uploadConcurrency, .init(rested: true, pendingBy: .max, overdueBy: overdueBy))
        }
        let due = ChunkTable.UploadDue(
            rested: table.hasRested(since: before(delay)), pendingBy: overdueBy, overdueBy: overdueBy)
        return (max(1, settings.uploadConcurrency / 4), due)
    }

    /// How many upload delays a changed chunk waits at most for the volume's writes to pause.
    static let maximumUploadDelays: UInt64 = 60

    /// The objects the chunks' records name: where the volume's data is in the store (not the
    /// generations being replaced or settling, which a listing would show too).
    public func namedObjects() throws -> [ObjectKey] {
        guard let remote else { return [] }
        return try table.allocatedChunks(in: 0..<geometry.chunkCount).compactMap { index in
            try table.remoteGeneration(ofChunk: index).map { try remote.chunkKey(index, $0) }
        }
    }

    /// Whether the uploader catches up: dirty data passed half the upload buffer and is not yet
    /// back under a quarter of it (a writer that keeps it near half would otherwise have the
    /// uploads stop and start again as it crosses), or someone waits for the uploads.
    func uploadsAreUrgent(_ remote: RemoteBacking) -> Bool {
        let dirty = UInt64(table.cacheUsage().dirtyChunks) * UInt64(geometry.chunkSize)
        let limit = remote.settings.dirtyLimit
        let catchingUp = remote.catchingUp.withLockedValue { catchingUp in
            if dirty >= limit / 2 { catchingUp = true } else if dirty < limit / 4 { catchingUp = false }
            return catchingUp
        }
        return catchingUp || NIODeadline.now() < remote.hurriedUntil.withLockedValue { $0 }
    }

    /// Has a round name a stored upload: when the uploader catches up, or the upload holds a
    /// deferred chunk's data (whose memory the naming frees), the next round; in the background,
    /// a round run `RemoteSettings.backgroundRoundDelay` after the first upload that needs one,
    /// for all the uploads stored by then. Any round that runs first (a client's flush) names
    /// them as well. Only when a round runs changes, not what it commits.
    private func requestRound(_ remote: RemoteBacking, deferred: Bool, on eventLoop: any EventLoop) {
        guard !uploadsAreUrgent(remote) && !deferred else { return nameUploads(on: eventLoop).whenComplete { _ in } }
        remote.scheduleBackgroundRound(on: eventLoop) {
            self.nameUploads(on: eventLoop)
        } neverRan: { [table] error in
            // Nothing will name what waits.
            table.failStoredUploads(error)
        }
    }

    /// Uploads one chunk, retrying with growing pauses until its object is stored or the
    /// uploader stops. The chunk stays in upload (no other upload of it begins) until the round
    /// that names the object has committed or failed; the slot goes on meanwhile.
    private func upload(chunk index: Int, _ remote: RemoteBacking) async {
        var pause = TimeAmount.milliseconds(200)
        while !Task.isCancelled {
            do {
                let named = try await uploadOnce(chunk: index, remote)
                Counter(label: "blockgate_uploads_total", dimensions: [("volume", name)]).increment()
                guard let named else { break }
                // The upload ends with the round, whatever its outcome: a chunk it did not make
                // clean is uploaded again.
                named.whenComplete { [table] _ in table.endUpload(index) }
                return
            } catch {
                if Task.isCancelled { break }
                Counter(label: "blockgate_upload_failures_total", dimensions: [("volume", name)]).increment()
                logger.warning("volume '\(name)': upload of chunk \(index) failed, retrying in \(pause): \(error)")
                try? await Task.sleep(nanoseconds: UInt64(pause.nanoseconds))
                pause = min(pause * 2, .seconds(10))
            }
        }
        table.endUpload(index)
    }

    /// Completes the chunk from the object store, snapshots it with the chunk held, and stores
    /// the snapshot as a new generation: the one the chunk's dirty mark began, or else one it
    /// records as begun first. Returns the naming of the object by a durability round (which
    /// retires the generation it replaces), or nil when TRIM emptied the chunk and nothing was
    /// uploaded.
    private func uploadOnce(chunk index: Int, _ remote: RemoteBacking) async throws -> EventLoopFuture<Void>? {
        let eventLoop = remote.group.next()
        let blocks = geometry.blocks(inChunk: index)
        try await fill(chunk: index, blocks: 0..<blocks, on: eventLoop).get()
        let start = geometry.chunkStart(index)
        let taken = try await table.with(
            [index], exclusive: true, changing: false, on: eventLoop,
            { () -> EventLoopFuture<(UInt64, ByteBuffer)?> in
                // A chunk TRIM emptied is dropped when the upload ends, not uploaded.
                let valid = self.table.bitmap(ofChunk: index)
                guard !valid.isEmpty else { return eventLoop.makeSucceededFuture(nil) }
                let generation = self.table.generation(ofChunk: index) ?? 0
                // The bytes its last write left, when that write had it alone; else the file's.
                if let written = self.table.takeWritten(ofChunk: index, generation: generation) {
                    remote.uploadsFromMemory.add(1, ordering: .relaxed)
                    Counter(label: "blockgate_uploads_from_memory_total", dimensions: [("volume", self.name)])
                        .increment()
                    return eventLoop.makeSucceededFuture((generation, written))
                }
                // Blocks no write made valid are stored as zeros, whatever the file holds there.
                let invalid = valid.runs(in: 0..<blocks).filter { !$0.1 }.map {
                    ($0.0.lowerBound * ChunkGeometry.blockSize)..<($0.0.upperBound * ChunkGeometry.blockSize)
                }
                return self.readFile(offset: start, length: self.geometry.bytes(inChunk: index), on: eventLoop)
                    .map { (generation, Self.zeroing(invalid, of: $0)) }
            },
            // The snapshot holds every change so far: the next one starts a new wait.
            update: { _, state in
                state.pendingSince = 0
                state.lastSnapshot = NIODeadline.now().uptimeNanoseconds
            }
        ).get()
        guard let (snapshot, data) = taken else { return nil }
        // The chunk stays in upload until the round naming it ends: nothing drops it or marks
        // it again meanwhile, so its mark's generation is still the one to take.
        let generation: UInt64
        if let begun = table.takeBegunUpload(ofChunk: index) {
            generation = begun
        } else {
            generation = remote.nextGeneration()
            try await journal.submit(
                [.beginUpload(volumeID: table.volumeID, index: Int64(index), generation: generation)], on: eventLoop
            ).get()
        }
        do {
            _ = try await remote.objects.write(
                data, chunk: index, generation: generation, key: try remote.chunkKey(index, generation))
        } catch {
            remote.uploadFailed(index: index, generation: generation)
            throw error
        }
        let named = eventLoop.makePromise(of: Void.self)
        table.stored(index, generation: generation, snapshot: snapshot, named: named)
        requestRound(remote, deferred: !table.deferredChunks(among: [index]).isEmpty, on: eventLoop)
        return named.futureResult
    }

    /// How often the uploader tries again the deletes that failed.
    static let deleteRetryInterval = TimeAmount.seconds(2)
    /// How long forgotten chunks wait for a client's flush to record them before the uploader
    /// runs a round of its own.
    static let dropRoundInterval = TimeAmount.milliseconds(500)

    /// Has the uploader catch up (every slot, no `uploadDelay`) for the next second: someone
    /// waits for the uploads, and says so again while they wait.
    public func hurryUploads() {
        guard let remote else { return }
        remote.hurriedUntil.withLockedValue { $0 = .now() + .seconds(1) }
        if remote.cancelBackgroundRound() { nameUploads(on: remote.group.next()).whenComplete { _ in } }
    }

    /// Waits until every dirty chunk is uploaded (hurrying the uploader meanwhile), every
    /// forgotten chunk recorded, and every replaced object deleted (but for those that wait for
    /// their uploads to settle), or until `limit` passed. Returns whether all that is done. It
    /// looks every `uploadWaitInterval`, so that who waits learns of the end within as long.
    @discardableResult
    public func waitUntilUploaded(within limit: Duration? = nil) async throws -> Bool {
        let deadline = limit.map { ContinuousClock.now + $0 }
        while table.cacheUsage().dirtyChunks > 0 || table.hasUnrecordedDrops || pendingDeletes > 0 {
            if let deadline, ContinuousClock.now >= deadline { return false }
            hurryUploads()
            try await Task.sleep(for: Self.uploadWaitInterval)
        }
        return true
    }

    /// How often `waitUntilUploaded` looks whether the uploads are done.
    static let uploadWaitInterval = Duration.milliseconds(5)

    // MARK: - Evicting

    /// Bytes of the local cache in use, dirty chunks, and chunks stored in the object store.
    public var cacheUsage: (cachedBytes: UInt64, dirtyChunks: Int) {
        let usage = table.cacheUsage()
        return (usage.presentBytes, usage.dirtyChunks)
    }

    /// Chunks stored in the object store.
    public var uploadedChunks: Int { table.uploadedChunks() }

    /// Reads of the object store that failed verification for good since the volume was opened:
    /// when any did, the volume is degraded (data in the store is damaged, or was altered).
    public var integrityFailures: UInt64 { remote?.objects.integrityFailures ?? 0 }

    /// How the volume's chunk objects are compressed and encrypted (nil for a thin volume).
    public var objectCodec: ObjectCodec? { remote?.objects.codec }

    /// The bytes of data the chunk objects in use hold, and the bytes they take in the store
    /// (read from a listing of the store: replaced objects not yet deleted do not count).
    public func storedBytes() async throws -> (logical: UInt64, stored: UInt64) {
        guard let remote else { return (0, 0) }
        var logical: UInt64 = 0
        var stored: UInt64 = 0
        for object in try await remote.store.list(prefix: RemoteBacking.chunkPrefix(uuid: remote.uuid)) {
            guard let (index, generation) = RemoteBacking.parseChunkKey(object.key, uuid: remote.uuid),
                table.remoteGeneration(ofChunk: index) == generation
            else { continue }
            logical += UInt64(geometry.bytes(inChunk: index))
            stored += object.size
        }
        return (logical, stored)
    }

    /// Objects replaced or emptied whose delete is due and not yet done.
    public var pendingDeletes: Int { remote?.outstandingDeletes ?? 0 }

    /// Objects replaced or emptied that wait for a PUT of theirs to settle (one an earlier
    /// process sent, or whose answer was lost) before they are deleted.
    public var settlingDeletes: Int { remote?.settlingDeletes ?? 0 }

    /// Writes waiting right now for the upload buffer to drain (0 on a thin volume).
    public var heldWrites: Int { remote?.heldWrites.withLockedValue { $0 } ?? 0 }

    /// Reads served from the cache alone, and reads that downloaded something.
    public var cacheCounts: (hits: UInt64, misses: UInt64) {
        guard let remote else { return (0, 0) }
        return (remote.hits.load(ordering: .relaxed), remote.misses.load(ordering: .relaxed))
    }

    /// Uploads that sent what a write of the whole chunk left in memory (`WrittenChunks`), not
    /// the local file's bytes.
    public var uploadsFromMemory: UInt64 { remote?.uploadsFromMemory.load(ordering: .relaxed) ?? 0 }

    /// Writes of whole chunks deferred (`WrittenChunks`): left in memory, not written into the file.
    public var deferredWrites: UInt64 { remote?.deferredWrites.load(ordering: .relaxed) ?? 0 }

    /// Changes written into the cache file around the page cache (`writeChanged`).
    public var directWrites: UInt64 { remote?.directWrites.load(ordering: .relaxed) ?? 0 }

    /// Evicts every chunk (after `waitUntilUploaded`, all are clean), waiting for chunks that are
    /// briefly in use.
    /// - Throws: `BlockDeviceError.io` when chunks stay cached for 10 seconds.
    public func dropCache() async throws {
        var idle = 0
        while cacheUsage.cachedBytes > 0 {
            if await evict(evictionCandidates(limit: Self.evictionBatch).map(\.index)) > 0 {
                idle = 0
                continue
            }
            idle += 1
            guard idle < 500 else {
                throw BlockDeviceError(.io, "volume '\(name)': chunks stay in the cache (dirty or in use)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The most chunks evicted in one commit.
    static let evictionBatch = 256

    /// This volume's least recently used evictable chunks, oldest first, at most `limit`.
    public func evictionCandidates(limit: Int) -> [EvictionCandidate] {
        table.evictionCandidates(limit: limit)
    }

    /// Evicts these chunks (those still clean and idle): records in one commit that their blocks
    /// left the cache, then punches them out. Returns how many were evicted.
    public func evict(_ indexes: [Int]) async -> Int {
        guard let remote else { return 0 }
        let taken = indexes.compactMap { index in table.beginEviction(index).map { (index, $0) } }
        guard !taken.isEmpty else { return 0 }
        defer { for (index, _) in taken { table.endEviction(index) } }
        let eventLoop = remote.group.next()
        do {
            try await journal.submit(taken.map(\.1), on: eventLoop).get()
            let punches = taken.map { index, _ in
                io.allocate(
                    file, mode: .punchHole, offset: geometry.chunkStart(index),
                    length: UInt64(geometry.bytes(inChunk: index)), on: eventLoop)
            }
            try await EventLoopFuture.allDone(punches, on: eventLoop).get()
            for (index, _) in taken { evictedUnread(chunk: index) }
        } catch {
            logger.error("volume '\(name)': eviction of \(taken.count) chunk(s) failed: \(error)")
        }
        return taken.count
    }
}
