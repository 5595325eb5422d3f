import NIOCore

/// The bytes fetched of an object, kept in the pieces they arrived in (a response body's
/// reads), and read as one run without joining them first. Invariant: no piece is empty, and
/// `starts` holds where each piece begins in the run, then the run's end.
public struct ObjectBytes: Sendable {
    private let pieces: [ByteBuffer]
    private let starts: [Int]

    public init(_ pieces: [ByteBuffer]) {
        self.pieces = pieces.filter { $0.readableBytes > 0 }
        var starts = [0]
        for piece in self.pieces { starts.append(starts.last! + piece.readableBytes) }
        self.starts = starts
    }

    public init(_ buffer: ByteBuffer) { self.init([buffer]) }

    /// The number of bytes.
    public var count: Int { starts.last! }

    /// The pieces, in order: views of the memory the bytes are in, none empty.
    public var buffers: [ByteBuffer] { pieces }

    /// The bytes in one buffer: the piece itself when there is one, else a copy of them all.
    public var joined: ByteBuffer {
        guard pieces.count != 1 else { return pieces[0] }
        var joined = ByteBuffer()
        joined.reserveCapacity(count)
        for piece in pieces { joined.writeImmutableBuffer(piece) }
        return joined
    }

    /// The bytes of `range` (within `0..<count`), still in their pieces.
    public func slice(_ range: Range<Int>) -> ObjectBytes {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        var kept: [ByteBuffer] = []
        for (index, piece) in pieces.enumerated() {
            let within = range.clamped(to: starts[index]..<starts[index + 1])
            guard !within.isEmpty else { continue }
            kept.append(
                piece.getSlice(at: piece.readerIndex + within.lowerBound - starts[index], length: within.count)!)
        }
        return ObjectBytes(kept)
    }

    /// Calls `body` with the bytes of `range` (within `0..<count`) in one span of memory: where
    /// they lie when one piece holds them all, else gathered into a copy that lives for the call.
    public func withBytes<Result, Failure: Error>(
        _ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        guard !range.isEmpty else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        // The last piece starting at or before the range: the one holding its first byte.
        var first = 0
        var high = pieces.count - 1
        while first < high {
            let middle = (first + high + 1) / 2
            if starts[middle] <= range.lowerBound { first = middle } else { high = middle - 1 }
        }
        if range.upperBound <= starts[first + 1] {
            let offset = starts[first]
            return try pieces[first].withUnsafeReadableBytes { bytes throws(Failure) in
                try body(
                    UnsafeRawBufferPointer(rebasing: bytes[(range.lowerBound - offset)..<(range.upperBound - offset)]))
            }
        }
        let gathered = UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 16)
        defer { gathered.deallocate() }
        var filled = 0
        for piece in slice(range).pieces {
            piece.withUnsafeReadableBytes {
                UnsafeMutableRawBufferPointer(rebasing: gathered[filled...]).copyMemory(from: $0)
            }
            filled += piece.readableBytes
        }
        return try body(UnsafeRawBufferPointer(gathered))
    }
}
