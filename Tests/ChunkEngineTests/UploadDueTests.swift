import Testing

@testable import ChunkEngine

/// Which dirty chunks the uploader takes in the background (times in uptime nanoseconds): all
/// once the volume rests; while it is written, only those whose change has waited since
/// `pendingBy`; never one snapshotted after `pendingBy`.
@Suite struct UploadDueTests {
    private func dirtyChunk(pendingSince: UInt64, lastSnapshot: UInt64) -> ChunkState {
        var state = ChunkState(valid: BlockBitmap(count: 16), journal: .dirty)
        state.pendingSince = pendingSince
        state.lastSnapshot = lastSnapshot
        return state
    }

    @Test func aChangeMadeLatelyWaitsWhileTheVolumeIsWrittenAndGoesOnceItRests() {
        let recent = dirtyChunk(pendingSince: 2_000, lastSnapshot: 0)
        #expect(!ChunkTable.UploadDue(rested: false, pendingBy: 1_000).includes(recent))
        #expect(ChunkTable.UploadDue(rested: true, pendingBy: 1_000).includes(recent))
        #expect(ChunkTable.UploadDue.all.includes(recent))
    }

    @Test func aChangeThatWaitedSixtyDelaysGoesWhileTheVolumeIsWritten() {
        let old = dirtyChunk(pendingSince: 500, lastSnapshot: 0)
        #expect(ChunkTable.UploadDue(rested: false, pendingBy: 1_000).includes(old))
    }

    @Test func aChunkWithNoChangeSinceItsSnapshotGoesOnceTheSnapshotIsOld() {
        // Its upload did not make it clean (its round failed), or a restart found it dirty.
        let failedLately = dirtyChunk(pendingSince: 0, lastSnapshot: 2_000)
        let failedLongAgo = dirtyChunk(pendingSince: 0, lastSnapshot: 500)
        let foundAtStart = dirtyChunk(pendingSince: 0, lastSnapshot: 0)
        let busy = ChunkTable.UploadDue(rested: false, pendingBy: 1_000)
        #expect(!busy.includes(failedLately))
        #expect(!ChunkTable.UploadDue(rested: true, pendingBy: 1_000).includes(failedLately))
        #expect(busy.includes(failedLongAgo))
        #expect(busy.includes(foundAtStart))
    }

    @Test func aChunkSnapshottedLatelyWaitsEvenOnceTheVolumeRests() {
        let rewritten = dirtyChunk(pendingSince: 2_500, lastSnapshot: 2_000)
        #expect(!ChunkTable.UploadDue(rested: true, pendingBy: 1_000).includes(rewritten))
        #expect(ChunkTable.UploadDue.all.includes(rewritten))
    }

    /// The uploads' order: a change waiting since `overdueBy` first, kept in memory or not; then
    /// chunks whose bytes a write left in memory; then the rest.
    @Test func overdueChangesGoFirstThenChunksWrittenWhole() {
        let due = ChunkTable.UploadDue(rested: true, pendingBy: .max, overdueBy: 1_000)
        let overdue = dirtyChunk(pendingSince: 500, lastSnapshot: 0)
        let recent = dirtyChunk(pendingSince: 2_000, lastSnapshot: 0)
        #expect(due.rank(overdue, written: false) == 0 && due.rank(overdue, written: true) == 0)
        #expect(due.rank(recent, written: true) == 1)
        #expect(due.rank(recent, written: false) == 2)
        // A chunk found dirty at start, or whose upload did not make it clean, waits since its
        // snapshot: never behind chunks written since for long.
        #expect(due.rank(dirtyChunk(pendingSince: 0, lastSnapshot: 0), written: false) == 0)
        #expect(due.rank(dirtyChunk(pendingSince: 0, lastSnapshot: 900), written: false) == 0)
        #expect(due.rank(dirtyChunk(pendingSince: 0, lastSnapshot: 1_500), written: false) == 2)
        // Nothing else is overdue by default.
        #expect(ChunkTable.UploadDue.all.rank(overdue, written: false) == 2)
    }
}
