/// Which object this is, bound into every frame's checksum or tag so that a frame is valid only
/// in the object and at the place it was written for.
public struct ObjectIdentity: Sendable, Hashable {
    /// What the object holds.
    public enum Kind: UInt8, Sendable {
        /// A chunk of a volume: `first` is the chunk index, `second` the upload generation.
        case chunk = 1
        /// A volume's manifest: both numbers 0.
        case manifest = 2
    }

    public let kind: Kind
    public let first: UInt64
    public let second: UInt64

    public init(kind: Kind, first: UInt64, second: UInt64) {
        self.kind = kind
        self.first = first
        self.second = second
    }

    /// Chunk `index` as uploaded in `generation`.
    public static func chunk(index: Int, generation: UInt64) -> ObjectIdentity {
        ObjectIdentity(kind: .chunk, first: UInt64(index), second: generation)
    }
}

/// The fixed 64 bytes at the start of every object of format version 1 (docs/object-format.md):
/// how its frames are encoded and which object it is. Its last four bytes are the CRC-32C of
/// the 60 before them; those 60 are also bound into every frame's checksum or tag.
struct ObjectHeader: Equatable, Sendable {
    static let size = 64
    static let magic: [UInt8] = Array("BGOF".utf8)
    static let version: UInt8 = 1

    var compression: UInt8
    var cipher: UInt8
    var frameShift: UInt8
    var keyID: UInt32
    var frameCount: UInt32
    var logicalLength: UInt64
    var identity: ObjectIdentity

    /// The first 60 bytes: what every frame's checksum or tag covers.
    var boundBytes: [UInt8] {
        var bytes = Self.magic
        bytes += [Self.version, compression, cipher, frameShift]
        bytes.appendLittleEndian(keyID)
        bytes.appendLittleEndian(frameCount)
        bytes.appendLittleEndian(logicalLength)
        bytes.append(identity.kind.rawValue)
        bytes += [UInt8](repeating: 0, count: 7)
        bytes.appendLittleEndian(identity.first)
        bytes.appendLittleEndian(identity.second)
        bytes += [UInt8](repeating: 0, count: 12)
        return bytes
    }

    /// All 64 bytes.
    var encoded: [UInt8] {
        var bytes = boundBytes
        bytes.appendLittleEndian(CRC32C.checksum(bytes))
        return bytes
    }

    /// Reads a header; throws when the bytes are not one (wrong magic or version, bad CRC).
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(ObjectFormatError) -> ObjectHeader {
        guard bytes.count >= size, Array(bytes[0..<4]) == magic else {
            throw ObjectFormatError(.corrupt, "the object does not start with a blockgate object header")
        }
        guard bytes[4] == version else {
            throw ObjectFormatError(.unsupported, "the object has format version \(bytes[4]); this blockgate reads 1")
        }
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<60])) == bytes.loadLittleEndian(at: 60) else {
            throw ObjectFormatError(.corrupt, "the object header's checksum does not match")
        }
        guard let kind = ObjectIdentity.Kind(rawValue: bytes[24]) else {
            throw ObjectFormatError(.unsupported, "the object is of unknown kind \(bytes[24])")
        }
        return ObjectHeader(
            compression: bytes[5], cipher: bytes[6], frameShift: bytes[7], keyID: bytes.loadLittleEndian(at: 8),
            frameCount: bytes.loadLittleEndian(at: 12), logicalLength: bytes.loadLittleEndian(at: 16),
            identity: ObjectIdentity(
                kind: kind, first: bytes.loadLittleEndian(at: 32), second: bytes.loadLittleEndian(at: 40)))
    }
}

/// A failed decode: the object is damaged (or was altered), sealed with another key, or of a
/// format this version cannot read. Never answered with data.
public struct ObjectFormatError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// A checksum or tag does not match, or the object's structure is broken.
        case corrupt
        /// The object was sealed with a different key.
        case wrongKey
        /// The object is of a version or algorithm this blockgate does not know.
        case unsupported
        /// The codec was set up wrongly (a cipher without a key, a bad frame size).
        case invalidSettings
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

extension [UInt8] {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    func loadLittleEndian<T: FixedWidthInteger>(at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
