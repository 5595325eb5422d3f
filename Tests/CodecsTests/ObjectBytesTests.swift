import NIOCore
import Testing

@testable import Codecs

/// Bytes in pieces read as one run: every range, within a piece or across several, reads the
/// bytes an unbroken buffer holds there, and so does every slice.
@Suite struct ObjectBytesTests {
    static let whole: [UInt8] = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }

    /// `whole` cut at `cuts`, each piece a slice past some bytes of a larger buffer.
    static func cut(at cuts: [Int]) -> ObjectBytes {
        let bounds = [0] + cuts + [whole.count]
        return ObjectBytes(
            zip(bounds, bounds.dropFirst()).map { start, end in
                var buffer = ByteBuffer(bytes: [0xEE, 0xEE] + whole[start..<end] + [0xEE])
                buffer.moveReaderIndex(forwardBy: 2)
                return buffer.getSlice(at: buffer.readerIndex, length: end - start)!
            })
    }

    static let cuttings: [[Int]] = [[], [1], [4999], [100, 101, 102, 2000], Array(stride(from: 7, to: 5000, by: 333))]

    @Test(arguments: cuttings)
    func everyRangeReadsTheBytesThere(cuts: [Int]) {
        let bytes = Self.cut(at: cuts)
        #expect(bytes.count == Self.whole.count)
        for start in stride(from: 0, to: 5000, by: 97) {
            for length in [0, 1, 2, 98, 333, 1500, 5000 - start] where start + length <= 5000 {
                let read = bytes.withBytes(start..<(start + length)) { Array($0) }
                #expect(read == Array(Self.whole[start..<(start + length)]), "\(start) +\(length)")
            }
        }
    }

    @Test(arguments: cuttings)
    func aSliceReadsAsTheBytesItCovers(cuts: [Int]) {
        let slice = Self.cut(at: cuts).slice(99..<4321)
        #expect(slice.count == 4222)
        #expect(slice.withBytes(0..<4222) { Array($0) } == Array(Self.whole[99..<4321]))
        #expect(slice.withBytes(3..<5) { Array($0) } == Array(Self.whole[102..<104]))
    }

    @Test func emptyPiecesAreSkipped() {
        let bytes = ObjectBytes([ByteBuffer(), ByteBuffer(bytes: [1, 2]), ByteBuffer(), ByteBuffer(bytes: [3])])
        #expect(bytes.count == 3)
        #expect(bytes.withBytes(1..<3) { Array($0) } == [2, 3])
        #expect(ObjectBytes([]).withBytes(0..<0) { $0.count } == 0)
    }
}
