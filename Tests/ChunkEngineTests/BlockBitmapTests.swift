import ChunkEngine
import Testing

@Suite struct BlockBitmapTests {
    @Test func setAndClearKeepTheCount() {
        var bitmap = BlockBitmap(count: 256)
        bitmap.set(10..<100)
        #expect(bitmap.setCount == 90)
        bitmap.set(50..<150)
        #expect(bitmap.setCount == 140)
        bitmap.clear(0..<60)
        #expect(bitmap.setCount == 90)
        #expect(!bitmap.contains(59) && bitmap.contains(60) && bitmap.contains(149) && !bitmap.contains(150))
        bitmap.clear(0..<256)
        #expect(bitmap.isEmpty)
    }

    @Test func runsDescribeTheBitsInOrder() {
        var bitmap = BlockBitmap(count: 200)
        bitmap.set(3..<70)
        bitmap.set(128..<130)
        let runs = bitmap.runs(in: 0..<200).map { "\($0.0.lowerBound)-\($0.0.upperBound):\($0.1)" }
        #expect(runs == ["0-3:false", "3-70:true", "70-128:false", "128-130:true", "130-200:false"])
        #expect(bitmap.runs(in: 5..<10).count == 1)
    }

    @Test func bytesRoundTrip() {
        var bitmap = BlockBitmap(count: 77)
        bitmap.set(0..<1)
        bitmap.set(63..<66)
        bitmap.set(76..<77)
        let copy = BlockBitmap(count: 77, bytes: bitmap.bytes)
        #expect(copy == bitmap)
        #expect(bitmap.bytes.count == 10)
        #expect(BlockBitmap(count: 77, bytes: []).isEmpty)
    }

    @Test func randomOperationsMatchASetModel() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let count = Int.random(in: 1...600, using: &generator)
            var bitmap = BlockBitmap(count: count)
            var model = Set<Int>()
            for _ in 0..<20 {
                let lower = Int.random(in: 0..<count, using: &generator)
                let upper = Int.random(in: lower...count, using: &generator)
                if Bool.random(using: &generator) {
                    bitmap.set(lower..<upper)
                    model.formUnion(lower..<upper)
                } else {
                    bitmap.clear(lower..<upper)
                    model.subtract(lower..<upper)
                }
            }
            #expect(bitmap.setCount == model.count)
            #expect((0..<count).allSatisfy { bitmap.contains($0) == model.contains($0) })
            let lower = Int.random(in: 0..<count, using: &generator)
            let upper = Int.random(in: lower...count, using: &generator)
            #expect(bitmap.allSet(in: lower..<upper) == (lower..<upper).allSatisfy(model.contains))
            #expect(bitmap.noneSet(in: lower..<upper) == !(lower..<upper).contains(where: model.contains))
        }
    }

    /// Bitmaps are kept without words when none, all, or one run of their bits are set: every
    /// query answers the same whatever the form, and equal bits compare equal however they
    /// were reached (from bytes, by unions, by sets and clears).
    @Test func compactFormsAnswerLikeWordsAndCompareByTheirBits() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let count = Int.random(in: 1...300, using: &generator)
            var bitmap = BlockBitmap(count: count)
            var other = BlockBitmap(count: count)
            var model = Set<Int>()
            var otherModel = Set<Int>()
            for step in 0..<8 {
                let lower = Int.random(in: 0..<count, using: &generator)
                let upper = Int.random(in: lower...count, using: &generator)
                if step % 2 == 0 {
                    other.set(lower..<upper)
                    otherModel.formUnion(lower..<upper)
                } else if Bool.random(using: &generator) {
                    bitmap.set(lower..<upper)
                    model.formUnion(lower..<upper)
                } else {
                    bitmap.clear(lower..<upper)
                    model.subtract(lower..<upper)
                }
                #expect(BlockBitmap(count: count, bytes: bitmap.bytes) == bitmap)
                #expect(bitmap.isEmpty == model.isEmpty && bitmap.isFull == (model.count == count))
                let union = bitmap.union(other)
                #expect(union.setCount == model.union(otherModel).count)
                #expect(union == BlockBitmap(count: count, bytes: union.bytes))
                let start = Int.random(in: 0..<count, using: &generator)
                let firstSet = (start..<count).first(where: model.contains)
                let firstClear = (start..<count).first { !model.contains($0) }
                #expect(bitmap.firstIndex(in: start..<count, set: true) == firstSet)
                #expect(bitmap.firstIndex(in: start..<count, set: false) == firstClear)
                let runs = bitmap.runs(in: start..<count)
                #expect(runs.allSatisfy { run in run.0.allSatisfy { model.contains($0) == run.1 } })
                #expect(runs.map(\.0.count).reduce(0, +) == count - start)
            }
        }
    }
}

@Suite struct ChunkGeometryTests {
    let geometry = ChunkGeometry(volumeSize: 10 * 1024 * 1024 + 8192, chunkSize: 1024 * 1024)

    @Test func countsChunksIncludingAPartialLastOne() {
        #expect(geometry.chunkCount == 11)
        #expect(geometry.blocks(inChunk: 0) == 256)
        #expect(geometry.blocks(inChunk: 10) == 2)
    }

    @Test func slicesRangesAcrossChunkBoundaries() {
        let offset: UInt64 = 1024 * 1024 - 512
        #expect(geometry.chunks(touching: offset, length: 1024) == 0..<2)
        #expect(geometry.slice(ofChunk: 0, offset: offset, length: 1024) == (1024 * 1024 - 512)..<(1024 * 1024))
        #expect(geometry.slice(ofChunk: 1, offset: offset, length: 1024) == 0..<512)
        #expect(geometry.chunks(touching: 0, length: 0).isEmpty)
    }

    @Test func coveredBlocksExcludePartialOnes() {
        #expect(ChunkGeometry.blocksCovered(512..<8192) == 1..<2)
        #expect(ChunkGeometry.blocksCovered(512..<4000).isEmpty)
        #expect(ChunkGeometry.blocksTouching(512..<4097) == 0..<2)
    }

    @Test func onlyPowersOfTwoInRangeAreChunkSizes() {
        #expect(ChunkGeometry.isValidChunkSize(65536))
        #expect(ChunkGeometry.isValidChunkSize(64 << 20))
        #expect(!ChunkGeometry.isValidChunkSize(32768))
        #expect(!ChunkGeometry.isValidChunkSize(3 << 20))
        #expect(!ChunkGeometry.isValidChunkSize(128 << 20))
    }
}
