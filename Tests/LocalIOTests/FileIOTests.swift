import Glibc
import LocalIO
import Logging
import NIOCore
import NIOPosix
import Testing

/// Runs the same checks against both backends: io_uring and the POSIX fallback.
@Suite struct FileIOTests {
    static let backends: [FileIOBackendChoice] = [.uring, .posix]
    let group = MultiThreadedEventLoopGroup.singleton

    /// Runs `body` with a backend and a scratch file, then shuts the backend down.
    private func withIO(
        _ choice: FileIOBackendChoice, fileLength: UInt64,
        _ body: (any FileIO, LocalFile, any EventLoop) async throws -> Void
    ) async throws {
        let io = try makeFileIO(choice, logger: Logger(label: "test"))
        do {
            try await withFile(fileLength) { try await body(io, $0, group.next()) }
        } catch {
            await io.shutdown()
            throw error
        }
        await io.shutdown()
    }

    private func withFile(_ length: UInt64, _ body: (LocalFile) async throws -> Void) async throws {
        let path = "/tmp/blockgate-fileio-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).img"
        defer { unlink(path) }
        try await body(try LocalFile.open(path: path, length: length))
    }

    @Test(arguments: backends)
    func writeThenReadReturnsTheData(_ choice: FileIOBackendChoice) async throws {
        try await withIO(choice, fileLength: 1 << 20) { io, file, loop in
            var data = ByteBuffer()
            for index in 0..<8192 { data.writeInteger(UInt8(truncatingIfNeeded: index * 7)) }
            try await io.write(file, offset: 4096, data: data, dsync: false, on: loop).get()
            let back = try await io.read(file, offset: 4096, length: 8192, on: loop).get()
            #expect(back == data)
            let before = try await io.read(file, offset: 0, length: 4096, on: loop).get()
            #expect(before.readableBytesView.allSatisfy { $0 == 0 })
        }
    }

    /// Writes through the page cache go in pieces (`PageCacheWrites`: 64 KiB, ending at its
    /// multiples), chained 16 at most on the ring: writes of any length at any offset, several
    /// chains long, all at once, land whole; so does a synchronous one, which goes whole.
    @Test(arguments: backends)
    func writesInPiecesLandWhole(_ choice: FileIOBackendChoice) async throws {
        try await withIO(choice, fileLength: 16 << 20) { io, file, loop in
            let writes: [(offset: UInt64, length: Int, dsync: Bool)] = [
                (0, 65536, false), (69632, 65537, false), (200_000, 1 << 20, false),
                ((2 << 20) + 5000, (3 << 20) + 123, false), (6 << 20, 1 << 20, false), (8 << 20, 1, false),
                (10 << 20, (1 << 20) + (1 << 19), true),
            ]
            let buffers = writes.enumerated().map { number, write in
                var data = ByteBuffer()
                data.writeBytes((0..<write.length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ number &+ 1) })
                return data
            }
            let written = zip(writes, buffers).map { write, data in
                io.write(file, offset: write.offset, data: data, dsync: write.dsync, on: loop)
            }
            try await EventLoopFuture.andAllSucceed(written, on: loop).get()
            for (write, data) in zip(writes, buffers) {
                let back = try await io.read(file, offset: write.offset, length: write.length, on: loop).get()
                #expect(back == data, "write of \(write.length) bytes at \(write.offset)")
            }
        }
    }

    /// Direct writes (a second descriptor, O_DIRECT) of a 4 KiB-aligned buffer land in the file
    /// that the page cache then reads; a buffer, offset or length off the alignment is refused
    /// before it reaches the kernel.
    @Test(arguments: backends)
    func alignedDirectWritesReadBackThroughThePageCache(_ choice: FileIOBackendChoice) async throws {
        try await withIO(choice, fileLength: 1 << 20) { io, file, loop in
            let alignment = LocalFile.directAlignment
            var data = ByteBuffer()
            data.reserveCapacity(4 * alignment)
            let start = data.withVeryUnsafeMutableBytes { Int(bitPattern: $0.baseAddress) }
            let padding = (alignment - start % alignment) % alignment
            data.moveWriterIndex(forwardBy: padding)
            data.moveReaderIndex(forwardBy: padding)
            for index in 0..<(2 * alignment) { data.writeInteger(UInt8(truncatingIfNeeded: index * 11)) }
            #expect(LocalFile.isDirectAligned(data, offset: 8192))
            #expect(!LocalFile.isDirectAligned(data, offset: 8192 + 512))
            #expect(!LocalFile.isDirectAligned(data.getSlice(at: data.readerIndex + 1, length: alignment)!, offset: 0))
            #expect(!LocalFile.isDirectAligned(data.getSlice(at: data.readerIndex, length: 512)!, offset: 0))
            let direct = try #require(LocalFile.openDirect(path: file.path), "\(file.path) refuses O_DIRECT")
            try await io.write(direct, offset: 8192, data: data, dsync: false, on: loop).get()
            let back = try await io.read(file, offset: 8192, length: data.readableBytes, on: loop).get()
            #expect(back == data)
        }
    }

    @Test(arguments: backends)
    func readPastEndOfFileIsZeros(_ choice: FileIOBackendChoice) async throws {
        try await withIO(choice, fileLength: 4096) { io, file, loop in
            var data = ByteBuffer()
            data.writeRepeatingByte(0xAB, count: 4096)
            try await io.write(file, offset: 0, data: data, dsync: true, on: loop).get()
            let back = try await io.read(file, offset: 2048, length: 8192, on: loop).get()
            #expect(back.readableBytes == 8192)
            #expect(back.readableBytesView.prefix(2048).allSatisfy { $0 == 0xAB })
            #expect(back.readableBytesView.dropFirst(2048).allSatisfy { $0 == 0 })
        }
    }

    /// Reads made on the file's event loop, as the NBD server makes them, return the file's
    /// bytes whether the page cache holds all of them, none or only the first part, and past the
    /// end of the file; for a small read and a large one (the io_uring backend answers a small
    /// read from the page cache when it holds the whole range, through the ring otherwise, and
    /// has a large one copied by the kernel's workers).
    @Test(arguments: backends)
    func readsOnTheLoopReturnTheFileWhateverThePageCacheHolds(_ choice: FileIOBackendChoice) async throws {
        for size in [64 << 10, 512 << 10] {
            try await withIO(choice, fileLength: 1 << 20) { io, file, loop in
                var data = ByteBuffer()
                for index in 0..<size { data.writeInteger(UInt8(truncatingIfNeeded: index * 13 + 5)) }
                var last = ByteBuffer()
                last.writeRepeatingByte(0xCD, count: 4096)
                try await io.write(file, offset: 65536, data: data, dsync: false, on: loop).get()
                try await io.write(file, offset: (1 << 20) - 4096, data: last, dsync: false, on: loop).get()
                try await io.syncData(file, on: loop).get()
                let read = { (offset: UInt64, length: Int) in
                    try await loop.flatSubmit { io.read(file, offset: offset, length: length, on: loop) }.get()
                }
                let dropPageCache = { #expect(posix_fadvise(file.descriptor, 0, 0, POSIX_FADV_DONTNEED) == 0) }
                #expect(try await read(65536, size) == data)  // all in the page cache
                dropPageCache()
                #expect(try await read(65536, size) == data)  // none
                dropPageCache()
                #expect(try await read(65536, 4096) == data.getSlice(at: 0, length: 4096))
                #expect(try await read(65536, size) == data)  // the first page only
                let tail = try await read((1 << 20) - 4096, size)
                #expect(tail.readableBytes == size)
                #expect(tail.readableBytesView.prefix(4096).allSatisfy { $0 == 0xCD })
                #expect(tail.readableBytesView.dropFirst(4096).allSatisfy { $0 == 0 })
            }
        }
    }

    @Test(arguments: backends)
    func punchHoleFreesSpaceAndReadsZeros(_ choice: FileIOBackendChoice) async throws {
        try await withIO(choice, fileLength: 4 << 20) { io, file, loop in
            var data = ByteBuffer()
            data.writeRepeatingByte(0x5A, count: 1 << 20)
            try await io.write(file, offset: 1 << 20, data: data, dsync: false, on: loop).get()
            try await io.syncData(file, on: loop).get()
            #expect(try file.allocatedBytes() >= 1 << 20)
            #expect(try file.dataRanges(in: 0..<(4 << 20)) == [(1 << 20)..<(2 << 20)])
            try await io.allocate(file, mode: .punchHole, offset: 1 << 20, length: 1 << 20, on: loop).get()
            #expect(try file.allocatedBytes() < 64 << 10)
            #expect(try file.dataRanges(in: 0..<(4 << 20)).isEmpty)
            let back = try await io.read(file, offset: 1 << 20, length: 1 << 20, on: loop).get()
            #expect(back.readableBytesView.allSatisfy { $0 == 0 })
        }
    }

    @Test(arguments: backends)
    func zeroRangeKeepsAllocation(_ choice: FileIOBackendChoice) async throws {
        try await withIO(choice, fileLength: 1 << 20) { io, file, loop in
            var data = ByteBuffer()
            data.writeRepeatingByte(0x11, count: 65536)
            try await io.write(file, offset: 0, data: data, dsync: false, on: loop).get()
            try await io.allocate(file, mode: .zeroRange, offset: 0, length: 65536, on: loop).get()
            let back = try await io.read(file, offset: 0, length: 65536, on: loop).get()
            #expect(back.readableBytesView.allSatisfy { $0 == 0 })
            #expect(try file.allocatedBytes() >= 65536)
        }
    }

    @Test(arguments: backends)
    func manyConcurrentOperationsAllComplete(_ choice: FileIOBackendChoice) async throws {
        let count = 5000
        try await withIO(choice, fileLength: UInt64(count) * 4096) { io, file, loop in
            let writes = (0..<count).map { index -> EventLoopFuture<Void> in
                var block = ByteBuffer()
                block.writeRepeatingByte(UInt8(truncatingIfNeeded: index), count: 4096)
                return io.write(file, offset: UInt64(index) * 4096, data: block, dsync: false, on: loop)
            }
            try await EventLoopFuture.andAllSucceed(writes, on: loop).get()
            let reads = (0..<count).map { io.read(file, offset: UInt64($0) * 4096, length: 4096, on: loop) }
            let results = try await EventLoopFuture.whenAllSucceed(reads, on: loop).get()
            var mismatches = 0
            for (index, block) in results.enumerated() {
                var expected = ByteBuffer()
                expected.writeRepeatingByte(UInt8(truncatingIfNeeded: index), count: 4096)
                if block != expected { mismatches += 1 }
            }
            #expect(mismatches == 0)
        }
    }

    /// Operations started on the loop within one tick are submitted together when the tick ends:
    /// more of them than the ring's submission queue (256) and completion slots (4,096) hold
    /// must still all complete, in full.
    @Test(.timeLimit(.minutes(1)), arguments: backends)
    func operationsStartedInOneTickBeyondTheRingAllComplete(_ choice: FileIOBackendChoice) async throws {
        let count = 6000
        try await withIO(choice, fileLength: UInt64(count) * 4096) { io, file, loop in
            let written = try await loop.submit {
                (0..<count).map { index -> EventLoopFuture<Void> in
                    var block = ByteBuffer()
                    block.writeRepeatingByte(UInt8(truncatingIfNeeded: index * 3 + 1), count: 4096)
                    return io.write(file, offset: UInt64(index) * 4096, data: block, dsync: false, on: loop)
                }
            }.get()
            try await EventLoopFuture.andAllSucceed(written, on: loop).get()
            let synced = try await loop.submit { io.syncData(file, on: loop) }.get()
            try await synced.get()
            #expect(blocksNotFilled(file, count: count) { UInt8(truncatingIfNeeded: $0 * 3 + 1) } == 0)
        }
    }

    /// Each write is started by the completion of the one before (on the ring, from within its
    /// reaping): every one of them must still be submitted and complete.
    @Test(.timeLimit(.minutes(1)), arguments: backends)
    func writesStartedFromCompletionsAllComplete(_ choice: FileIOBackendChoice) async throws {
        let count = 500
        try await withIO(choice, fileLength: UInt64(count) * 4096) { io, file, loop in
            let done = loop.makePromise(of: Void.self)
            @Sendable func write(_ index: Int) {
                guard index < count else { return done.succeed(()) }
                var block = ByteBuffer()
                block.writeRepeatingByte(UInt8(truncatingIfNeeded: index * 5 + 2), count: 4096)
                io.write(file, offset: UInt64(index) * 4096, data: block, dsync: false, on: loop).whenComplete {
                    switch $0 {
                    case .success: write(index + 1)
                    case .failure(let error): done.fail(error)
                    }
                }
            }
            loop.execute { write(0) }
            try await done.futureResult.get()
            #expect(blocksNotFilled(file, count: count) { UInt8(truncatingIfNeeded: $0 * 5 + 2) } == 0)
        }
    }

    /// How many of the file's first `count` 4 KiB blocks (read with pread) are not block `i`
    /// filled with `fill(i)`.
    private func blocksNotFilled(_ file: LocalFile, count: Int, _ fill: (Int) -> UInt8) -> Int {
        (0..<count).filter { index in
            var block = [UInt8](repeating: 0, count: 4096)
            let got = pread(file.descriptor, &block, 4096, off_t(index) * 4096)
            return got != 4096 || block.contains { $0 != fill(index) }
        }.count
    }

    @Test(arguments: backends)
    func failuresCarryTheErrno(_ choice: FileIOBackendChoice) async throws {
        try await withIO(choice, fileLength: 4096) { io, file, loop in
            await #expect(throws: LocalIOError.self) {
                try await io.allocate(file, mode: .punchHole, offset: 0, length: 0, on: loop).get()
            }
        }
    }
}
