import BlockDevice
import ChunkEngine
import LocalIO
import NIOCore
import Testing
import VolumeTestSupport

/// Random sequences of writes, trims, zeroing, flushes and reopenings against an in-memory
/// model. Trimmed bytes may read as old data or zeros, so the model marks them undefined.
@Suite struct ThinVolumeModelTests {
    struct Model {
        var bytes: [UInt8]
        var defined: [Bool]

        init(size: Int) {
            bytes = [UInt8](repeating: 0, count: size)
            defined = [Bool](repeating: true, count: size)
        }

        mutating func write(_ offset: Int, _ data: [UInt8]) {
            bytes.replaceSubrange(offset..<(offset + data.count), with: data)
            for index in offset..<(offset + data.count) { defined[index] = true }
        }

        mutating func forget(_ range: Range<Int>) {
            for index in range { defined[index] = false }
        }

        /// Offsets in `range` where the volume disagrees with a defined byte.
        func mismatches(_ offset: Int, _ read: [UInt8]) -> [Int] {
            read.indices.filter { defined[offset + $0] && bytes[offset + $0] != read[$0] }.map { $0 + offset }
        }
    }

    static let size = 4 << 20

    @Test(arguments: [(FileIOBackendChoice.uring, UInt64(1)), (.posix, 2), (.uring, 3)])
    func randomOperationsMatchTheModel(_ backend: FileIOBackendChoice, _ seed: UInt64) async throws {
        let fixture = try await VolumeFixture(size: UInt64(Self.size), chunkSize: 65536, backend: backend)
        var model = Model(size: Self.size)
        var random = SplitMix(seed: seed)
        let loop = fixture.loop
        for step in 0..<400 {
            let offset = Int(random.next() % UInt64(Self.size - 1))
            let length = 1 + Int(random.next() % UInt64(min(300_000, Self.size - offset)))
            switch random.next() % 10 {
            case 0...3:
                let byte = UInt8(truncatingIfNeeded: random.next())
                let data = (0..<length).map { UInt8(truncatingIfNeeded: $0) &+ byte }
                try await fixture.write(UInt64(offset), data, fua: random.next() % 8 == 0)
                model.write(offset, data)
            case 4, 5:
                try await fixture.volume.trim(offset: UInt64(offset), length: UInt64(length), fua: false, on: loop)
                    .get()
                model.forget(offset..<(offset + length))
            case 6:
                let noHole = random.next() % 2 == 0
                try await fixture.volume.writeZeroes(
                    offset: UInt64(offset), length: UInt64(length), options: noHole ? [.noHole] : [], on: loop
                ).get()
                model.write(offset, [UInt8](repeating: 0, count: length))
            case 7:
                try await fixture.volume.flush(on: loop).get()
            case 8:
                try await fixture.reopen()
            default:
                let read = try await fixture.read(UInt64(offset), length)
                let wrong = model.mismatches(offset, read)
                let firstWrong = wrong.prefix(4).map(String.init).joined(separator: ",")
                let wrongCount = wrong.count
                #expect(wrongCount == 0, "step \(step): read at \(offset)+\(length) differs at \(firstWrong)")
            }
            let extents = try await fixture.volume.blockStatus(offset: 0, length: UInt64(Self.size), on: loop).get()
            #expect(extents.reduce(0) { $0 + $1.length } == UInt64(Self.size))
        }
        let wrongAtEnd = model.mismatches(0, try await fixture.read(0, Self.size)).count
        #expect(wrongAtEnd == 0)
        try await checkHolesReadAsZeros(fixture)
        await fixture.close()
    }

    @Test func concurrentDisjointOperationsMatchTheModel() async throws {
        let fixture = try await VolumeFixture(size: UInt64(Self.size), chunkSize: 65536)
        var model = Model(size: Self.size)
        var random = SplitMix(seed: 42)
        let loop = fixture.loop
        for _ in 0..<40 {
            // 16 operations on disjoint 256 KiB slots, several sharing chunks at slot edges.
            var futures: [EventLoopFuture<Void>] = []
            for slot in 0..<16 {
                let base = slot * (Self.size / 16)
                let offset = base + Int(random.next() % 4096)
                let length = 1 + Int(random.next() % UInt64(Self.size / 16 - 4096))
                switch random.next() % 4 {
                case 0, 1:
                    let data = [UInt8](repeating: UInt8(truncatingIfNeeded: random.next() | 1), count: length)
                    var buffer = ByteBuffer()
                    buffer.writeBytes(data)
                    futures.append(fixture.volume.write(offset: UInt64(offset), data: buffer, fua: false, on: loop))
                    model.write(offset, data)
                case 2:
                    futures.append(
                        fixture.volume.trim(offset: UInt64(offset), length: UInt64(length), fua: false, on: loop))
                    model.forget(offset..<(offset + length))
                default:
                    futures.append(
                        fixture.volume.writeZeroes(
                            offset: UInt64(offset), length: UInt64(length), options: [], on: loop))
                    model.write(offset, [UInt8](repeating: 0, count: length))
                }
            }
            futures.append(fixture.volume.flush(on: loop))
            try await EventLoopFuture.andAllSucceed(futures, on: loop).get()
        }
        try await fixture.volume.flush(on: loop).get()
        try await fixture.reopen()
        let wrongAtEnd = model.mismatches(0, try await fixture.read(0, Self.size)).count
        #expect(wrongAtEnd == 0)
        try await checkHolesReadAsZeros(fixture)
        await fixture.close()
    }

    /// Every range block status calls a hole must read as zeros.
    private func checkHolesReadAsZeros(_ fixture: VolumeFixture) async throws {
        let extents = try await fixture.volume.blockStatus(offset: 0, length: UInt64(Self.size), on: fixture.loop).get()
        var position: UInt64 = 0
        for extent in extents {
            if extent.isZero {
                let bytes = try await fixture.read(position, Int(extent.length))
                let zeros = bytes.allSatisfy { $0 == 0 }
                #expect(zeros, "hole at \(position)+\(extent.length) holds data")
            }
            position += extent.length
        }
    }
}
