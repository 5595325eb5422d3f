/// One bit per 4 KiB block of a chunk: set means the block holds data that TRIM has not
/// invalidated. Stored as 64-bit words, least significant bit first.
public struct BlockBitmap: Equatable, Sendable {
    private var words: [UInt64]
    /// Number of blocks (bits).
    public let count: Int
    /// Number of set bits, kept current.
    public private(set) var setCount: Int

    /// An all-clear bitmap of `count` bits.
    public init(count: Int) {
        self.count = count
        self.words = Array(repeating: 0, count: (count + 63) / 64)
        self.setCount = 0
    }

    /// A bitmap from its stored bytes (shorter input means the missing bits are clear).
    public init(count: Int, bytes: [UInt8]) {
        self.init(count: count)
        for (index, byte) in bytes.prefix((count + 7) / 8).enumerated() where byte != 0 {
            words[index / 8] |= UInt64(byte) << (UInt64(index % 8) * 8)
        }
        if count % 64 != 0, !words.isEmpty {
            words[words.count - 1] &= (UInt64(1) << UInt64(count % 64)) - 1
        }
        setCount = words.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    /// The bytes to store.
    public var bytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: (count + 7) / 8)
        for index in bytes.indices {
            bytes[index] = UInt8(truncatingIfNeeded: words[index / 8] >> (UInt64(index % 8) * 8))
        }
        return bytes
    }

    /// No bit is set.
    public var isEmpty: Bool { setCount == 0 }
    /// Every bit is set.
    public var isFull: Bool { setCount == count }

    /// Whether bit `index` is set.
    public func contains(_ index: Int) -> Bool {
        words[index / 64] & (UInt64(1) << UInt64(index % 64)) != 0
    }

    /// Whether every bit in `range` is set.
    public func allSet(in range: Range<Int>) -> Bool {
        firstIndex(in: range, set: false) == nil
    }

    /// Whether no bit in `range` is set.
    public func noneSet(in range: Range<Int>) -> Bool {
        firstIndex(in: range, set: true) == nil
    }

    /// The bits set in either bitmap (of the same count).
    public func union(_ other: BlockBitmap) -> BlockBitmap {
        var result = self
        for index in words.indices { result.words[index] |= other.words[index] }
        result.setCount = result.words.reduce(0) { $0 + $1.nonzeroBitCount }
        return result
    }

    /// Sets the bits in `range`.
    public mutating func set(_ range: Range<Int>) {
        update(range) { word, mask in word | mask }
    }

    /// Clears the bits in `range`.
    public mutating func clear(_ range: Range<Int>) {
        update(range) { word, mask in word & ~mask }
    }

    /// The first index in `range` whose bit equals `set`, or nil.
    public func firstIndex(in range: Range<Int>, set: Bool) -> Int? {
        var index = range.lowerBound
        while index < range.upperBound {
            let wordIndex = index / 64
            let bit = index % 64
            var word = set ? words[wordIndex] : ~words[wordIndex]
            word &= ~((UInt64(1) << UInt64(bit)) &- 1)
            if word != 0 {
                let found = wordIndex * 64 + word.trailingZeroBitCount
                return found < range.upperBound ? found : nil
            }
            index = (wordIndex + 1) * 64
        }
        return nil
    }

    /// The runs of equal bits in `range`, in order: (range of bits, whether they are set).
    public func runs(in range: Range<Int>) -> [(Range<Int>, Bool)] {
        var runs: [(Range<Int>, Bool)] = []
        var start = range.lowerBound
        while start < range.upperBound {
            let value = contains(start)
            let end = firstIndex(in: start..<range.upperBound, set: !value) ?? range.upperBound
            runs.append((start..<end, value))
            start = end
        }
        return runs
    }

    private mutating func update(_ range: Range<Int>, _ apply: (UInt64, UInt64) -> UInt64) {
        var index = range.lowerBound
        while index < range.upperBound {
            let wordIndex = index / 64
            let bit = index % 64
            let span = min(64 - bit, range.upperBound - index)
            let mask = span == 64 ? UInt64.max : ((UInt64(1) << UInt64(span)) - 1) << UInt64(bit)
            let before = words[wordIndex]
            let after = apply(before, mask)
            setCount += after.nonzeroBitCount - before.nonzeroBitCount
            words[wordIndex] = after
            index += span
        }
    }
}
