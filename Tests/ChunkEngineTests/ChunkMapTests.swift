import Testing

@testable import ChunkEngine

/// The chunk map files a chunk at rest in a compact table and gives back the state it needs:
/// whatever table a chunk is in, reading it returns what was stored (but for what a chunk at
/// rest does not keep: its generations, and on a thin volume its cached blocks and last use).
@Suite struct ChunkMapTests {
    private let geometry = ChunkGeometry(volumeSize: 64 << 20, chunkSize: 1 << 20)

    private func bitmap(_ shape: Int, seed: Int) -> BlockBitmap {
        var bitmap = BlockBitmap(count: 256)
        switch shape {
        case 0: break
        case 1: bitmap.set(0..<256)
        case 2: bitmap.set((seed % 200)..<(seed % 200 + 17))
        default:
            bitmap.set(3..<9)
            bitmap.set((seed % 100 + 20)..<(seed % 100 + 90))
        }
        return bitmap
    }

    @Test(arguments: [false, true])
    func chunksReadBackWhateverTableHoldsThem(cached: Bool) {
        var map = ChunkMap(geometry: geometry, cached: cached)
        var expected: [Int: ChunkState] = [:]
        var random = SystemRandomNumberGenerator()
        for index in 0..<64 {
            var state = ChunkState(
                valid: bitmap(Int.random(in: 0..<4, using: &random), seed: index),
                journal: Bool.random(using: &random) ? .clean : .dirty,
                present: bitmap(Int.random(in: 0..<4, using: &random), seed: index * 7),
                remoteGeneration: cached ? UInt64.random(in: 0..<5, using: &random) : 0)
            state.lastUse = UInt64(index) * 1000
            state.generation = UInt64(index + 1)
            if index % 5 == 0 {
                let acquired = state.gate.tryAcquire(exclusive: false)
                #expect(acquired)
            }
            map[index] = state
            expected[index] = state
        }
        #expect(map.count == 64)
        #expect(Set(map.indexes { _ in true }) == Set(0..<64))
        #expect(map.totals == totals(of: map), "the totals drifted from the chunks")
        for index in 0..<64 {
            #expect(matches(map[index]!, expected[index]!, cached: cached), "chunk \(index) read back differently")
        }
        // The compact check of reads answers what the whole state would, and a touch sets the
        // last use of every chunk that keeps one, without moving it out of its table.
        for index in 0..<64 {
            let state = map[index]!
            for blocks in [0..<256, 3..<9, 40..<60, 255..<256] {
                let local =
                    state.valid.allSet(in: blocks) && (state.remoteGeneration == 0 || state.present.allSet(in: blocks))
                #expect(map.holdsLocally(index, blocks: blocks) == local, "chunk \(index), blocks \(blocks)")
            }
            map.touch(index, at: 99_000 + UInt64(index))
            #expect(map[index]!.isAtRest == state.isAtRest)
            let keepsLastUse = !state.isAtRest || (cached && !state.present.isEmpty)
            #expect((map[index]!.lastUse == 99_000 + UInt64(index)) == keepsLastUse, "chunk \(index)")
            expected[index]!.lastUse = map[index]!.lastUse
        }
        #expect(!map.holdsLocally(64, blocks: 0..<1), "a chunk not in the map holds nothing")
        // Changing a chunk in place moves it between tables as it comes to rest or leaves it.
        _ = map[5]!.gate.release(exclusive: false)
        #expect(map[5]!.isAtRest == expected[5]!.isAtRest(afterRelease: true))
        map[7]!.valid.set(0..<256)
        #expect(map[7]!.valid.isFull)
        map[9] = nil
        #expect(map[9] == nil && map.count == 63)
        #expect(map.totals == totals(of: map), "the totals drifted from the chunks")
    }

    /// The totals of a map, counted chunk by chunk.
    private func totals(of map: ChunkMap) -> ChunkMap.Totals {
        var totals = ChunkMap.Totals()
        for index in map.indexes(where: { _ in true }) {
            let state = map[index]!
            totals.chunksWithData += state.valid.isEmpty ? 0 : 1
            totals.validBlocks += state.valid.setCount
            totals.presentBlocks += state.present.setCount
            totals.uploadedChunks += state.remoteGeneration > 0 ? 1 : 0
        }
        return totals
    }

    /// Whether `state` carries what the map keeps of `stored`.
    private func matches(_ state: ChunkState, _ stored: ChunkState, cached: Bool) -> Bool {
        guard state.valid == stored.valid, state.remoteGeneration == stored.remoteGeneration,
            state.isAtRest == stored.isAtRest
        else { return false }
        guard stored.isAtRest else {
            return state.present == stored.present && state.lastUse == stored.lastUse
                && state.generation == stored.generation && state.gate.isHeld == stored.gate.isHeld
        }
        if !cached { return state.present.isEmpty }
        return state.present == stored.present && (stored.present.isEmpty || state.lastUse == stored.lastUse)
    }
}

extension ChunkState {
    /// Whether the chunk is at rest once a shared holder of its gate lets go.
    fileprivate func isAtRest(afterRelease: Bool) -> Bool {
        var copy = self
        if afterRelease, copy.gate.isHeld { _ = copy.gate.release(exclusive: false) }
        return copy.isAtRest
    }
}
