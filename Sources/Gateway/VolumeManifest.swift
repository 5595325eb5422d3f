import ChunkEngine
import Codecs
import Foundation
import Logging
import Metadata
import NIOCore
import ObjectStore

/// What the object store keeps about a cached volume besides its chunks, so that the volume can
/// be rebuilt from the store alone: `manifests/<uuid>.json`. JSON in a record of object format 1
/// (docs/object-format.md, "Records"): sealed when there is a master key, so that the store shows
/// no volume name, checksummed otherwise. Manifests written before blockgate had an object format lack
/// `object_format`: their chunk objects are raw up to a generation found in the store.
struct VolumeManifest: Codable, Equatable {
    var name: String
    var kind: Volume.Kind
    var size: UInt64
    var chunkSize: UInt64
    var createdAt: Int64
    var uuid: String
    var objectFormat: Format?

    /// How the volume's chunk objects are written (`ObjectFormatRecord` as stored).
    struct Format: Codable, Equatable {
        var formatSince: UInt64
        var compression: String
        var cipher: String
        /// The data key wrapped by the master key, base64 (absent when not encrypted).
        var wrappedKey: String?

        enum CodingKeys: String, CodingKey {
            case compression, cipher
            case formatSince = "format_since"
            case wrappedKey = "wrapped_key"
        }

        init(_ record: ObjectFormatRecord) {
            formatSince = record.formatSince
            compression = record.compression
            cipher = record.cipher
            wrappedKey = record.wrappedKey.isEmpty ? nil : Data(record.wrappedKey).base64EncodedString()
        }

        var record: ObjectFormatRecord {
            ObjectFormatRecord(
                formatSince: formatSince, compression: compression, cipher: cipher,
                wrappedKey: wrappedKey.flatMap { Data(base64Encoded: $0) }.map { Array($0) } ?? [])
        }
    }

    enum CodingKeys: String, CodingKey {
        case name, kind, size, uuid
        case chunkSize = "chunk_size"
        case createdAt = "created_at"
        case objectFormat = "object_format"
    }

    static func key(uuid: String) throws -> ObjectKey { try ObjectKey("manifests/\(uuid).json") }

    /// The codec of manifests: sealed with a key derived from the master key, or checksummed
    /// only when there is none.
    private static func codec(_ masterKey: MasterKey?) throws -> ObjectCodec {
        guard let masterKey else { return try ObjectCodec(scope: "manifests") }
        return try ObjectCodec(cipher: .aes256GCM, key: masterKey.recordKey, scope: "manifests")
    }

    /// Writes the manifest: a record in object format 1, sealed when there is a master key.
    func store(in objects: any ObjectStore, sealedWith masterKey: MasterKey?) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = ByteBuffer()
        data.writeBytes(try encoder.encode(self))
        data = try Self.codec(masterKey).encode(data, as: ObjectCodec.recordIdentity())
        try await objects.put(try Self.key(uuid: uuid), data: data)
    }

    /// The newest manifest of a volume named `name`, if any; and how many sealed manifests the
    /// master key did not open (some may be of that volume: the key may be the wrong one).
    /// Manifests written before the object format (plain JSON) are read as they are; one that
    /// fails its check is passed over with a warning.
    static func find(name: String, in objects: any ObjectStore, masterKey: MasterKey?, logger: Logger) async throws
        -> (manifest: VolumeManifest?, unopened: Int)
    {
        var found: VolumeManifest?
        var unopened = 0
        let codecs = [try codec(nil)] + (masterKey == nil ? [] : [try codec(masterKey)])
        for object in try await objects.list(prefix: "manifests/") {
            var data = try await objects.get(try ObjectKey(object.key), range: nil)
            if data.readableBytesView.first != UInt8(ascii: "{") {
                guard let opened = codecs.lazy.compactMap({ try? $0.decodeRecord(data) }).first else {
                    if ObjectCodec.identity(of: data) == nil {
                        logger.warning("manifest \(object.key) is damaged; passed over")
                    } else {
                        unopened += 1
                    }
                    continue
                }
                data = opened
            }
            guard let manifest = try? JSONDecoder().decode(VolumeManifest.self, from: Data(data.readableBytesView)),
                manifest.name == name
            else { continue }
            if found == nil || manifest.createdAt > found!.createdAt { found = manifest }
        }
        return (found, unopened)
    }
}
