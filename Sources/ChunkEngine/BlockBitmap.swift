/// One bit per 4 KiB block of a chunk: set means the block holds data that TRIM has not
/// invalidated. A bitmap whose set bits are none, all, or one run holds no words (most chunks
/// at rest are one of these); any other is 64-bit words, least significant bit first. The
/// storage is canonical (the first of these forms that fits), so equal bitmaps have equal storage.
public struct BlockBitmap: Equatable, Sendable {
    /// The bits: none set, all set, one run of set bits (not all), or words.
    enum Storage: Equatable, Sendable {
        case empty
        case full
        case run(lower: UInt32, upper: UInt32)
        case words([UInt64])
    }

    private(set) var storage: Storage
    /// Number of blocks (bits).
    public let count: Int
    /// Number of set bits, kept current.
    public private(set) var setCount: Int

    /// An all-clear bitmap of `count` bits.
    public init(count: Int) {
        self.count = count
        self.storage = .empty
        self.setCount = 0
    }

    /// A bitmap of `count` bits from its storage.
    init(count: Int, storage: Storage) {
        self.count = count
        self.storage = storage
        switch storage {
        case .empty: setCount = 0
        case .full: setCount = count
        case .run(let lower, let upper): setCount = Int(upper - lower)
        case .words(let words): setCount = words.reduce(0) { $0 + $1.nonzeroBitCount }
        }
    }

    /// A bitmap from its stored bytes (shorter input means the missing bits are clear).
    public init(count: Int, bytes: [UInt8]) {
        var words = [UInt64](repeating: 0, count: (count + 63) / 64)
        for (index, byte) in bytes.prefix((count + 7) / 8).enumerated() where byte != 0 {
            words[index / 8] |= UInt64(byte) << (UInt64(index % 8) * 8)
        }
        if count % 64 != 0, !words.isEmpty {
            words[words.count - 1] &= Self.lowBits(count % 64)
        }
        self.init(count: count, words: words)
    }

    /// A bitmap of `count` bits from words, in canonical storage.
    private init(count: Int, words: [UInt64]) {
        self.count = count
        setCount = words.reduce(0) { $0 + $1.nonzeroBitCount }
        storage = .words(words)
        if setCount == 0 {
            storage = .empty
        } else if setCount == count {
            storage = .full
        } else if let first = firstIndex(in: 0..<count, set: true),
            firstIndex(in: first..<count, set: false).map({ $0 - first }) ?? (count - first) == setCount
        {
            storage = .run(lower: UInt32(first), upper: UInt32(first + setCount))
        }
    }

    /// The bytes to store.
    public var bytes: [UInt8] {
        let words = self.words
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
        switch storage {
        case .empty: false
        case .full: true
        case .run(let lower, let upper): index >= lower && index < upper
        case .words(let words): words[index / 64] & (UInt64(1) << UInt64(index % 64)) != 0
        }
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
        switch (storage, other.storage) {
        case (.full, _), (_, .empty): return self
        case (_, .full), (.empty, _): return other
        default: return BlockBitmap(count: count, words: zip(words, other.words).map { $0 | $1 })
        }
    }

    /// Sets the bits in `range`.
    public mutating func set(_ range: Range<Int>) {
        guard !range.isEmpty, storage != .full else { return }
        if range.count == count {
            self = BlockBitmap(count: count, storage: .full)
            return
        }
        update(range) { word, mask in word | mask }
    }

    /// Clears the bits in `range`.
    public mutating func clear(_ range: Range<Int>) {
        guard !range.isEmpty, storage != .empty else { return }
        if range.count == count {
            self = BlockBitmap(count: count)
            return
        }
        update(range) { word, mask in word & ~mask }
    }

    /// The first index in `range` whose bit equals `set`, or nil.
    public func firstIndex(in range: Range<Int>, set: Bool) -> Int? {
        guard !range.isEmpty else { return nil }
        let words: [UInt64]
        switch storage {
        case .empty: return set ? nil : range.lowerBound
        case .full: return set ? range.lowerBound : nil
        case .run(let lower, let upper):
            let run = Int(lower)..<Int(upper)
            if set { return run.overlaps(range) ? max(run.lowerBound, range.lowerBound) : nil }
            if !run.contains(range.lowerBound) { return range.lowerBound }
            return run.upperBound < range.upperBound ? run.upperBound : nil
        case .words(let stored): words = stored
        }
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
        switch storage {
        case .empty: return range.isEmpty ? [] : [(range, false)]
        case .full: return range.isEmpty ? [] : [(range, true)]
        case .run, .words: break
        }
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

    /// The bits as words, whatever the storage.
    private var words: [UInt64] {
        switch storage {
        case .empty: return [UInt64](repeating: 0, count: (count + 63) / 64)
        case .full:
            var words = [UInt64](repeating: .max, count: (count + 63) / 64)
            if count % 64 != 0 { words[words.count - 1] = Self.lowBits(count % 64) }
            return words
        case .run(let lower, let upper):
            var words = [UInt64](repeating: 0, count: (count + 63) / 64)
            var index = Int(lower)
            while index < Int(upper) {
                let span = min(64 - index % 64, Int(upper) - index)
                words[index / 64] |= (span == 64 ? .max : Self.lowBits(span)) << UInt64(index % 64)
                index += span
            }
            return words
        case .words(let words): return words
        }
    }

    /// A word with its lowest `bits` bits set (0 < bits < 64).
    private static func lowBits(_ bits: Int) -> UInt64 { (UInt64(1) << UInt64(bits)) - 1 }

    private mutating func update(_ range: Range<Int>, _ apply: (UInt64, UInt64) -> UInt64) {
        var words = self.words
        storage = .empty  // so that `words` is the only reference and changes in place
        var index = range.lowerBound
        while index < range.upperBound {
            let wordIndex = index / 64
            let bit = index % 64
            let span = min(64 - bit, range.upperBound - index)
            let mask = span == 64 ? UInt64.max : Self.lowBits(span) << UInt64(bit)
            words[wordIndex] = apply(words[wordIndex], mask)
            index += span
        }
        self = BlockBitmap(count: count, words: words)
    }
}
