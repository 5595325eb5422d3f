/// How a volume's bytes map onto chunks and 4 KiB blocks.
public struct ChunkGeometry: Sendable, Equatable {
    /// The unit of the valid bitmap.
    public static let blockSize = 4096
    /// Smallest and largest chunk sizes allowed.
    public static let chunkSizes: ClosedRange<Int> = (64 * 1024)...(64 * 1024 * 1024)

    /// Bytes in the volume.
    public let volumeSize: UInt64
    /// Bytes per chunk (a power of two).
    public let chunkSize: Int

    /// - Precondition: `chunkSize` is a power of two within `chunkSizes`; `volumeSize` is a
    ///   multiple of the block size.
    public init(volumeSize: UInt64, chunkSize: Int) {
        precondition(Self.isValidChunkSize(chunkSize), "chunk size \(chunkSize) is not allowed")
        precondition(volumeSize % UInt64(Self.blockSize) == 0, "volume size must be a multiple of 4 KiB")
        self.volumeSize = volumeSize
        self.chunkSize = chunkSize
    }

    /// Whether `size` may be a chunk size.
    public static func isValidChunkSize(_ size: Int) -> Bool {
        chunkSizes.contains(size) && size.nonzeroBitCount == 1
    }

    /// Blocks per (full) chunk.
    public var blocksPerChunk: Int { chunkSize / Self.blockSize }

    /// Number of chunks, the last possibly partial.
    public var chunkCount: Int { Int((volumeSize + UInt64(chunkSize) - 1) / UInt64(chunkSize)) }

    /// Byte offset where chunk `index` starts.
    public func chunkStart(_ index: Int) -> UInt64 { UInt64(index) * UInt64(chunkSize) }

    /// Blocks in chunk `index` (fewer in a partial last chunk).
    public func blocks(inChunk index: Int) -> Int {
        let remaining = volumeSize - chunkStart(index)
        return Int(min(remaining, UInt64(chunkSize))) / Self.blockSize
    }

    /// Bytes in chunk `index`: its blocks' (fewer in a partial last chunk).
    public func bytes(inChunk index: Int) -> Int { blocks(inChunk: index) * Self.blockSize }

    /// The chunk indexes a byte range touches.
    public func chunks(touching offset: UInt64, length: UInt64) -> Range<Int> {
        guard length > 0 else { return 0..<0 }
        let first = Int(offset / UInt64(chunkSize))
        let last = Int((offset + length - 1) / UInt64(chunkSize))
        return first..<(last + 1)
    }

    /// The part of a byte range inside chunk `index`, as offsets relative to the chunk start.
    public func slice(ofChunk index: Int, offset: UInt64, length: UInt64) -> Range<Int> {
        let start = chunkStart(index)
        let lower = max(offset, start) - start
        let upper = min(offset + length, start + UInt64(chunkSize)) - start
        return Int(lower)..<Int(upper)
    }

    /// Blocks a chunk-relative byte range touches at all (partial blocks included).
    public static func blocksTouching(_ bytes: Range<Int>) -> Range<Int> {
        (bytes.lowerBound / blockSize)..<((bytes.upperBound + blockSize - 1) / blockSize)
    }

    /// Blocks a chunk-relative byte range covers entirely.
    public static func blocksCovered(_ bytes: Range<Int>) -> Range<Int> {
        let lower = (bytes.lowerBound + blockSize - 1) / blockSize
        let upper = bytes.upperBound / blockSize
        return lower < upper ? lower..<upper : lower..<lower
    }
}
