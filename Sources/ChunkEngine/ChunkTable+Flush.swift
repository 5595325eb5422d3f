import Metadata
import NIOCore

/// A durability round's side of the chunk map. A round captures what it will record (before the
/// data sync), syncs the file, then commits the captured records: so a record never claims data
/// the sync did not cover, whatever happened between the sync and the commit. Rounds run one
/// at a time (Volume's flush state), so their commits land in the order of their captures.
extension ChunkTable {
    /// One chunk as a round captured it before the data sync.
    fileprivate struct Captured {
        let generation: UInt64
        let valid: BlockBitmap
        let present: BlockBitmap
        let remoteGeneration: UInt64
        /// Clean, captured only to record its blocks as present again (`unsyncedPresent`).
        let presentOnly: Bool
    }

    /// An uploaded object that the next round names in the chunk's record.
    struct StoredUpload {
        /// The object's generation.
        let generation: UInt64
        /// The chunk's data generation the object holds.
        let snapshot: UInt64
        /// Completed when the round that captured it has committed (or failed).
        let named: EventLoopPromise<Void>
    }

    /// What a round records: the dirty chunks (and those it names new objects for or retires
    /// objects of) as they were before the data sync, the chunks to forget, and the objects no
    /// record will name any more.
    struct FlushSnapshot {
        fileprivate let captured: [Int: Captured]
        fileprivate let deleted: Set<Int>
        fileprivate let uploads: [Int: StoredUpload]
        fileprivate let retired: [(index: Int, generation: UInt64)]
        var isEmpty: Bool { captured.isEmpty && deleted.isEmpty && retired.isEmpty }

        /// Tells the uploads this round named how its commit went.
        func settleUploads(_ result: Result<Void, any Error>) {
            for upload in uploads.values { upload.named.completeWith(result) }
        }
    }

    /// An upload of `index` as `generation`, holding the chunk's data at `snapshot`, is in the
    /// store: the next round names it, and completes `named` once it has committed.
    func stored(_ index: Int, generation: UInt64, snapshot: UInt64, named: EventLoopPromise<Void>) {
        lock.withLock {
            storedUploads[index] = StoredUpload(generation: generation, snapshot: snapshot, named: named)
        }
    }

    /// Fails the uploads no round will name (the volume is fenced, or its rounds stopped).
    func failStoredUploads(_ error: any Error) {
        let stored = lock.withLock {
            defer { storedUploads.removeAll() }
            return storedUploads.values.map(\.named)
        }
        for named in stored { named.fail(error) }
    }

    /// Captures the round's records; call before the data sync, after the round materialized the
    /// deferred chunks (`pauseDeferring`): a chunk still deferred is captured with no block
    /// present, and named by the upload that holds its data. Writes may be deferred again from
    /// here: this round records such a chunk as it stood before (its file untouched since), and
    /// names no upload of its data.
    func flushSnapshot() -> FlushSnapshot {
        lock.withLock {
            var indexes = Set(storedUploads.keys)
            for index in dirtyChunks {
                // A dirty chunk whose record already holds its state (a cached chunk waiting for
                // its upload) is not written again.
                guard case .dirty = chunks[index]!.journal,
                    chunks[index]!.generation != chunks[index]!.recordedGeneration
                else { continue }
                indexes.insert(index)
            }
            // A dropped chunk re-created since: its new record must replace the one naming the
            // retired object in the same commit.
            for orphan in orphans where chunks[orphan.index] != nil { indexes.insert(orphan.index) }
            var captured: [Int: Captured] = [:]
            for index in indexes.union(unsyncedPresent) {
                guard let state = chunks[index] else { continue }
                captured[index] = Captured(
                    generation: state.generation, valid: state.valid, present: state.present,
                    remoteGeneration: state.remoteGeneration, presentOnly: !indexes.contains(index))
            }
            defer {
                orphans.removeAll()
                storedUploads.removeAll()
                deferringPaused = false
            }
            return FlushSnapshot(captured: captured, deleted: deletedChunks, uploads: storedUploads, retired: orphans)
        }
    }

    /// What a round's commit changed in memory before it landed, for `settle` to confirm or
    /// undo.
    struct RoundChanges {
        /// Chunks the commit records as clean (left `.cleaning`).
        fileprivate var cleaned: [Int] = []
        /// Chunks whose state names the round's upload instead of the generation before it.
        fileprivate var renamed: [(index: Int, previous: UInt64, generation: UInt64)] = []
        /// Chunks whose record the commit writes with their blocks present again.
        fileprivate var presentAgain: [Int] = []
        /// Chunks a naming round records with no block present (`unsyncedPresent` once it lands).
        fileprivate var namedUnsynced: [Int] = []
    }

    /// After the data sync: commits the captured records. A chunk untouched since the capture
    /// is recorded clean: on a thin volume always, on a cached one when the round names an
    /// upload holding its data; it is `.cleaning` until `settle` sees the commit land. The
    /// commit is queued under the lock, so that it lands before any dirty mark a later change
    /// queues. Returns the commit, whether it left objects to delete, and what `settle` needs.
    func commitFlush(_ snapshot: FlushSnapshot, on eventLoop: any EventLoop) -> (
        committed: EventLoopFuture<Void>, retires: Bool, changes: RoundChanges
    ) {
        lock.withLock {
            var changes: [ChunkChange] = []
            var retired: [(index: Int, generation: UInt64)] = []
            var round = RoundChanges()
            for (index, captured) in snapshot.captured.sorted(by: { $0.key < $1.key }) {
                let unsynced = unsyncedPresent.contains(index)
                if captured.presentOnly {
                    // Recorded only if still clean and cached: then nothing changed it since the
                    // capture (a change marks it dirty first) and the sync covered its blocks.
                    // Evicted or dropped meanwhile, its own record holds it; changed, the next
                    // round records it.
                    guard unsynced, let state = chunks[index], case .clean = state.journal else { continue }
                    round.presentAgain.append(index)
                    changes.append(
                        .store(
                            volumeID: volumeID,
                            record(
                                index, valid: captured.valid, present: captured.present,
                                remoteGeneration: state.remoteGeneration, dirty: false)))
                    continue
                }
                if unsynced { round.presentAgain.append(index) }
                let upload = snapshot.uploads[index]
                var remoteGeneration = chunks[index]?.remoteGeneration ?? captured.remoteGeneration
                var clean = false
                if var state = chunks[index] {
                    if let upload {
                        retired += rename(index, &state, to: upload, in: &round)
                        remoteGeneration = upload.generation
                    }
                    let unchangedSince = cached ? upload?.snapshot : captured.generation
                    if case .dirty = state.journal, state.generation == unchangedSince, !state.gate.isHeld {
                        clean = true
                        state.journal = .cleaning
                        round.cleaned.append(index)
                    }
                    state.recordedGeneration = captured.generation
                    chunks[index] = state
                }
                changes.append(
                    .store(
                        volumeID: volumeID,
                        record(
                            index, valid: captured.valid, present: captured.present,
                            remoteGeneration: remoteGeneration, dirty: !clean)))
            }
            var deleted: Set<Int> = []
            for index in snapshot.deleted.sorted() where chunks[index] == nil {
                deletedChunks.remove(index)
                deleted.insert(index)
                changes.append(.delete(volumeID: volumeID, index: Int64(index)))
            }
            // An object is retired only in the commit that stops its chunk's record naming it;
            // a chunk re-created after the capture waits for the next round.
            for orphan in snapshot.retired {
                if deleted.contains(orphan.index) || snapshot.captured[orphan.index] != nil {
                    retired.append(orphan)
                } else {
                    orphans.append(orphan)
                }
            }
            changes += retired.map {
                .retire(volumeID: volumeID, index: Int64($0.index), generation: $0.generation)
            }
            // Naming an upload also owes the uploads of the chunk begun before it (a crash or a
            // failure interrupted them).
            let owes = !retired.isEmpty || !deleted.isEmpty || !snapshot.uploads.isEmpty
            return (journal.submit(changes, on: eventLoop), owes, round)
        }
    }

    /// What a naming round (`commitNames`) did.
    enum Naming {
        /// No upload waits to be named.
        case nothing
        /// A stored upload's chunk changed since its snapshot, or is in use, or its record must
        /// also stop naming an object of the chunk dropped before: a round that syncs names the
        /// uploads instead (its record keeps what the last sync covered; the object is retired
        /// in the same commit).
        case needsSync
        /// The commit, what `settle` needs, and the uploads it names (to be told how it went);
        /// it owes the objects the uploads replace.
        case committed(EventLoopFuture<Void>, changes: RoundChanges, uploads: [StoredUpload])
    }

    /// A naming round's commit, made without a data sync: when every stored upload's chunk is
    /// unchanged since the upload's snapshot, records each clean, naming its upload, with no
    /// block present and `unsynced` (its blocks in the file were never synced and may not
    /// survive a power loss; the object holds them all). The next round that syncs records them
    /// present again. Queued under the lock like `commitFlush`.
    func commitNames(on eventLoop: any EventLoop) -> Naming {
        lock.withLock {
            guard !storedUploads.isEmpty else { return .nothing }
            for (index, upload) in storedUploads {
                guard let state = chunks[index], case .dirty = state.journal, state.generation == upload.snapshot,
                    !state.gate.isHeld, !orphans.contains(where: { $0.index == index })
                else { return .needsSync }
            }
            var changes: [ChunkChange] = []
            var retired: [(index: Int, generation: UInt64)] = []
            var round = RoundChanges()
            for (index, upload) in storedUploads.sorted(by: { $0.key < $1.key }) {
                var state = chunks[index]!
                retired += rename(index, &state, to: upload, in: &round)
                round.cleaned.append(index)
                round.namedUnsynced.append(index)
                state.journal = .cleaning
                state.recordedGeneration = state.generation
                chunks[index] = state
                changes.append(
                    .store(
                        volumeID: volumeID,
                        record(
                            index, valid: state.valid, present: BlockBitmap(count: state.valid.count),
                            remoteGeneration: upload.generation, dirty: false, unsynced: true)))
            }
            let uploads = Array(storedUploads.values)
            storedUploads.removeAll()
            changes += retired.map { .retire(volumeID: volumeID, index: Int64($0.index), generation: $0.generation) }
            return .committed(journal.submit(changes, on: eventLoop), changes: round, uploads: uploads)
        }
    }

    /// Has a chunk's state name a stored upload (noted in `round`, for `settle` to undo if the
    /// commit fails); returns the generation it named before, which the commit retires. Lock held.
    private func rename(_ index: Int, _ state: inout ChunkState, to upload: StoredUpload, in round: inout RoundChanges)
        -> [(index: Int, generation: UInt64)]
    {
        round.renamed.append((index, state.remoteGeneration, upload.generation))
        defer { state.remoteGeneration = upload.generation }
        return state.remoteGeneration > 0 ? [(index, state.remoteGeneration)] : []
    }

    /// Once a round's commit is over. Landed: its `.cleaning` chunks are clean. Failed (the
    /// database kept what it held before): those chunks are dirty again, and chunks name the
    /// objects they named before the round (its uploads are made again).
    func settle(_ round: RoundChanges, committed: Bool) {
        lock.withLock {
            if committed {
                for index in round.presentAgain { unsyncedPresent.remove(index) }
                // (A chunk with no block in the file, deferred when it was named, has none to record.)
                for index in round.namedUnsynced where chunks[index]?.present.isEmpty == false {
                    unsyncedPresent.insert(index)
                }
            }
            for index in round.cleaned {
                switch chunks[index]?.journal {
                case .cleaning where committed:
                    chunks[index]!.journal = .clean
                    dirtyChunks.remove(index)
                    // Unchanged since the snapshot its upload took: the store holds its data.
                    written.dropDeferred(index)
                case .cleaning: chunks[index]!.journal = .dirty
                case .marking(let waiters, _) where !committed:
                    chunks[index]!.journal = .marking(waiters, recordIsDirty: true)
                default: break
                }
            }
            guard !committed else { return }
            // Their records hold what they held before the naming round.
            for index in round.namedUnsynced where chunks[index] != nil { chunks[index]!.recordedGeneration = 0 }
            for rename in round.renamed {
                if chunks[rename.index]?.remoteGeneration == rename.generation {
                    chunks[rename.index]!.remoteGeneration = rename.previous
                } else if rename.previous > 0 {
                    // Dropped meanwhile, as an orphan of the round's upload: the object the
                    // failed commit would have retired is an orphan too.
                    orphans.append((rename.index, rename.previous))
                }
            }
        }
    }

    /// Gives a failed round's retired objects and forgotten chunks back to the next round
    /// (its uploads are tried again instead). Retiring an object twice is harmless.
    func restore(_ snapshot: FlushSnapshot) {
        lock.withLock {
            orphans += snapshot.retired
            for index in snapshot.deleted {
                // A chunk made again meanwhile still has the record the commit would have deleted.
                if chunks[index] == nil { deletedChunks.insert(index) } else { chunks[index]!.unrecorded = false }
            }
            // Their records may not hold what the failed commit carried.
            for index in snapshot.captured.keys where chunks[index] != nil { chunks[index]!.recordedGeneration = 0 }
        }
    }

    /// The database record of a chunk in a given state.
    func record(
        _ index: Int, valid: BlockBitmap, present: BlockBitmap, remoteGeneration: UInt64, dirty: Bool,
        unsynced: Bool = false
    ) -> ChunkRecord {
        ChunkRecord(
            index: Int64(index), valid: valid.bytes, dirty: dirty, present: cached ? present.bytes : [],
            remoteGeneration: remoteGeneration, unsynced: unsynced)
    }
}
