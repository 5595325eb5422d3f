import Metadata
import NIOCore

extension ChunkTable {
    /// What a flush looks at: the dirty chunks with their generations, taken before the data sync.
    struct FlushSnapshot {
        fileprivate let generations: [Int: UInt64]
        fileprivate let deleted: Set<Int>
        /// Objects to delete once this flush's commit has landed.
        let orphans: [(index: Int, generation: UInt64)]
        var isEmpty: Bool { generations.isEmpty && deleted.isEmpty && orphans.isEmpty }
    }

    func flushSnapshot() -> FlushSnapshot {
        lock.withLock {
            var generations: [Int: UInt64] = [:]
            for index in dirtyChunks {
                if case .dirty = chunks[index]!.journal { generations[index] = chunks[index]!.generation }
            }
            defer { orphans.removeAll() }
            return FlushSnapshot(generations: generations, deleted: deletedChunks, orphans: orphans)
        }
    }

    /// After the data sync: commits the records that make the snapshot's chunks durable. On a
    /// thin volume, chunks untouched since the snapshot are committed clean (and become clean
    /// here); on a cached volume they stay dirty until uploaded. The commit is queued under the
    /// lock, so that it lands before any dirty mark a later change queues.
    func commitFlush(_ snapshot: FlushSnapshot, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        lock.withLock {
            var changes: [ChunkChange] = []
            for (index, generation) in snapshot.generations.sorted(by: { $0.key < $1.key }) {
                guard var state = chunks[index], case .dirty = state.journal else { continue }
                let clean = !cached && state.generation == generation && !state.gate.isHeld
                if clean {
                    state.journal = .clean
                    dirtyChunks.remove(index)
                    chunks[index] = state
                }
                changes.append(.store(volumeID: volumeID, record(index, state, dirty: !clean)))
            }
            for index in snapshot.deleted.sorted() where chunks[index] == nil {
                deletedChunks.remove(index)
                changes.append(.delete(volumeID: volumeID, index: Int64(index)))
            }
            return journal.submit(changes, on: eventLoop)
        }
    }

    /// The database record of a chunk's state.
    func record(_ index: Int, _ state: ChunkState, dirty: Bool) -> ChunkRecord {
        ChunkRecord(
            index: Int64(index), valid: state.valid.bytes, dirty: dirty, present: cached ? state.present.bytes : [],
            remoteGeneration: state.remoteGeneration)
    }
}
