import Foundation
import Glibc
import NIOCore
import ObjectStore
import Testing

/// The same contract on every backend: the file store, the emulator, and moto_server.
@Suite struct ObjectStoreContractTests {
    private func key(_ text: String) throws -> ObjectKey { try ObjectKey(text) }

    /// Whether a body starts at a 4 KiB boundary of its memory (so that the gateway can write a
    /// download to disk with direct I/O as it is).
    private func startsAligned(_ body: ByteBuffer) -> Bool {
        body.withUnsafeReadableBytes { Int(bitPattern: $0.baseAddress) % 4096 == 0 }
    }

    @Test(arguments: Backend.allCases)
    func putGetHeadDeleteRoundTrip(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        try await fixture.store.put(try key("vol/chunks/1-1"), data: ByteBuffer(bytes: bytes))
        let whole = try await fixture.store.get(try key("vol/chunks/1-1"), range: nil)
        let same = Array(whole.readableBytesView) == bytes
        #expect(same)
        let part = try await fixture.store.get(try key("vol/chunks/1-1"), range: 4096..<8192)
        let samePart = Array(part.readableBytesView) == Array(bytes[4096..<8192])
        #expect(samePart)
        #expect(startsAligned(whole))
        #expect(startsAligned(part))
        #expect(
            try await fixture.store.head(try key("vol/chunks/1-1")) == ObjectInfo(key: "vol/chunks/1-1", size: 100_000))
        try await fixture.store.delete(try key("vol/chunks/1-1"))
        #expect(try await fixture.store.head(try key("vol/chunks/1-1")) == nil)
        try await fixture.store.delete(try key("vol/chunks/1-1"))
        await #expect(throws: ObjectStoreError(.notFound, "no object vol/chunks/1-1")) {
            try await fixture.store.get(try key("vol/chunks/1-1"), range: nil)
        }
        await fixture.close()
    }

    @Test(arguments: Backend.allCases)
    func anObjectPutInPiecesHoldsThemOneAfterAnother(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        // More pieces than one writev takes (the file store's 1,024), empty ones among them, and
        // one larger than a connection's read (the emulator receives it in several).
        var pieces = (0..<1_500).map { index in
            ByteBuffer(bytes: (0..<(index * 7 % 300)).map { UInt8(truncatingIfNeeded: $0 &+ index) })
        }
        pieces.insert(ByteBuffer(bytes: (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 >> 3) }), at: 700)
        let bytes = pieces.flatMap { Array($0.readableBytesView) }
        try await fixture.store.put(try key("vol/chunks/3-1"), pieces: pieces, crc32c: PayloadChecksum.crc32c(pieces))
        let stored = try await fixture.store.get(try key("vol/chunks/3-1"), range: nil)
        #expect(stored.readableBytes == bytes.count)
        #expect(Array(stored.readableBytesView) == bytes)
        await fixture.close()
    }

    @Test(arguments: Backend.allCases)
    func piecesHoldTheBytesAGetReturns(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        // Larger than one read of a connection, so that a response arrives in several pieces.
        let bytes = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }
        try await fixture.store.put(try key("vol/chunks/2-1"), data: ByteBuffer(bytes: bytes))
        for range: Range<UInt64>? in [nil, 1..<2, 100_000..<2_200_000] {
            let pieces = try await fixture.store.getPieces(try key("vol/chunks/2-1"), range: range)
            let joined = pieces.flatMap { Array($0.readableBytesView) }
            let wanted = range.map { Array(bytes[Int($0.lowerBound)..<Int($0.upperBound)]) } ?? bytes
            #expect(joined == wanted, "\(String(describing: range)) in \(pieces.count) pieces")
            // Over HTTP, a body of MiBs is read in several pieces, handed over without joining.
            #expect(backend == .file || range == 1..<2 || pieces.count > 1)
        }
        #expect(
            try await fixture.store.getPieces(try key("vol/chunks/2-1"), range: 5..<5).allSatisfy {
                $0.readableBytes == 0
            })
        await #expect(throws: ObjectStoreError(.notFound, "no object vol/chunks/2-2")) {
            try await fixture.store.getPieces(try key("vol/chunks/2-2"), range: nil)
        }
        await fixture.close()
    }

    /// Pages of a file that are in the page cache (mincore of a mapping of it).
    private func residentPages(of path: String) throws -> Int {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        try #require(descriptor >= 0, "open \(path)")
        defer { close(descriptor) }
        var status = stat()
        try #require(fstat(descriptor, &status) == 0)
        let length = Int(status.st_size)
        let mapping = try #require(mmap(nil, length, PROT_READ, MAP_SHARED, descriptor, 0))
        try #require(mapping != MAP_FAILED)
        defer { munmap(mapping, length) }
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        var pages = [UInt8](repeating: 0, count: (length + pageSize - 1) / pageSize)
        try #require(mincore(mapping, length, &pages) == 0)
        return pages.filter { $0 & 1 != 0 }.count
    }

    /// The object's file in a store on disk (the file store, or the emulator's bucket directory).
    private func objectFile(_ name: String, in fixture: StoreFixture) throws -> String {
        let files = FileManager.default.enumerator(atPath: fixture.directory)?.allObjects as? [String] ?? []
        let relative = try #require(
            files.first { $0.hasSuffix(name) }, "no file for \(name) under \(fixture.directory)")
        return "\(fixture.directory)/\(relative)"
    }

    @Test(arguments: [Backend.file, .emulator])
    func anObjectStoredIsOnDiskAndNotKeptInMemory(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await fixture.store.put(try key("vol/chunks/3-1"), data: ByteBuffer(bytes: bytes))
        // Written, synced, then dropped from the page cache: storing objects does not grow it.
        #expect(try residentPages(of: try objectFile("chunks/3-1", in: fixture)) == 0)
        let back = try await fixture.store.get(try key("vol/chunks/3-1"), range: nil)
        let same = Array(back.readableBytesView) == bytes
        #expect(same)
        await fixture.close()
    }

    @Test(arguments: Backend.allCases)
    func listFindsKeysByPrefixInOrder(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        for name in ["a/x/1", "a/x/2", "a/y", "b/1", "a/x10"] {
            try await fixture.store.put(try key(name), data: ByteBuffer(string: name))
        }
        #expect(try await fixture.store.list(prefix: "a/x").map(\.key) == ["a/x/1", "a/x/2", "a/x10"])
        #expect(try await fixture.store.list(prefix: "a/").map(\.key) == ["a/x/1", "a/x/2", "a/x10", "a/y"])
        #expect(try await fixture.store.list(prefix: "").count == 5)
        #expect(try await fixture.store.list(prefix: "zzz").isEmpty)
        #expect(try await fixture.store.list(prefix: "b/").first?.size == 3)
        await fixture.close()
    }

    @Test(arguments: [Backend.emulator, .moto])
    func listingsPageThroughMoreThanOneResponse(_ backend: Backend) async throws {
        let fixture = try await StoreFixture(backend)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<1050 {
                group.addTask {
                    try await fixture.store.put(try ObjectKey("many/\(index)"), data: ByteBuffer(string: "x"))
                }
            }
            try await group.waitForAll()
        }
        #expect(try await fixture.store.list(prefix: "many/").count == 1050)
        await fixture.close()
    }

    @Test func keysCannotEscapeTheirNamespace() {
        for bad in ["", "/abs", "../up", "a/../b", "a//b", "a/./b", "tab\there", "nul\u{0}", "back\\slash", "é"] {
            #expect(throws: ObjectStoreError.self, "\(bad)") { try ObjectKey(bad) }
        }
        #expect(throws: Never.self) { try ObjectKey("vol-1/chunks/17-3") }
    }
}
