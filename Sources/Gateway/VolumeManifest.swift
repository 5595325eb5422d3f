import ChunkEngine
import Foundation
import NIOCore
import ObjectStore

/// What the object store keeps about a cached volume besides its chunks, so that the volume can
/// be rebuilt from the store alone: `manifests/<uuid>.json`.
struct VolumeManifest: Codable, Equatable {
    var name: String
    var kind: Volume.Kind
    var size: UInt64
    var chunkSize: UInt64
    var createdAt: Int64
    var uuid: String

    enum CodingKeys: String, CodingKey {
        case name, kind, size, uuid
        case chunkSize = "chunk_size"
        case createdAt = "created_at"
    }

    static func key(uuid: String) throws -> ObjectKey { try ObjectKey("manifests/\(uuid).json") }

    /// Writes the manifest.
    func store(in objects: any ObjectStore) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = ByteBuffer()
        data.writeBytes(try encoder.encode(self))
        try await objects.put(try Self.key(uuid: uuid), data: data)
    }

    /// The newest manifest of a volume named `name`, if any.
    static func find(name: String, in objects: any ObjectStore) async throws -> VolumeManifest? {
        var found: VolumeManifest?
        for object in try await objects.list(prefix: "manifests/") {
            let data = try await objects.get(try ObjectKey(object.key), range: nil)
            guard let manifest = try? JSONDecoder().decode(VolumeManifest.self, from: Data(data.readableBytesView)),
                manifest.name == name
            else { continue }
            if found == nil || manifest.createdAt > found!.createdAt { found = manifest }
        }
        return found
    }
}
