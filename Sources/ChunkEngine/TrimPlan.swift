/// What a TRIM does to one chunk. Whole 4 KiB blocks in the range are invalidated; partly
/// covered blocks remember which 512-byte sectors were trimmed, and are invalidated once all
/// eight are, so that many small or misaligned TRIMs that together cover a chunk still free it.
struct TrimPlan: Equatable {
    static let sectorSize = 512
    static let sectorsPerBlock = ChunkGeometry.blockSize / sectorSize
    static let fullMask = UInt8((1 << sectorsPerBlock) - 1)

    /// Blocks to punch and clear.
    private(set) var invalidated: [Int] = []
    /// New trimmed-sector masks of partly trimmed blocks that stay valid.
    private(set) var partialMasks: [Int: UInt8] = [:]
    /// Nothing valid remains in the chunk afterwards: punch it whole.
    private(set) var emptiesChunk = false

    /// - Parameters:
    ///   - valid: the chunk's bitmap.
    ///   - partialTrims: trimmed-sector masks of its blocks so far.
    ///   - bytes: the chunk-relative range trimmed (rounded inward to whole sectors).
    init(valid: BlockBitmap, partialTrims: [Int: UInt8], bytes: Range<Int>) {
        let firstSector = (bytes.lowerBound + Self.sectorSize - 1) / Self.sectorSize
        let endSector = bytes.upperBound / Self.sectorSize
        guard firstSector < endSector else { return }
        var sector = firstSector
        while sector < endSector {
            let block = sector / Self.sectorsPerBlock
            let blockEndSector = (block + 1) * Self.sectorsPerBlock
            let upto = min(blockEndSector, endSector)
            if valid.contains(block) {
                var mask = partialTrims[block] ?? 0
                for trimmed in sector..<upto { mask |= 1 << UInt8(trimmed % Self.sectorsPerBlock) }
                if mask == Self.fullMask {
                    invalidated.append(block)
                } else {
                    partialMasks[block] = mask
                }
            }
            sector = upto
        }
        emptiesChunk = !invalidated.isEmpty && valid.setCount == invalidated.count
    }

    /// Whether the TRIM changes anything.
    var isEmpty: Bool { invalidated.isEmpty && partialMasks.isEmpty }

    /// The invalidated blocks as ascending runs.
    var invalidatedRuns: [Range<Int>] {
        var runs: [Range<Int>] = []
        for block in invalidated {
            if let last = runs.last, last.upperBound == block {
                runs[runs.count - 1] = last.lowerBound..<(block + 1)
            } else {
                runs.append(block..<(block + 1))
            }
        }
        return runs
    }

    /// Applies the plan to a chunk's state.
    func apply(to state: inout ChunkState) {
        for block in invalidated {
            state.valid.clear(block..<(block + 1))
            state.partialTrims[block] = nil
        }
        for (block, mask) in partialMasks { state.partialTrims[block] = mask }
    }
}
