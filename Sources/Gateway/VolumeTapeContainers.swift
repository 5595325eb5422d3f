import BlockDevice
import TapeLibrary

/// Keeps each tape in a cached volume of the volume manager (named `tape:<barcode>`), so that
/// tapes live in the object store with a local cache, like cached volumes.
struct VolumeTapeContainers: TapeContainers {
    let manager: VolumeManager
    /// What each pool asks of the shelf at export.
    let policies: [String: ShelfPolicy]

    func create(barcode: String, size: UInt64, pool: String) async throws -> any BlockDevice {
        try await manager.createContainer(barcode: barcode, size: size, pool: pool)
    }

    func open(barcode: String) throws -> any BlockDevice {
        try manager.container(barcode: barcode)
    }

    func archive(barcode: String, pool: String, retainUntil: Int64?) async throws -> String {
        try await manager.archiveContainer(
            barcode: barcode, policy: policies[pool] ?? ShelfPolicy(), retainUntil: retainUntil)
    }

    func restore(barcode: String, pool: String, storageClass: String) async throws -> String? {
        try await manager.restoreContainer(
            barcode: barcode, policy: policies[pool] ?? ShelfPolicy(), storageClass: storageClass)
    }

    func delete(barcode: String) async throws {
        try await manager.deleteContainer(barcode: barcode)
    }

    func pendingUploadBytes(barcode: String) -> UInt64 {
        guard let volume = try? manager.container(barcode: barcode) else { return 0 }
        return UInt64(volume.cacheUsage.dirtyChunks) * UInt64(volume.geometry.chunkSize)
    }
}
