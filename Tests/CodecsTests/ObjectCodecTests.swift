import Crypto
import Foundation
import NIOCore
import Testing

@testable import Codecs

/// Objects of format version 1 for every combination of compression and cipher: round trips,
/// ranged reads of only the frames needed, and damage, foreign frames and wrong keys refused.
@Suite struct ObjectCodecTests {
    static let compressions: [Compression] = [.off, .lz4, .zstd(level: 3)]
    static let key = DataKey.generate()

    static func codecs(scope: String = "vol-a", key: DataKey = key) -> [ObjectCodec] {
        compressions.flatMap { compression in
            Cipher.allCases.map { cipher in
                try! ObjectCodec(
                    compression: compression, cipher: cipher, key: cipher == .off ? nil : key, scope: scope,
                    frameSize: 16 << 10)
            }
        }
    }

    /// 100 KiB + 4 KiB: frames of text, zeros and noise, the last one short.
    static let sample: ByteBuffer = {
        var buffer = ByteBuffer()
        let text = Array("the quick brown fox jumps over the lazy dog, again and again. ".utf8)
        while buffer.readableBytes < 32 << 10 { buffer.writeBytes(text) }
        buffer.moveWriterIndex(to: 32 << 10)
        buffer.writeRepeatingByte(0, count: 40 << 10)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<(32 << 10) { buffer.writeInteger(UInt8.random(in: 0...255, using: &generator)) }
        buffer.writeRepeatingByte(7, count: 4 << 10)
        return buffer
    }()

    static let identity = ObjectIdentity.chunk(index: 5, generation: 9)

    /// `buffer` in pieces of `size` bytes (the last shorter), as a response body arrives; one
    /// piece when `size` is nil.
    private func pieces(_ buffer: ByteBuffer, of size: Int?) -> ObjectBytes {
        guard let size else { return ObjectBytes(buffer) }
        return ObjectBytes(
            stride(from: 0, to: buffer.readableBytes, by: size).map {
                buffer.getSlice(at: buffer.readerIndex + $0, length: min(size, buffer.readableBytes - $0))!
            })
    }

    private func decodeWhole(
        _ codec: ObjectCodec, _ object: ByteBuffer, identity: ObjectIdentity = identity, pieceSize: Int? = 7001
    ) throws -> ByteBuffer {
        var output = ByteBuffer()
        try codec.decodeWhole(
            pieces(object, of: pieceSize), identity: identity, logicalLength: Self.sample.readableBytes, into: &output)
        return output
    }

    /// Reads bytes `range` the way a ranged GET would: the prefix first when there is a table,
    /// then only the planned bytes.
    private func readRange(_ codec: ObjectCodec, _ object: ByteBuffer, _ range: Range<Int>, pieceSize: Int? = 7001)
        throws -> (ByteBuffer, Int)
    {
        let length = Self.sample.readableBytes
        var table: FrameTable?
        if codec.hasFrameTable {
            let prefix = object.getSlice(at: 0, length: codec.prefixLength(logicalLength: length))!
            table = try codec.frameTable(
                from: pieces(prefix, of: pieceSize), identity: Self.identity, logicalLength: length)
        }
        let plan = codec.plan(range, logicalLength: length, table: table)
        let fetched = object.getSlice(at: Int(plan.objectRange.lowerBound), length: plan.objectRange.count)!
        var output = ByteBuffer()
        try codec.decode(
            pieces(fetched, of: pieceSize), plan: plan, identity: Self.identity, logicalLength: length, into: &output)
        #expect(output.readableBytes == plan.logical.count)
        let wanted = output.getSlice(at: range.lowerBound - plan.logical.lowerBound, length: range.count)!
        return (wanted, plan.objectRange.count)
    }

    @Test(arguments: codecs())
    func roundTripsWholeAndByRange(codec: ObjectCodec) throws {
        let object = try codec.encode(Self.sample, as: Self.identity)
        // Whole, and in pieces smaller and larger than a frame, cut inside trailers and headers.
        for pieceSize in [nil, 1, 7001, 16 << 10, 40000] {
            #expect(try decodeWhole(codec, object, pieceSize: pieceSize) == Self.sample, "pieces \(pieceSize ?? 0)")
            for range in [0..<4096, 4096..<20480, 30000..<50000, 40960..<73728, 100_000..<106_496, 0..<106_496] {
                let (data, _) = try readRange(codec, object, range, pieceSize: pieceSize)
                #expect(
                    data == Self.sample.getSlice(at: range.lowerBound, length: range.count)!,
                    "\(range) in pieces \(pieceSize ?? 0)")
            }
        }
    }

    @Test func framesStoredAsTheyAreGoOutAsSlicesOfTheDataNotCopies() throws {
        let codec = try ObjectCodec(scope: "vol-a", frameSize: 16 << 10)
        let encoded = try codec.encodePieces(Self.sample, as: Self.identity)
        let pieces = encoded.pieces
        let frames = codec.frameCount(logicalLength: Self.sample.readableBytes)
        // The header, then each frame and its CRC.
        #expect(pieces.count == 1 + 2 * frames)
        let base = Self.sample.withUnsafeReadableBytes { $0.baseAddress! }
        for frame in 0..<frames {
            let address = pieces[1 + 2 * frame].withUnsafeReadableBytes { $0.baseAddress! }
            #expect(address == base + frame * (16 << 10), "frame \(frame) was copied")
            #expect(pieces[2 + 2 * frame].readableBytes == 4)
        }
        var joined = ByteBuffer()
        for piece in pieces { joined.writeImmutableBuffer(piece) }
        #expect(try decodeWhole(codec, joined) == Self.sample)
        // The object's CRC32C, given without a second pass over it, is that of its bytes.
        #expect(encoded.crc32c == CRC32C.checksum(joined.readableBytesView))
        #expect(encoded.size == joined.readableBytes)
        // Compressed or sealed frames are new bytes: one piece.
        for other in Self.codecs() where other.compression != .off || other.cipher != .off {
            #expect(try other.encodePieces(Self.sample, as: Self.identity).pieces.count == 1)
        }
    }

    @Test(arguments: codecs())
    func aWholeObjectOfFramesStoredAsTheyAreDecodesAsViewsOfItsMemory(codec: ObjectCodec) throws {
        let object = try codec.encode(Self.sample, as: Self.identity)
        let base = object.withUnsafeReadableBytes { $0.baseAddress! }
        for pieceSize in [nil, 1, 7001, 16 << 10, 40000] {
            let views = try codec.decodeWholeAsViews(
                pieces(object, of: pieceSize), identity: Self.identity, logicalLength: Self.sample.readableBytes)
            // Compressed (the text), dropped (the zeros) or sealed frames are new bytes.
            guard codec.compression == .off, codec.cipher == .off else {
                #expect(views == nil)
                continue
            }
            let decoded = try #require(views, "pieces \(pieceSize ?? 0)")
            #expect(decoded.joined == Self.sample, "pieces \(pieceSize ?? 0)")
            for view in decoded.buffers {
                let address = view.withUnsafeReadableBytes { $0.baseAddress! }
                #expect(address >= base && address + view.readableBytes <= base + object.readableBytes, "copied")
            }
        }
    }

    @Test(arguments: codecs())
    func aRangedReadFetchesOnlyItsFrames(codec: ObjectCodec) throws {
        let object = try codec.encode(Self.sample, as: Self.identity)
        let (_, fetched) = try readRange(codec, object, 20480..<24576)
        // One 16 KiB frame (less when compressed) and its trailer.
        #expect(fetched <= (16 << 10) + 16)
        #expect(fetched > 0)
        let (_, zeroFetched) = try readRange(codec, object, (32 << 10)..<(64 << 10))
        #expect(zeroFetched == (codec.compression == .off ? 2 * ((16 << 10) + codec.cipher.trailerSize) : 0))
    }

    @Test(arguments: codecs())
    func compressionShrinksTextAndDropsZeros(codec: ObjectCodec) throws {
        let object = try codec.encode(Self.sample, as: Self.identity)
        let raw = Self.sample.readableBytes
        if codec.compression == .off {
            #expect(object.readableBytes > raw)
        } else {
            // The zeros cost nothing and the text little; the noise stays as it is.
            #expect(object.readableBytes < raw - (40 << 10) - (24 << 10))
        }
    }

    @Test(arguments: codecs())
    func everyFlippedByteIsDetected(codec: ObjectCodec) throws {
        let object = try codec.encode(Self.sample, as: Self.identity)
        var position = 0
        while position < object.readableBytes {
            var damaged = object
            damaged.setInteger(object.getInteger(at: position, as: UInt8.self)! ^ 0x20, at: position)
            #expect(throws: ObjectFormatError.self, "byte \(position)") { try decodeWhole(codec, damaged) }
            if codec.compression == .off && codec.cipher == .off {
                #expect(throws: ObjectFormatError.self, "byte \(position), as views") {
                    try codec.decodeWholeAsViews(
                        pieces(damaged, of: 7001), identity: Self.identity, logicalLength: Self.sample.readableBytes)
                }
            }
            position += position < 256 ? 1 : 997
        }
        var shortened = object
        shortened.moveWriterIndex(to: object.writerIndex - 1)
        #expect(throws: ObjectFormatError.self) { try decodeWhole(codec, shortened) }
    }

    @Test(arguments: codecs())
    func aRangedReadOfADamagedFrameFails(codec: ObjectCodec) throws {
        let object = try codec.encode(Self.sample, as: Self.identity)
        let length = Self.sample.readableBytes
        var table: FrameTable?
        if codec.hasFrameTable {
            let prefix = object.getSlice(at: 0, length: codec.prefixLength(logicalLength: length))!
            table = try codec.frameTable(from: ObjectBytes(prefix), identity: Self.identity, logicalLength: length)
        }
        // The last byte of the stored frame 5 (the noise), in its payload or its trailer.
        let plan = codec.plan(81920..<86016, logicalLength: length, table: table)
        for position in [Int(plan.objectRange.lowerBound) + 10, Int(plan.objectRange.upperBound) - 1] {
            var damaged = object
            damaged.setInteger(object.getInteger(at: position, as: UInt8.self)! ^ 1, at: position)
            #expect(throws: ObjectFormatError.self) { try readRange(codec, damaged, 81920..<86016) }
        }
    }

    @Test func aWrongKeyIsRefusedAndNeverDecodes() throws {
        for cipher in [Cipher.aes256GCM, .chaCha20Poly1305] {
            for compression in Self.compressions {
                let writer = try ObjectCodec(compression: compression, cipher: cipher, key: Self.key, scope: "v")
                let reader = try ObjectCodec(compression: compression, cipher: cipher, key: .generate(), scope: "v")
                let object = try writer.encode(Self.sample, as: Self.identity)
                var output = ByteBuffer()
                let error = #expect(throws: ObjectFormatError.self) {
                    try reader.decodeWhole(
                        ObjectBytes(object), identity: Self.identity, logicalLength: Self.sample.readableBytes,
                        into: &output)
                }
                #expect(error?.kind == .wrongKey)
                if compression == .off {
                    // Without the header, the tag of every frame still refuses it.
                    let plan = reader.plan(0..<4096, logicalLength: Self.sample.readableBytes, table: nil)
                    var output = ByteBuffer()
                    #expect(throws: ObjectFormatError.self) {
                        try reader.decode(
                            ObjectBytes(
                                object.getSlice(at: Int(plan.objectRange.lowerBound), length: plan.objectRange.count)!),
                            plan: plan, identity: Self.identity, logicalLength: Self.sample.readableBytes,
                            into: &output)
                    }
                }
            }
        }
    }

    /// A whole object, or a frame, of another chunk, generation or volume is refused even with
    /// the right key: each is bound to the object it was written for.
    @Test(arguments: codecs())
    func framesAreBoundToTheirObject(codec: ObjectCodec) throws {
        let other = try codec.encode(Self.sample, as: .chunk(index: 5, generation: 10))
        #expect(throws: ObjectFormatError.self) { try decodeWhole(codec, other) }
        let otherVolume = try ObjectCodec(
            compression: codec.compression, cipher: codec.cipher, key: codec.cipher == .off ? nil : Self.key,
            scope: "vol-b", frameSize: codec.frameSize)
        let foreign = try otherVolume.encode(Self.sample, as: Self.identity)
        if codec.cipher != .off {
            #expect(throws: ObjectFormatError.self) { try decodeWhole(codec, foreign) }
        }
        // Frame 0 and frame 1 swapped (both text, same length when stored raw).
        guard codec.compression == .off else { return }
        var swapped = try codec.encode(Self.sample, as: Self.identity)
        let stride = codec.frameSize + codec.cipher.trailerSize
        let first = swapped.getBytes(at: 64, length: stride)!
        let second = swapped.getBytes(at: 64 + stride, length: stride)!
        swapped.setBytes(second, at: 64)
        swapped.setBytes(first, at: 64 + stride)
        #expect(throws: ObjectFormatError.self) { try decodeWhole(codec, swapped) }
    }

    /// No two frames anywhere share a key and nonce: across volumes, chunks, generations and
    /// frames the (object key, nonce) pairs are all distinct, and the same object always gets
    /// the same pair (so a reader derives what the writer used).
    @Test func noncesNeverRepeat() {
        var seen = Set<[UInt8]>()
        var count = 0
        for scope in ["vol-a", "vol-b", "tape:T1"] {
            for index in [0, 1, 2, 255, 256, 1 << 20] {
                for generation: UInt64 in [1, 2, 3, 256, 1 << 32] {
                    let key = Self.key.objectKey(
                        scope: Array(scope.utf8), identity: .chunk(index: index, generation: generation))
                    let again = Self.key.objectKey(
                        scope: Array(scope.utf8), identity: .chunk(index: index, generation: generation))
                    #expect(key == again)
                    let keyBytes = key.withUnsafeBytes { Array($0) }
                    for frame: UInt32 in [0, 1, 63, 0xFFFF_FFFF] {
                        var nonce: [UInt8] = []
                        nonce.appendLittleEndian(frame)
                        seen.insert(keyBytes + nonce)
                        count += 1
                    }
                }
            }
        }
        #expect(seen.count == count)
        // Index and generation do not run into each other (5, 9) versus (9, 5).
        let a = Self.key.objectKey(scope: [], identity: .chunk(index: 5, generation: 9))
        let b = Self.key.objectKey(scope: [], identity: .chunk(index: 9, generation: 5))
        #expect(a != b)
    }

    /// A zstd frame as this codec writes it is a standard Zstandard frame: the zstd program
    /// (Debian's, a second implementation of the decoder) reads it back.
    @Test func zstdFramesAreStandard() throws {
        let text = Array(String(repeating: "blockgate stores chunks in frames. ", count: 400).utf8)
        let packed = try #require(
            text.withUnsafeBytes { Compression.zstd(level: 3).compress($0, with: CompressionContext()) })
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zstd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(packed).write(to: directory.appendingPathComponent("frame.zst"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/zstd")
        process.arguments = ["-q", "-d", directory.appendingPathComponent("frame.zst").path]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(try Data(contentsOf: directory.appendingPathComponent("frame")) == Data(text))
    }

    @Test func settingsAreChecked() {
        #expect(throws: ObjectFormatError.self) { try ObjectCodec(cipher: .aes256GCM, scope: "v") }
        #expect(throws: ObjectFormatError.self) { try ObjectCodec(key: .generate(), scope: "v") }
        #expect(throws: ObjectFormatError.self) { try ObjectCodec(scope: "v", frameSize: 3000) }
        #expect(Compression(parsing: "zstd:19") == .zstd(level: 19))
        #expect(Compression(parsing: "zstd:20") == nil)
        #expect(Compression(parsing: "lz4")?.description == "lz4")
        #expect(Cipher(parsing: "chacha20-poly1305") == .chaCha20Poly1305)
        #expect(Cipher(parsing: "aes") == nil)
    }
}

extension ObjectCodec: CustomTestStringConvertible {
    public var testDescription: String { "\(compression)+\(cipher)" }
}

/// The format document is enough to read the objects: scripts/object-format/read_object.py, a
/// reader written from docs/object-format.md alone (Python, with other implementations of the
/// primitives), reads what this codec writes, whole and by range, and refuses a damaged object.
@Suite struct SecondReaderTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    private func secondReader(_ object: ByteBuffer, key: DataKey?, range: Range<Int>? = nil) throws -> (Int32, Data) {
        let path = NSTemporaryDirectory() + "blockgate-object-\(UUID().uuidString.prefix(8))"
        try Data(object.readableBytesView).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.root + "/.venv/bin/python3")
        process.arguments =
            [Self.root + "/scripts/object-format/read_object.py", path, "--scope", "vol-a"]
            + (key.map { ["--key", $0.bytes.map { String(format: "%02x", $0) }.joined()] } ?? [])
            + (range.map { ["--range", "\($0.lowerBound):\($0.upperBound)"] } ?? [])
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, data)
    }

    @Test(arguments: ObjectCodecTests.codecs())
    func readsEveryCombinationWholeAndByRange(codec: ObjectCodec) throws {
        let key = codec.cipher == .off ? nil : ObjectCodecTests.key
        let object = try codec.encode(ObjectCodecTests.sample, as: ObjectCodecTests.identity)
        let whole = try secondReader(object, key: key)
        #expect(whole.0 == 0)
        #expect(whole.1 == Data(ObjectCodecTests.sample.readableBytesView))
        let range = 30000..<90000
        let part = try secondReader(object, key: key, range: range)
        #expect(part.1 == Data(ObjectCodecTests.sample.readableBytesView[range]))
        var damaged = object
        let middle = object.readableBytes / 2
        damaged.setInteger(object.getInteger(at: middle, as: UInt8.self)! ^ 0x40, at: middle)
        #expect(try secondReader(damaged, key: key).0 == 1)
    }
}
