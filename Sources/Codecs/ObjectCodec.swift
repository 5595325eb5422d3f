import Crypto
import Foundation
import NIOCore

/// Writes and reads objects of format version 1 (docs/object-format.md) for one volume: data cut
/// into frames of `frameSize` bytes, each compressed when that makes it smaller (all-zero frames
/// not stored at all), then sealed with the volume's data key or checksummed with CRC-32C.
/// Every frame is checked as it is decoded; nothing damaged, altered or sealed with another key
/// is ever returned. A ranged read decodes only the frames holding the wanted bytes: their place
/// in the object follows from the frame size when frames are not compressed, and from the frame
/// table after the header when they are.
public struct ObjectCodec: Sendable {
    public let compression: Compression
    public let cipher: Cipher
    public let frameSize: Int
    private let frameShift: UInt8
    private let key: DataKey?
    private let scope: [UInt8]

    /// The frame size objects are written with unless told otherwise.
    public static let defaultFrameSize = 64 << 10

    /// - Parameters:
    ///   - key: the data key; required exactly when `cipher` is not `.off`.
    ///   - scope: what the objects belong to (a volume's uuid), bound into every frame.
    ///   - frameSize: a power of two from 4 KiB to 1 MiB.
    public init(
        compression: Compression = .off, cipher: Cipher = .off, key: DataKey? = nil, scope: String,
        frameSize: Int = defaultFrameSize
    ) throws(ObjectFormatError) {
        guard (cipher == .off) == (key == nil) else {
            throw ObjectFormatError(
                .invalidSettings, cipher == .off ? "a key without a cipher" : "\(cipher) needs a key")
        }
        guard frameSize.nonzeroBitCount == 1, (4096...(1 << 20)).contains(frameSize) else {
            throw ObjectFormatError(
                .invalidSettings, "frame size \(frameSize) is not a power of two from 4 KiB to 1 MiB")
        }
        self.compression = compression
        self.cipher = cipher
        self.frameSize = frameSize
        self.frameShift = UInt8(frameSize.trailingZeroBitCount)
        self.key = key
        self.scope = Array(scope.utf8)
    }

    /// Whether objects carry a frame table: a ranged read must know it first.
    public var hasFrameTable: Bool { compression != .off }

    /// The number of frames an object of `length` bytes of data has.
    public func frameCount(logicalLength length: Int) -> Int { (length + frameSize - 1) / frameSize }

    /// Bytes before the first frame: the header and, with compression, the frame table and its
    /// trailer. A ranged read of a compressed object fetches these first to find its frames.
    public func prefixLength(logicalLength length: Int) -> Int {
        ObjectHeader.size + (hasFrameTable ? 4 * frameCount(logicalLength: length) + cipher.trailerSize : 0)
    }

    private func header(_ identity: ObjectIdentity, length: Int) -> ObjectHeader {
        ObjectHeader(
            compression: compression.id, cipher: cipher.rawValue, frameShift: frameShift, keyID: key?.id ?? 0,
            frameCount: UInt32(frameCount(logicalLength: length)), logicalLength: UInt64(length), identity: identity)
    }

    private func frameLength(_ frame: Int, of length: Int) -> Int { min(frameSize, length - frame * frameSize) }

    // MARK: - Writing

    /// The object holding `data` as `identity`.
    public func encode(_ data: ByteBuffer, as identity: ObjectIdentity) throws -> ByteBuffer {
        let pieces = try encodePieces(data, as: identity).pieces
        guard pieces.count > 1 else { return pieces[0] }
        var output = ByteBuffer()
        output.reserveCapacity(pieces.reduce(0) { $0 + $1.readableBytes })
        for piece in pieces { output.writeImmutableBuffer(piece) }
        return output
    }

    /// The object holding `data` as `identity`, in pieces to send one after another: when frames
    /// are stored as they are (neither compressed nor sealed), each frame is a slice of `data`
    /// and nothing is copied; otherwise one piece.
    public func encodePieces(_ data: ByteBuffer, as identity: ObjectIdentity) throws -> EncodedObject {
        guard hasFrameTable || cipher != .off else { return rawPieces(data, as: identity) }
        return EncodedObject(pieces: [try encodeFrames(data, as: identity)], crc32c: nil)
    }

    /// Frames as they are with their CRCs: the header, then each frame's slice of `data` and its
    /// CRC (slices of one buffer). Each frame is read once: the CRC of its payload alone gives
    /// both its own CRC and, with the rest, the whole object's (`CRC32C.combine`).
    private func rawPieces(_ data: ByteBuffer, as identity: ObjectIdentity) -> EncodedObject {
        let length = data.readableBytes
        let header = header(identity, length: length)
        let sealing = Sealing(codec: self, bound: header.boundBytes, identity: identity)
        let count = frameCount(logicalLength: length)
        var checksums = ByteBuffer()
        checksums.reserveCapacity(4 * count)
        var objectCRC = header.encoded.withUnsafeBytes { CRC32C.checksum($0) }
        data.withUnsafeReadableBytes { bytes in
            for frame in 0..<count {
                let plain = UnsafeRawBufferPointer(
                    rebasing: bytes[(frame * frameSize)..<(frame * frameSize + frameLength(frame, of: length))])
                let payloadCRC = CRC32C.checksum(plain)
                let frameCRC = sealing.checksum(
                    payloadCRC: payloadCRC, length: plain.count, frame: frame, encoding: .raw)
                checksums.writeInteger(frameCRC, endianness: .little)
                objectCRC = CRC32C.combine(objectCRC, payloadCRC, secondLength: plain.count)
                objectCRC = withUnsafeBytes(of: frameCRC.littleEndian) { CRC32C.checksum($0, continuing: objectCRC) }
            }
        }
        var pieces = [ByteBuffer(bytes: header.encoded)]
        pieces.reserveCapacity(1 + 2 * count)
        for frame in 0..<count {
            pieces.append(
                data.getSlice(at: data.readerIndex + frame * frameSize, length: frameLength(frame, of: length))!)
            pieces.append(checksums.getSlice(at: 4 * frame, length: 4)!)
        }
        return EncodedObject(pieces: pieces, crc32c: objectCRC)
    }

    /// Frames compressed, sealed or both, in one buffer.
    private func encodeFrames(_ data: ByteBuffer, as identity: ObjectIdentity) throws -> ByteBuffer {
        let length = data.readableBytes
        let header = header(identity, length: length)
        let bound = header.boundBytes
        let sealing = Sealing(codec: self, bound: bound, identity: identity)
        let count = frameCount(logicalLength: length)
        let context = CompressionContext()
        var output = ByteBuffer()
        output.reserveCapacity(prefixLength(logicalLength: length) + length + count * cipher.trailerSize)
        output.writeBytes(header.encoded)
        try data.withUnsafeReadableBytes { bytes in
            let frames = (0..<count).map { frame in
                UnsafeRawBufferPointer(
                    rebasing: bytes[(frame * frameSize)..<(frame * frameSize + frameLength(frame, of: length))])
            }
            guard hasFrameTable else {
                for (frame, plain) in frames.enumerated() {
                    try sealing.append(plain, frame: frame, encoding: .raw, to: &output)
                }
                return
            }
            // The table comes first, so every frame is encoded before any is written.
            let encoded = frames.map { plain -> (FrameTable.Encoding, [UInt8]?) in
                if plain.isAllZero { return (.zero, nil) }
                guard let packed = compression.compress(plain, with: context) else { return (.raw, nil) }
                return (.compressed, packed)
            }
            var table: [UInt8] = []
            for (frame, (encoding, packed)) in encoded.enumerated() {
                let stored = encoding == .zero ? 0 : packed?.count ?? frames[frame].count
                table.appendLittleEndian(FrameTable.entry(encoding, length: stored))
            }
            output.writeBytes(table)
            output.writeBytes(try sealing.tableTrailer(table))
            for (frame, (encoding, packed)) in encoded.enumerated() where encoding != .zero {
                if let packed {
                    try packed.withUnsafeBytes { try sealing.append($0, frame: frame, encoding: encoding, to: &output) }
                } else {
                    try sealing.append(frames[frame], frame: frame, encoding: encoding, to: &output)
                }
            }
        }
        return output
    }

    // MARK: - Reading

    /// The frame table of a compressed object from the first `prefixLength` bytes of it, checked
    /// against the header expected for `identity` and `length`.
    public func frameTable(from prefix: ObjectBytes, identity: ObjectIdentity, logicalLength length: Int)
        throws(ObjectFormatError) -> FrameTable
    {
        let expected = header(identity, length: length)
        let count = frameCount(logicalLength: length)
        let dataStart = prefixLength(logicalLength: length)
        guard prefix.count >= dataStart else {
            throw ObjectFormatError(.corrupt, "the object is shorter than its header and frame table")
        }
        return try prefix.withBytes(0..<dataStart) {
            bytes throws(ObjectFormatError) -> FrameTable in
            try check(try ObjectHeader.decode(bytes), expected: expected)
            let tableBytes = UnsafeRawBufferPointer(
                rebasing: bytes[ObjectHeader.size..<(ObjectHeader.size + 4 * count)])
            let trailer = UnsafeRawBufferPointer(
                rebasing: bytes[(ObjectHeader.size + 4 * count)..<dataStart])
            let sealing = Sealing(codec: self, bound: expected.boundBytes, identity: identity)
            try sealing.checkTable(Array(tableBytes), trailer: trailer)
            var entries: [UInt32] = []
            for frame in 0..<count {
                let entry: UInt32 = tableBytes.loadLittleEndian(at: frame * 4)
                let stored = FrameTable.length(entry)
                let possible =
                    switch FrameTable.encoding(entry) {
                    case .raw: stored == frameLength(frame, of: length)
                    case .compressed: stored > 0 && stored < frameLength(frame, of: length)
                    case .zero: stored == 0
                    case nil: false
                    }
                guard possible else {
                    throw ObjectFormatError(.corrupt, "frame \(frame) has an impossible table entry")
                }
                entries.append(entry)
            }
            return FrameTable(
                entries: entries, dataStart: UInt64(dataStart),
                trailerSize: cipher.trailerSize)
        }
    }

    /// The identity an object's header names, or nil when `prefix` does not start with a valid
    /// header of format 1.
    public static func identity(of prefix: ByteBuffer) -> ObjectIdentity? {
        prefix.withUnsafeReadableBytes { try? ObjectHeader.decode($0).identity }
    }

    private func check(_ found: ObjectHeader, expected: ObjectHeader) throws(ObjectFormatError) {
        guard found.keyID == expected.keyID || expected.cipher != found.cipher else {
            throw ObjectFormatError(.wrongKey, "the object was sealed with another key (key id \(found.keyID))")
        }
        guard found == expected else {
            throw ObjectFormatError(.corrupt, "the object's header is not the one expected for \(expected.identity)")
        }
    }

    /// What to fetch and decode for bytes `range` of an object with `length` bytes of data;
    /// `table` is required when the codec compresses (`hasFrameTable`).
    public func plan(_ range: Range<Int>, logicalLength length: Int, table: FrameTable?) -> FramePlan {
        precondition(!range.isEmpty && range.upperBound <= length)
        let frames = (range.lowerBound / frameSize)..<((range.upperBound + frameSize - 1) / frameSize)
        let logical = (frames.lowerBound * frameSize)..<min(length, frames.upperBound * frameSize)
        guard let table else {
            precondition(!hasFrameTable, "a compressed object needs its frame table")
            let stride = frameSize + cipher.trailerSize
            let start = ObjectHeader.size + frames.lowerBound * stride
            var pieces: [FramePlan.Piece] = []
            for frame in frames {
                pieces.append(
                    .init(encoding: .raw, length: frameLength(frame, of: length), offset: pieces.count * stride))
            }
            let end = start + pieces.count * stride - (frameSize - pieces.last!.length)
            return FramePlan(
                frames: frames, objectRange: UInt64(start)..<UInt64(end), logical: logical, pieces: pieces)
        }
        let stored = frames.filter { FrameTable.encoding(table.entries[$0]) != .zero }
        let start = stored.first.map { table.offsets[$0] } ?? 0
        let end =
            stored.last.map { table.offsets[$0] + UInt64(FrameTable.length(table.entries[$0]) + cipher.trailerSize) }
            ?? 0
        let pieces = frames.map { frame in
            FramePlan.Piece(
                encoding: FrameTable.encoding(table.entries[frame])!, length: FrameTable.length(table.entries[frame]),
                offset: Int(table.offsets[frame] - start))
        }
        return FramePlan(frames: frames, objectRange: start..<end, logical: logical, pieces: pieces)
    }

    /// Decodes the frames of `plan` from the bytes fetched for it (`plan.objectRange` of the
    /// object), appending their data (`plan.logical.count` bytes) to `output`.
    public func decode(
        _ fetched: ObjectBytes, plan: FramePlan, identity: ObjectIdentity, logicalLength length: Int,
        into output: inout ByteBuffer
    ) throws(ObjectFormatError) {
        guard fetched.count == plan.objectRange.count else {
            throw ObjectFormatError(
                .corrupt, "the object is shorter than its frames (\(fetched.count) of \(plan.objectRange.count) bytes)")
        }
        let sealing = Sealing(codec: self, bound: header(identity, length: length).boundBytes, identity: identity)
        let context = CompressionContext()
        for (frame, piece) in zip(plan.frames, plan.pieces) {
            let plainLength = frameLength(frame, of: length)
            guard piece.encoding != .zero else {
                output.writeRepeatingByte(0, count: plainLength)
                continue
            }
            let end = piece.offset + piece.length + cipher.trailerSize
            guard end <= fetched.count else {
                throw ObjectFormatError(.corrupt, "frame \(frame) runs past the end of the object")
            }
            try fetched.withBytes(piece.offset..<end) { stored throws(ObjectFormatError) in
                try sealing.open(stored, frame: frame, encoding: piece.encoding) { payload throws(ObjectFormatError) in
                    if piece.encoding == .raw {
                        guard payload.count == plainLength else {
                            throw ObjectFormatError(.corrupt, "frame \(frame) has the wrong length")
                        }
                        output.writeBytes(payload)
                        return
                    }
                    let decoded = output.writeWithUnsafeMutableBytes(minimumWritableBytes: plainLength) { space in
                        compression.decompress(
                            payload, into: UnsafeMutableRawBufferPointer(rebasing: space[0..<plainLength]),
                            with: context)
                            ? plainLength : 0
                    }
                    guard decoded == plainLength else {
                        throw ObjectFormatError(.corrupt, "frame \(frame) does not decompress")
                    }
                }
            }
        }
    }

    /// Decodes a whole object, appending its data to `output`.
    public func decodeWhole(
        _ object: ObjectBytes, identity: ObjectIdentity, logicalLength length: Int, into output: inout ByteBuffer
    ) throws(ObjectFormatError) {
        guard length > 0 else { return }
        let (plan, fetched) = try framesOfWhole(object, identity: identity, logicalLength: length)
        try decode(fetched, plan: plan, identity: identity, logicalLength: length, into: &output)
    }

    /// Decodes a whole object without copying its data: every frame checked as `decodeWhole`
    /// checks it, the data is views of the frames' payloads in `object`'s memory (a frame split
    /// between two of its pieces is two views). Nil, having copied nothing, when a frame is not
    /// stored as it is (compressed, sealed, or all zeros): `decodeWhole` decodes those.
    public func decodeWholeAsViews(_ object: ObjectBytes, identity: ObjectIdentity, logicalLength length: Int)
        throws(ObjectFormatError) -> ObjectBytes?
    {
        guard length > 0 else { return ObjectBytes([]) }
        guard key == nil else { return nil }
        let (plan, fetched) = try framesOfWhole(object, identity: identity, logicalLength: length)
        guard plan.pieces.allSatisfy({ $0.encoding == .raw }) else { return nil }
        let sealing = Sealing(codec: self, bound: header(identity, length: length).boundBytes, identity: identity)
        var views: [ByteBuffer] = []
        for (frame, piece) in zip(plan.frames, plan.pieces) {
            guard piece.length == frameLength(frame, of: length) else {
                throw ObjectFormatError(.corrupt, "frame \(frame) has the wrong length")
            }
            guard piece.offset + piece.length + cipher.trailerSize <= fetched.count else {
                throw ObjectFormatError(.corrupt, "frame \(frame) runs past the end of the object")
            }
            let payload = fetched.slice(piece.offset..<(piece.offset + piece.length))
            let stored = fetched.withBytes((piece.offset + piece.length)..<(piece.offset + piece.length + 4)) {
                $0.loadLittleEndian(at: 0) as UInt32
            }
            guard sealing.checksum(of: payload, frame: frame, encoding: .raw) == stored else {
                throw ObjectFormatError(.corrupt, "frame \(frame) fails its CRC-32C")
            }
            views += payload.buffers
        }
        return ObjectBytes(views)
    }

    /// The frames of a whole object and the bytes that hold them, its header (or frame table)
    /// checked.
    private func framesOfWhole(_ object: ObjectBytes, identity: ObjectIdentity, logicalLength length: Int)
        throws(ObjectFormatError) -> (FramePlan, ObjectBytes)
    {
        var table: FrameTable?
        if hasFrameTable {
            table = try frameTable(from: object, identity: identity, logicalLength: length)
        } else {
            guard object.count >= ObjectHeader.size else {
                throw ObjectFormatError(.corrupt, "the object is shorter than its header")
            }
            try object.withBytes(0..<ObjectHeader.size) { bytes throws(ObjectFormatError) in
                try check(try ObjectHeader.decode(bytes), expected: header(identity, length: length))
            }
        }
        let plan = plan(0..<length, logicalLength: length, table: table)
        let end = Int(plan.objectRange.upperBound)
        guard object.count >= end, plan.objectRange.isEmpty || object.count == end else {
            throw ObjectFormatError(.corrupt, "the object is \(object.count) bytes, its frames end at \(end)")
        }
        return (plan, object.slice(Int(plan.objectRange.lowerBound)..<end))
    }

    /// Decodes a whole record object (a manifest) whose identity and length its header gives:
    /// records are rewritten in place, so each write takes a fresh random identity (and so a
    /// key and nonces of its own), which the reader learns from the header; the frames' tags
    /// authenticate it.
    public func decodeRecord(_ object: ByteBuffer) throws(ObjectFormatError) -> ByteBuffer {
        let header = try object.withUnsafeReadableBytes { bytes throws(ObjectFormatError) in
            try ObjectHeader.decode(bytes)
        }
        guard header.identity.kind == .manifest, header.logicalLength < 1 << 30 else {
            throw ObjectFormatError(.corrupt, "the object is not a record")
        }
        var output = ByteBuffer()
        try decodeWhole(
            ObjectBytes(object), identity: header.identity, logicalLength: Int(header.logicalLength), into: &output)
        return output
    }

    /// A fresh identity for one write of a record.
    public static func recordIdentity() -> ObjectIdentity {
        ObjectIdentity(kind: .manifest, first: .random(in: 0...(.max)), second: .random(in: 0...(.max)))
    }

    /// The per-object half of sealing and checking: the bytes bound into every frame, and the
    /// object's key when frames are encrypted.
    private struct Sealing {
        let cipher: Cipher
        let bound: [UInt8]
        let boundCRC: UInt32
        let key: SymmetricKey?

        init(codec: ObjectCodec, bound: [UInt8], identity: ObjectIdentity) {
            self.cipher = codec.cipher
            self.bound = bound
            self.boundCRC = bound.withUnsafeBytes { CRC32C.checksum($0) }
            self.key = codec.key?.objectKey(scope: codec.scope, identity: identity)
        }

        /// A frame's number and encoding as bound into its checksum or tag.
        private func frameTag(_ frame: Int, _ encoding: UInt8) -> [UInt8] {
            var tag: [UInt8] = []
            tag.appendLittleEndian(UInt32(truncatingIfNeeded: frame))
            tag.append(encoding)
            return tag
        }

        /// The nonce of frame `frame` (0xFFFFFFFF: the frame table).
        private func nonce(_ frame: UInt32) -> [UInt8] {
            var nonce: [UInt8] = []
            nonce.appendLittleEndian(frame)
            nonce += [UInt8](repeating: 0, count: 8)
            return nonce
        }

        /// The CRC that follows a frame stored without a cipher.
        func checksum(_ payload: UnsafeRawBufferPointer, frame: Int, encoding: FrameTable.Encoding) -> UInt32 {
            CRC32C.checksum(payload, continuing: prefixCRC(frame, encoding))
        }

        /// The CRC that follows a frame stored without a cipher, of a payload in pieces.
        func checksum(of payload: ObjectBytes, frame: Int, encoding: FrameTable.Encoding) -> UInt32 {
            payload.buffers.reduce(prefixCRC(frame, encoding)) { crc, piece in
                piece.withUnsafeReadableBytes { CRC32C.checksum($0, continuing: crc) }
            }
        }

        func append(
            _ payload: UnsafeRawBufferPointer, frame: Int, encoding: FrameTable.Encoding, to output: inout ByteBuffer
        ) throws {
            guard let key else {
                output.writeBytes(payload)
                output.writeInteger(checksum(payload, frame: frame, encoding: encoding), endianness: .little)
                return
            }
            let tag = frameTag(frame, encoding.rawValue)
            output.writeBytes(
                try cipher.seal(payload, key: key, nonce: nonce(UInt32(frame)), authenticating: bound + tag))
        }

        func open(
            _ stored: UnsafeRawBufferPointer, frame: Int, encoding: FrameTable.Encoding,
            _ body: (UnsafeRawBufferPointer) throws(ObjectFormatError) -> Void
        ) throws(ObjectFormatError) {
            guard let key else {
                let payload = UnsafeRawBufferPointer(rebasing: stored[..<(stored.count - 4)])
                guard
                    checksum(payload, frame: frame, encoding: encoding) == stored.loadLittleEndian(at: stored.count - 4)
                else {
                    throw ObjectFormatError(.corrupt, "frame \(frame) fails its CRC-32C")
                }
                try body(payload)
                return
            }
            let tag = frameTag(frame, encoding.rawValue)
            let plain: Data
            do {
                plain = try cipher.open(stored, key: key, nonce: nonce(UInt32(frame)), authenticating: bound + tag)
            } catch {
                throw ObjectFormatError(.corrupt, "frame \(frame) fails authentication")
            }
            var failure: ObjectFormatError?
            plain.withUnsafeBytes { payload in
                do throws(ObjectFormatError) { try body(payload) } catch { failure = error }
            }
            if let failure { throw failure }
        }

        /// The CRC that follows a frame stored without a cipher, from the CRC of its payload alone.
        func checksum(payloadCRC: UInt32, length: Int, frame: Int, encoding: FrameTable.Encoding) -> UInt32 {
            CRC32C.combine(prefixCRC(frame, encoding), payloadCRC, secondLength: length)
        }

        /// A frame's CRC (no cipher) covers the bound bytes, its tag, then its payload: the CRC of
        /// what comes before the payload.
        private func prefixCRC(_ frame: Int, _ encoding: FrameTable.Encoding) -> UInt32 {
            frameTag(frame, encoding.rawValue).withUnsafeBytes { CRC32C.checksum($0, continuing: boundCRC) }
        }

        /// The CRC of the frame table (no cipher).
        private func tableCRC(_ table: [UInt8]) -> UInt32 {
            (frameTag(0xFFFF_FFFF, 0xFF) + table).withUnsafeBytes { CRC32C.checksum($0, continuing: boundCRC) }
        }

        /// What the table's tag covers besides the header (a cipher).
        private func tableAssociatedData(_ table: [UInt8]) -> [UInt8] { bound + frameTag(0xFFFF_FFFF, 0xFF) + table }

        func tableTrailer(_ table: [UInt8]) throws -> [UInt8] {
            guard let key else {
                var trailer: [UInt8] = []
                trailer.appendLittleEndian(tableCRC(table))
                return trailer
            }
            return Array(
                try [UInt8]().withUnsafeBytes {
                    try cipher.seal(
                        $0, key: key, nonce: nonce(0xFFFF_FFFF), authenticating: tableAssociatedData(table))
                })
        }

        func checkTable(_ table: [UInt8], trailer: UnsafeRawBufferPointer) throws(ObjectFormatError) {
            guard let key else {
                guard tableCRC(table) == trailer.loadLittleEndian(at: 0) else {
                    throw ObjectFormatError(.corrupt, "the frame table fails its CRC-32C")
                }
                return
            }
            do {
                _ = try cipher.open(
                    trailer, key: key, nonce: nonce(0xFFFF_FFFF), authenticating: tableAssociatedData(table))
            } catch {
                throw ObjectFormatError(.corrupt, "the frame table fails authentication")
            }
        }
    }
}
