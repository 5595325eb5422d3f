import BlockDevice
import ChunkEngine
import Foundation
import Glibc
import LocalIO
import NIOCore
import Testing
import VolumeTestSupport

@Suite struct ThinVolumeTests {
    static let backends: [FileIOBackendChoice] = [.uring, .posix]

    @Test(arguments: backends)
    func unwrittenRangesAreHolesAndWritesReadBack(_ backend: FileIOBackendChoice) async throws {
        let fixture = try await VolumeFixture(size: 1 << 22, backend: backend)
        let pattern = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await fixture.write(70_000, pattern)
        let readBack = try await fixture.read(70_000, 10_000)
        let same = readBack == pattern
        #expect(same, "read back differs")
        let hole = try await fixture.volume.read(offset: 2 << 20, length: 65536, on: fixture.loop).get()
        guard case .segments(let segments) = hole else {
            Issue.record("an unwritten range should come back as a hole, got \(hole)")
            return
        }
        #expect(segments == [.hole(65536)])
        #expect(fixture.volume.usage.chunks == 1)
        await fixture.close()
    }

    /// Whether the kernel tells which pages the page cache holds (cachestat, Linux 6.5).
    static let kernelTellsCachedPages: Bool = {
        let path = NSTemporaryDirectory() + "cachestat-probe-\(UUID().uuidString.prefix(8))"
        defer { unlink(path) }
        guard let file = try? LocalFile.open(path: path, length: 1 << 20) else { return false }
        _ = [UInt8](repeating: 1, count: 1 << 20).withUnsafeBytes {
            pwrite(file.descriptor, $0.baseAddress, 1 << 20, 0)
        }
        guard let region = file.cachedRegion(offset: 0, length: 1 << 20) else { return false }
        try? region.fileHandle.close()
        return true
    }()

    /// Whether `read` is nil; closes its region otherwise (an open handle must not be dropped).
    static func isNone(_ read: RegionRead?) -> Bool {
        guard let read else { return true }
        try? read.region.fileHandle.close()
        read.sent()
        return false
    }

    @Test(.enabled(if: kernelTellsCachedPages), arguments: backends)
    func largeReadsOfWhatThePageCacheHoldsAreRegionsOfTheFile(_ backend: FileIOBackendChoice) async throws {
        let fixture = try await VolumeFixture(size: 1 << 22, backend: backend)
        let pattern = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 11) }
        try await fixture.write(1 << 20, pattern)
        let region = try #require(fixture.volume.readRegion(offset: 1 << 20, length: 1 << 20)).region
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        let count = try region.fileHandle.withUnsafeFileDescriptor { descriptor in
            bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, 1 << 20, off_t(region.readerIndex)) }
        }
        try region.fileHandle.close()
        #expect(count == 1 << 20 && region.readableBytes == 1 << 20)
        let same = bytes == pattern
        #expect(same, "the region holds other bytes than were written")
        // Not with a hole in the range, nor for a small read (copied for less).
        #expect(Self.isNone(fixture.volume.readRegion(offset: 0, length: 1 << 20)))
        #expect(Self.isNone(fixture.volume.readRegion(offset: 1 << 20, length: 4096)))
        // Nor once the page cache has let the pages go: sending them would wait for the disk.
        try await fixture.volume.flush(on: fixture.loop).get()
        let file = try LocalFile.open(path: fixture.path, length: 1 << 22)
        #expect(posix_fadvise(file.descriptor, 0, 0, POSIX_FADV_DONTNEED) == 0)
        // (tmpfs keeps its pages: then there is nothing to see.)
        if Self.isNone(file.cachedRegion(offset: 1 << 20, length: 1 << 20).map { RegionRead(region: $0) }) {
            #expect(Self.isNone(fixture.volume.readRegion(offset: 1 << 20, length: 1 << 20)))
        }
        #expect(try await fixture.read(1 << 20, 1 << 20) == pattern)
        await fixture.close()
    }

    @Test(arguments: backends)
    func smallTrimsThatTogetherCoverAChunkFreeIt(_ backend: FileIOBackendChoice) async throws {
        let fixture = try await VolumeFixture(size: 1 << 22, chunkSize: 65536, backend: backend)
        try await fixture.write(65536, [UInt8](repeating: 0xEE, count: 65536))
        #expect(try fixture.volume.diskUsage() >= 65536)
        // Trims of ten sectors never align with a block or chunk boundary; together they cover it.
        var offset: UInt64 = 65536 - 3 * 512
        while offset < 140_000 {
            try await fixture.volume.trim(offset: offset, length: 5120, fua: false, on: fixture.loop).get()
            offset += 5120
        }
        #expect(fixture.volume.usage.chunks == 0)
        #expect(fixture.volume.usage.bytes == 0)
        #expect(try fixture.volume.diskUsage() < 65536)
        #expect(try await fixture.holds(0, at: 65536, count: 65536))
        await fixture.close()
    }

    @Test func trimOfAWholeTebibyteVolumeTouchesOnlyAllocatedChunks() async throws {
        let fixture = try await VolumeFixture(size: 1 << 40, chunkSize: 1 << 20)
        for index: UInt64 in [0, 7, 999_999] {
            try await fixture.write(index << 20, [UInt8](repeating: 1, count: 8192))
        }
        #expect(fixture.volume.usage.chunks == 3)
        try await fixture.volume.trim(offset: 0, length: 1 << 40, fua: true, on: fixture.loop).get()
        #expect(fixture.volume.usage.chunks == 0)
        let extents = try await fixture.volume.blockStatus(offset: 0, length: 1 << 40, on: fixture.loop).get()
        #expect(extents == [BlockExtent(length: 1 << 40, isHole: true, isZero: true)])
        await fixture.close()
    }

    @Test(arguments: backends)
    func writeZeroesZerosPartialBlocksAndHonoursNoHole(_ backend: FileIOBackendChoice) async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, backend: backend)
        try await fixture.write(0, [UInt8](repeating: 0xAA, count: 40_000))
        try await fixture.volume.writeZeroes(offset: 1000, length: 20_000, options: [], on: fixture.loop).get()
        var expected = [UInt8](repeating: 0xAA, count: 40_000)
        for index in 1000..<21_000 { expected[index] = 0 }
        #expect(try await fixture.read(0, 40_000) == expected)
        // Whole blocks 1..<5 were punched, blocks 0 and 5 stay valid.
        let extents = try await fixture.volume.blockStatus(offset: 0, length: 40_960, on: fixture.loop).get()
        #expect(extents.first == BlockExtent(length: 4096, isHole: false, isZero: false))
        #expect(extents.dropFirst().first == BlockExtent(length: 16384, isHole: true, isZero: true))

        try await fixture.volume.writeZeroes(offset: 524_288, length: 65536, options: [.noHole], on: fixture.loop).get()
        #expect(try await fixture.holds(0, at: 524_288, count: 65536))
        let allocated = try await fixture.volume.blockStatus(offset: 524_288, length: 65536, on: fixture.loop).get()
        #expect(allocated == [BlockExtent(length: 65536, isHole: false, isZero: false)])
        await fixture.close()
    }

    @Test func writeZeroesInsideOneBlockZerosExactlyThoseBytes() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20)
        try await fixture.write(0, [UInt8](repeating: 0x77, count: 8192))
        for (offset, length) in [(100, 100), (4096, 10), (8000, 300)] as [(UInt64, UInt64)] {
            try await fixture.volume.writeZeroes(offset: offset, length: length, options: [], on: fixture.loop).get()
        }
        var expected = [UInt8](repeating: 0x77, count: 8192)
        for range in [100..<200, 4096..<4106, 8000..<8192] { for index in range { expected[index] = 0 } }
        let same = try await fixture.read(0, 8192) == expected
        #expect(same)
        await fixture.close()
    }

    @Test func writingZerosDeallocatesInsteadOfFilling() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20)
        try await fixture.write(0, [UInt8](repeating: 5, count: 65536))
        try await fixture.write(4096, [UInt8](repeating: 0, count: 65536))
        #expect(fixture.volume.usage.bytes == 4096)
        try await fixture.write(200_000, [UInt8](repeating: 0, count: 8192))
        #expect(fixture.volume.usage.bytes == 4096)
        #expect(try await fixture.holds(0, at: 4096, count: 65536))
        #expect(try await fixture.holds(5, at: 0, count: 4096))
        await fixture.close()
    }

    @Test func blockStatusOfAHugeSparseVolumeSkipsTheGaps() async throws {
        let size: UInt64 = 8 << 40
        let fixture = try await VolumeFixture(size: size, chunkSize: 1 << 20)
        try await fixture.write(5 << 20, [UInt8](repeating: 1, count: 4096))
        try await fixture.write(size - (2 << 20), [UInt8](repeating: 1, count: 4096))
        let extents = try await fixture.volume.blockStatus(offset: 0, length: size, on: fixture.loop).get()
        #expect(extents.map(\.isHole) == [true, false, true, false, true])
        #expect(extents.reduce(0) { $0 + $1.length } == size)
        await fixture.close()
    }

    @Test func writeZeroesKeepingAllocationCoversManyWindows() async throws {
        let fixture = try await VolumeFixture(size: 16 << 20, chunkSize: 65536)
        try await fixture.write(0, [UInt8](repeating: 9, count: 16 << 20))
        try await fixture.volume.writeZeroes(offset: 1000, length: 200 * 65536, options: [.noHole], on: fixture.loop)
            .get()
        #expect(try await fixture.holds(0, at: 1000, count: 200 * 65536))
        #expect(try await fixture.holds(9, at: 0, count: 1000))
        #expect(fixture.volume.usage.bytes == 16 << 20)
        await fixture.close()
    }

    @Test func blockStatusDescribesRunsAcrossChunks() async throws {
        let fixture = try await VolumeFixture(size: 1 << 20, chunkSize: 65536)
        try await fixture.write(61_440, [UInt8](repeating: 3, count: 8192))
        let extents = try await fixture.volume.blockStatus(offset: 0, length: 1 << 20, on: fixture.loop).get()
        #expect(
            extents == [
                BlockExtent(length: 61_440, isHole: true, isZero: true),
                BlockExtent(length: 8192, isHole: false, isZero: false),
                BlockExtent(length: (1 << 20) - 69_632, isHole: true, isZero: true),
            ])
        await fixture.close()
    }

    @Test(arguments: backends)
    func reopeningAfterAnUnflushedWriteRecoversTheBitmapFromTheFile(_ backend: FileIOBackendChoice) async throws {
        let fixture = try await VolumeFixture(size: 1 << 22, backend: backend)
        try await fixture.write(0, [UInt8](repeating: 9, count: 4096))
        try await fixture.volume.flush(on: fixture.loop).get()
        try await fixture.write(1 << 21, [UInt8](repeating: 7, count: 12_288))
        try await fixture.reopen()
        #expect(try await fixture.holds(7, at: 1 << 21, count: 12_288))
        #expect(try await fixture.holds(9, at: 0, count: 4096))
        #expect(fixture.volume.usage.bytes == 4096 + 12_288)
        await fixture.close()
    }

    @Test func flushedTrimStaysTrimmedAfterReopen() async throws {
        let fixture = try await VolumeFixture(size: 1 << 22)
        try await fixture.write(0, [UInt8](repeating: 9, count: 65536 * 2))
        try await fixture.volume.flush(on: fixture.loop).get()
        try await fixture.volume.trim(offset: 0, length: 65536, fua: false, on: fixture.loop).get()
        try await fixture.volume.flush(on: fixture.loop).get()
        try await fixture.reopen()
        #expect(fixture.volume.usage.chunks == 1)
        #expect(try await fixture.holds(0, at: 0, count: 65536))
        #expect(try await fixture.holds(9, at: 65536, count: 65536))
        await fixture.close()
    }
}
