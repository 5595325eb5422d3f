import BlockDevice
import ChunkEngine
import Codecs
import Foundation
import Metadata
import NIOCore
import ObjectStore
import Testing
import VolumeTestSupport

/// A cached volume's chunk objects in format 1 (docs/object-format.md) through the real engine
/// and a real store on disk: every combination of compression and cipher reads back what was
/// written; a ranged read fetches only its frames; damage in the store is never served; and the
/// raw objects of a volume from before the format are still read beside new ones.
@Suite struct ObjectFormatTests {
    static let combinations: [(Compression, Cipher)] = [Compression.off, .lz4, .zstd(level: 3)].flatMap {
        compression in Cipher.allCases.map { (compression, $0) }
    }

    /// 256 KiB per chunk: text, zeros, noise and text again, each 64 KiB (one frame).
    static func sample(chunks: Int, seed: UInt64) -> [UInt8] {
        var random = SplitMix(seed: seed)
        var bytes: [UInt8] = []
        let text = Array("SECRET-PLAINTEXT blockgate keeps this line in a frame of its own. ".utf8)
        for _ in 0..<chunks {
            for part in 0..<4 {
                switch part {
                case 1: bytes += [UInt8](repeating: 0, count: 65536)
                case 2: bytes += (0..<65536).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                default: bytes += (0..<65536).map { text[$0 % text.count] }
                }
            }
        }
        return bytes
    }

    private func fixture(
        _ compression: Compression, _ cipher: Cipher, flaky: inout FlakyObjectStore?, formatSince: UInt64 = 1
    ) async throws -> VolumeFixture {
        var wrapped: FlakyObjectStore?
        let fixture = try await VolumeFixture(
            size: 4 << 20, chunkSize: 256 << 10, kind: .cached,
            objectFormat: ObjectFormatRecord(
                formatSince: formatSince, compression: compression.description, cipher: cipher.description),
            dataKey: cipher == .off ? nil : .generate(),
            wrapStore: { base in
                wrapped = FlakyObjectStore(wrapping: base)
                return wrapped!
            })
        flaky = wrapped
        return fixture
    }

    /// The files of the volume's chunk objects in the store's directory.
    private func objectFiles(_ fixture: VolumeFixture) throws -> [String] {
        let root = fixture.objects!.root + "/" + Volume.objectPrefix(uuid: fixture.record.uuid) + "chunks"
        return try FileManager.default.contentsOfDirectory(atPath: root).map { root + "/" + $0 }
    }

    @Test(arguments: combinations)
    func everyCombinationReadsBackWhatWasWritten(compression: Compression, cipher: Cipher) async throws {
        var flaky: FlakyObjectStore?
        let fixture = try await fixture(compression, cipher, flaky: &flaky)
        let data = Self.sample(chunks: 3, seed: 1)
        try await fixture.write(256 << 10, data)
        try await fixture.uploadAll()
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(256 << 10, data.count) == data)
        // Ranged reads of a cold chunk, inside one frame and across frames.
        await fixture.volume.waitForDownloads()
        try await fixture.volume.dropCache()
        for (offset, length) in [(300_000, 4096), (3 * 65536 + 256 << 10, 8192), (500_000, 100_000)] {
            let back = try await fixture.read(UInt64(offset), length)
            #expect(back == Array(data[(offset - (256 << 10))...].prefix(length)), "\(offset)")
        }
        let (logical, stored) = try await fixture.volume.storedBytes()
        #expect(logical == UInt64(data.count))
        if compression != .off {
            // The zeros are not stored and the text shrinks: about a quarter is left.
            #expect(stored < logical / 2)
        } else {
            #expect(stored > logical)
        }
        let marker = Data("SECRET-PLAINTEXT".utf8)
        let files = try objectFiles(fixture)
        #expect(files.count == 3)
        for file in files {
            let contents = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(contents.prefix(4) == Data("BGOF".utf8))
            if cipher != .off {
                #expect(contents.range(of: marker) == nil, "plaintext in \(file)")
            } else if compression == .off {
                #expect(contents.range(of: marker) != nil)
            }
        }
        await fixture.close()
    }

    /// A 4 KiB read of a cold chunk fetches the frame holding it (and, compressed, the frame
    /// table), not the chunk; a read of all-zero frames of a compressed chunk fetches only the
    /// table. Each read comes from a volume just opened: no frame table is kept, and no read
    /// before it makes it look sequential (which would fetch the whole chunk).
    @Test(arguments: [(Compression.off, Cipher.off), (.zstd(level: 3), .aes256GCM), (.lz4, .chaCha20Poly1305)])
    func aRangedReadFetchesOnlyTheFramesItNeeds(compression: Compression, cipher: Cipher) async throws {
        var flaky: FlakyObjectStore?
        let fixture = try await fixture(compression, cipher, flaky: &flaky)
        let data = Self.sample(chunks: 1, seed: 2)
        try await fixture.write(0, data)
        try await fixture.uploadAll()
        func coldRead(_ offset: Int) async throws -> (gets: Int, bytes: Int) {
            try await fixture.volume.dropCache()
            try await fixture.reopen()
            _ = flaky!.takeGets()
            #expect(try await fixture.read(UInt64(offset), 4096) == Array(data[offset..<(offset + 4096)]))
            await fixture.volume.waitForDownloads()
            return flaky!.takeGets()
        }
        let frame = 65536 + cipher.trailerSize
        let table = compression == .off ? 0 : 64 + 4 * 4 + cipher.trailerSize
        let noise = try await coldRead(2 * 65536 + 8192)  // stored as it is
        #expect(noise.bytes == table + frame)
        #expect(noise.gets == (compression == .off ? 1 : 2))
        let text = try await coldRead(3 * 65536 + 4096)
        #expect(compression == .off ? text.bytes == frame : text.bytes < table + frame / 4)
        let zeros = try await coldRead(65536 + 12288)
        #expect(zeros.bytes == (compression == .off ? frame : table))
        await fixture.close()
    }

    /// A byte flipped in a stored object fails the reads of the frame holding it with an error,
    /// never with other data, counts the failure and marks the volume degraded; the other frames
    /// of the chunk are still read. Damage on the way (a bad copy) is fetched again and passes.
    @Test(arguments: combinations)
    func damageIsNeverServed(compression: Compression, cipher: Cipher) async throws {
        var flaky: FlakyObjectStore?
        let fixture = try await fixture(compression, cipher, flaky: &flaky)
        let data = Self.sample(chunks: 1, seed: 3)
        try await fixture.write(0, data)
        try await fixture.uploadAll()
        try await fixture.volume.dropCache()

        flaky!.damageNextGets(1)
        #expect(try await fixture.read(2 * 65536, 65536) == Array(data[(2 * 65536)..<(3 * 65536)]))
        #expect(fixture.volume.integrityFailures == 0)
        await fixture.volume.waitForDownloads()
        try await fixture.volume.dropCache()
        try await fixture.reopen()

        // Flip a byte of the stored noise frame (frame 2), wherever the format put it.
        let file = try #require(try objectFiles(fixture).first)
        var contents = try Data(contentsOf: URL(fileURLWithPath: file))
        let codec = try ObjectCodec(
            compression: compression, cipher: cipher, key: fixture.dataKey, scope: fixture.record.uuid)
        var object = ByteBuffer()
        object.writeBytes(contents)
        let generation = try #require(UInt64(file.split(separator: "-").last!))
        let table =
            codec.hasFrameTable
            ? try codec.frameTable(
                from: ObjectBytes(object), identity: .chunk(index: 0, generation: generation), logicalLength: data.count
            ) : nil
        let plan = codec.plan((2 * 65536)..<(3 * 65536), logicalLength: data.count, table: table)
        let position = Int(plan.objectRange.lowerBound) + 1000
        contents[position] ^= 0x01
        try contents.write(to: URL(fileURLWithPath: file))

        let failure = await #expect(throws: BlockDeviceError.self) { _ = try await fixture.read(2 * 65536, 4096) }
        #expect(failure?.kind == .damaged)
        #expect(fixture.volume.integrityFailures > 0)
        #expect(try await fixture.read(0, 65536) == Array(data[0..<65536]))
        #expect(try await fixture.read(3 * 65536, 65536) == Array(data[(3 * 65536)...]))
        await fixture.close()
    }

    /// A volume from before the format: its chunk records name raw objects below `format_since`.
    /// They are read as they are; chunks written since are uploaded in format 1; and a rebuild
    /// from the store alone, with no `format_since` to go by, finds where format 1 begins.
    @Test func rawObjectsOfAnOlderVolumeAreReadBesideNewOnes() async throws {
        var flaky: FlakyObjectStore?
        let fixture = try await fixture(.off, .off, flaky: &flaky, formatSince: 5)
        let old = Self.sample(chunks: 4, seed: 4)
        let chunk = 256 << 10
        let geometry = fixture.volume.geometry
        // Raw objects of generations 1-4 and records naming them, as an older blockgate left them.
        var records: [ChunkRecord] = []
        for index in 0..<4 {
            var buffer = ByteBuffer()
            buffer.writeBytes(old[(index * chunk)..<((index + 1) * chunk)])
            let key = try ObjectKey("\(Volume.objectPrefix(uuid: fixture.record.uuid))chunks/\(index)-\(index + 1)")
            try await fixture.objects!.put(key, data: buffer)
            records.append(
                ChunkRecord(
                    index: Int64(index), valid: [UInt8](repeating: 0xFF, count: 8), dirty: false,
                    remoteGeneration: UInt64(index + 1)))
        }
        try fixture.store.apply(records.map { .store(volumeID: fixture.record.id, $0) })
        try await fixture.reopen()
        #expect(try await fixture.read(0, old.count) == old)

        var newer = old
        let fresh = Self.sample(chunks: 1, seed: 5)
        newer.replaceSubrange(chunk..<(2 * chunk), with: fresh)
        try await fixture.write(UInt64(chunk), fresh)
        try await fixture.uploadAll()
        await fixture.volume.waitForDownloads()
        try await fixture.volume.dropCache()
        #expect(try await fixture.read(0, newer.count) == newer)
        let uploaded = try #require(fixture.store.chunks(volumeID: fixture.record.id).first { $0.index == 1 })
        #expect(uploaded.remoteGeneration >= 5)

        let (rebuilt, _, formatSince) = try await Volume.chunksInStore(
            uuid: fixture.record.uuid, geometry: geometry, store: fixture.objects!, formatSince: nil)
        #expect(formatSince == uploaded.remoteGeneration)
        #expect(rebuilt.map(\.remoteGeneration) == [1, uploaded.remoteGeneration, 3, 4])
        await fixture.close()
    }
}
