import Foundation
import Metadata
import NIOPosix
import ObjectStore
import VolumeTestSupport

@testable import ChunkEngine

/// The invariants a volume's captured crash states are checked against.
extension CrashStates where Model == SectorModel {
    /// Writes out and checks the states captured since the last call: for a cached volume, a
    /// store-only recover first (from the store as the crash left it: no older than the last
    /// flush --wait-upload); then the volume opened from the state reads every sector as of its
    /// last flush or later, every record names an object that exists, and the uploader
    /// converges to a store that reads the same. Returns the violations.
    func checkCaptured(kind: Volume.Kind, record: VolumeRecord, settings: RemoteSettings, tally: inout Tally)
        async -> [String]
    {
        await checkCaptured(tally: &tally) { captured in
            try await Self.violations(of: captured, kind: kind, record: record, settings: settings)
        }
    }

    private static func violations(
        of captured: Captured, kind: Volume.Kind, record: VolumeRecord, settings: RemoteSettings
    )
        async throws -> [String]
    {
        let directory = captured.state.directory
        var problems: [String] = []
        if kind == .cached {
            problems += try await storeOnlyRecoverProblems(directory: directory, record: record, model: captured.model)
        }
        let checkingUploads = problems.isEmpty
        return try await VolumeFixture.opening(existing: directory, settings: settings) { fixture in
            try await problems
                + volumeProblems(
                    fixture, kind: kind, model: captured.model, checkingUploads: checkingUploads)
        }
    }

    private static func volumeProblems(
        _ fixture: VolumeFixture, kind: Volume.Kind, model: SectorModel, checkingUploads: Bool
    )
        async throws -> [String]
    {
        let size = Int(fixture.record.size)
        let read = try await fixture.read(0, size)
        var problems = model.violations(read)
        guard kind == .cached else { return problems }
        problems += try await missingObjects(fixture)
        guard problems.isEmpty, checkingUploads else { return problems }
        fixture.volume.startUploader()
        try await fixture.waitUntilUploaded(within: 60)
        try await fixture.volume.dropCache()
        if try await fixture.read(0, size) != read {
            problems.append("the store the uploader converged to reads differently from the cache")
        }
        return problems
    }

    private static func storeOnlyRecoverProblems(directory: String, record: VolumeRecord, model: SectorModel)
        async throws -> [String]
    {
        let objects = FileObjectStore(root: "\(directory)/objects", pool: NIOThreadPool.singleton)
        let geometry = ChunkGeometry(volumeSize: record.size, chunkSize: Int(record.chunkSize))
        let (chunks, next) = try await Volume.chunksInStore(uuid: record.uuid, geometry: geometry, store: objects)
        _ = try MetadataStore(path: "\(directory)/recovered.db").createVolume(
            name: record.name, kind: record.kind, size: record.size, chunkSize: record.chunkSize, createdAt: 0,
            uuid: record.uuid, chunks: chunks, nextGeneration: next)
        let read = try await VolumeFixture.opening(
            existing: directory, database: "recovered.db", file: "recovered.img"
        ) { try await $0.read(0, Int(record.size)) }
        return model.violations(read, fromStore: true).map { "store-only recover: \($0)" }
    }

    private static func missingObjects(_ fixture: VolumeFixture) async throws -> [String] {
        let uuid = fixture.record.uuid
        let stored = Set(
            try await fixture.objects!.list(prefix: RemoteBacking.chunkPrefix(uuid: uuid)).compactMap {
                RemoteBacking.parseChunkKey($0.key, uuid: uuid).map { "\($0.index)-\($0.generation)" }
            })
        return try fixture.store.chunks(volumeID: fixture.record.id).filter {
            $0.remoteGeneration > 0 && !stored.contains("\($0.index)-\($0.remoteGeneration)")
        }.map { "chunk \($0.index) names generation \($0.remoteGeneration), which the store does not hold" }
    }
}
