import Foundation
import Metadata
import NIOCore
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
    /// converges to a store that reads the same and holds just the objects the records name, with
    /// the PUTs the crash left in flight landing late (see `LatePutStore`). Returns the violations.
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
        let late = kind == .cached ? try await lateObjects(directory: directory) : [:]
        // Late PUTs may land for a second; without them, waiting for uploads to settle proves nothing.
        var settings = settings
        settings.uploadSettleTime = late.isEmpty ? .zero : .seconds(1)
        return try await VolumeFixture.opening(
            existing: directory, settings: settings,
            wrapStore: { [settings] in LatePutStore(wrapping: $0, late: late, window: settings.uploadSettleTime) }
        ) { fixture in
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
        let before = try records(fixture)
        fixture.volume.startUploader()
        try await fixture.waitUntilUploaded(within: 60, settled: true)
        try await fixture.volume.dropCache()
        let fromStore = try await fixture.read(0, size)
        if fromStore != read {
            let after = try records(fixture)
            let chunkSize = Int(fixture.record.chunkSize)
            let differing = stride(from: 0, to: size, by: chunkSize).filter {
                fromStore[$0..<($0 + chunkSize)] != read[$0..<($0 + chunkSize)]
            }.map { start in
                let index = start / chunkSize
                let at = (start..<(start + chunkSize)).first { fromStore[$0] != read[$0] }!
                return "chunk \(index) at byte \(at - start) (cache \(read[at]), store \(fromStore[at]); "
                    + "record before \(describe(before[index])), after \(describe(after[index])))"
            }
            problems.append(
                "the store the uploader converged to reads differently from the cache: "
                    + differing.joined(separator: "; "))
        }
        return problems + (try await unnamedObjects(fixture))
    }

    /// The volume's chunk records by index.
    private static func records(_ fixture: VolumeFixture) throws -> [Int: ChunkRecord] {
        Dictionary(
            uniqueKeysWithValues: try fixture.store.chunks(volumeID: fixture.record.id).map { (Int($0.index), $0) })
    }

    /// A chunk record in a few words, for a report.
    private static func describe(_ record: ChunkRecord?) -> String {
        guard let record else { return "none" }
        let count = { (bytes: [UInt8]) in bytes.reduce(0) { $0 + $1.nonzeroBitCount } }
        return "\(count(record.valid)) valid, \(count(record.present)) present, generation "
            + "\(record.remoteGeneration)\(record.dirty ? ", dirty" : "")\(record.unsynced ? ", unsynced" : "")"
    }

    /// The PUTs a state's crash left in flight and not done, which may yet land.
    private static func lateObjects(directory: String) async throws -> [ObjectKey: ByteBuffer] {
        let late = FileObjectStore(root: "\(directory)/late", pool: NIOThreadPool.singleton)
        var objects: [ObjectKey: ByteBuffer] = [:]
        for object in try await late.list(prefix: "") {
            let key = try ObjectKey(object.key)
            objects[key] = try await late.get(key, range: nil)
        }
        return objects
    }

    /// Objects of the volume in the store that no record names (leaked), once every delete ran.
    private static func unnamedObjects(_ fixture: VolumeFixture) async throws -> [String] {
        let named = Set(
            try fixture.store.chunks(volumeID: fixture.record.id).filter { $0.remoteGeneration > 0 }.map {
                "\($0.index)-\($0.remoteGeneration)"
            })
        return try await storedObjects(fixture).subtracting(named).sorted().map {
            "object \($0) is left in the store though no record names it"
        }
    }

    /// The volume's chunk objects in the store, as `index-generation`.
    private static func storedObjects(_ fixture: VolumeFixture) async throws -> Set<String> {
        let uuid = fixture.record.uuid
        return Set(
            try await fixture.objects!.list(prefix: RemoteBacking.chunkPrefix(uuid: uuid)).compactMap {
                RemoteBacking.parseChunkKey($0.key, uuid: uuid).map { "\($0.index)-\($0.generation)" }
            })
    }

    private static func storeOnlyRecoverProblems(directory: String, record: VolumeRecord, model: SectorModel)
        async throws -> [String]
    {
        let read = try await readAfterStoreOnlyRecover(directory: directory, record: record)
        return model.violations(read, fromStore: true).map { "store-only recover: \($0)" }
    }

    /// The whole volume as a store-only recover of the objects under `directory` reads it.
    static func readAfterStoreOnlyRecover(directory: String, record: VolumeRecord) async throws -> [UInt8] {
        let objects = FileObjectStore(root: "\(directory)/objects", pool: NIOThreadPool.singleton)
        let geometry = ChunkGeometry(volumeSize: record.size, chunkSize: Int(record.chunkSize))
        let (chunks, next, _) = try await Volume.chunksInStore(uuid: record.uuid, geometry: geometry, store: objects)
        _ = try MetadataStore(path: "\(directory)/recovered.db").createVolume(
            name: record.name, kind: record.kind, size: record.size, chunkSize: record.chunkSize, createdAt: 0,
            uuid: record.uuid, chunks: chunks, nextGeneration: next)
        return try await VolumeFixture.opening(
            existing: directory, database: "recovered.db", file: "recovered.img"
        ) { try await $0.read(0, Int(record.size)) }
    }

    private static func missingObjects(_ fixture: VolumeFixture) async throws -> [String] {
        let stored = try await storedObjects(fixture)
        return try fixture.store.chunks(volumeID: fixture.record.id).filter {
            $0.remoteGeneration > 0 && !stored.contains("\($0.index)-\($0.remoteGeneration)")
        }.map { "chunk \($0.index) names generation \($0.remoteGeneration), which the store does not hold" }
    }
}
