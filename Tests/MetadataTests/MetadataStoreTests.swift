import CSQLite
import Foundation
import Testing

@testable import Metadata

@Suite struct MetadataStoreTests {
    private func withDatabase(_ body: (String) throws -> Void) throws {
        let path = NSTemporaryDirectory() + "blockgate-meta-\(UUID().uuidString).db"
        defer {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
        try body(path)
    }

    @Test func volumesAreCreatedListedAndDeleted() throws {
        try withDatabase { path in
            let store = try MetadataStore(path: path)
            let first = try store.createVolume(name: "b", kind: "thin", size: 1 << 20, chunkSize: 65536, createdAt: 7)
            _ = try store.createVolume(
                name: "a", kind: "cached", size: 2 << 20, chunkSize: 65536, createdAt: 8, uuid: "u-1")
            #expect(throws: MetadataError.self) {
                try store.createVolume(name: "a", kind: "thin", size: 1, chunkSize: 65536, createdAt: 9)
            }
            #expect(try store.volumes().map(\.name) == ["a", "b"])
            #expect(try store.volumes().first?.uuid == "u-1")
            try store.deleteVolume(id: first.id)
            #expect(try store.volumes().map(\.name) == ["a"])
        }
    }

    @Test func tapesMoveAndTheirBarcodesAreNeverReused() throws {
        try withDatabase { path in
            let store = try MetadataStore(path: path)
            let tape = TapeRecord(
                barcode: "TAPE0001", capacity: 1 << 30, pool: "default", worm: true, location: "slot 0", createdAt: 5)
            try store.createTape(tape)
            #expect(throws: MetadataError.self) { try store.createTape(tape) }
            try store.moveTape(barcode: "TAPE0001", to: "slot 4", retrieved: true)
            let reopened = try MetadataStore(path: path)
            var moved = tape
            moved.location = "slot 4"
            moved.retrieved = true
            #expect(try reopened.tapes() == [moved])
            try reopened.deleteTape(barcode: "TAPE0001")
            #expect(try reopened.tapes().isEmpty)
            #expect(try reopened.barcodeUsed("TAPE0001"))
            #expect(try !reopened.barcodeUsed("TAPE0002"))
            #expect(throws: MetadataError.self) { try reopened.createTape(tape) }
        }
    }

    @Test func chunkChangesApplyInOrderAndSurviveReopening() throws {
        try withDatabase { path in
            let volume: Int64
            do {
                let store = try MetadataStore(path: path)
                volume = try store.createVolume(
                    name: "v", kind: "cached", size: 1 << 20, chunkSize: 65536, createdAt: 0
                ).id
                try store.apply([
                    .markDirty(volumeID: volume, index: 3),
                    .markDirty(volumeID: volume, index: 1),
                    .store(
                        volumeID: volume,
                        ChunkRecord(index: 1, valid: [0xff], dirty: false, present: [0x0f], remoteGeneration: 4)),
                    .markDirty(volumeID: volume, index: 1),
                    .delete(volumeID: volume, index: 3),
                ])
            }
            let reopened = try MetadataStore(path: path)
            #expect(
                try reopened.chunks(volumeID: volume)
                    == [ChunkRecord(index: 1, valid: [0xff], dirty: true, present: [0x0f], remoteGeneration: 4)])
        }
    }

    /// A database of the schema before object formats: its cached volumes wrote raw objects
    /// below their next generation, so they read those as format 0 and write format 1 from there.
    @Test func cachedVolumesOfAnOlderSchemaStartFormatOneAtTheirNextGeneration() throws {
        try withDatabase { path in
            var handle: OpaquePointer?
            sqlite3_open(path, &handle)
            let older = Schema.migrations[0..<4].joined(separator: "\n")
            #expect(sqlite3_exec(handle, older + "PRAGMA user_version = 4;", nil, nil, nil) == SQLITE_OK)
            let volumes = """
                INSERT INTO volumes (name, kind, size, chunk_size, created_at, uuid, next_generation)
                VALUES ('old', 'cached', 1048576, 65536, 0, 'u1', 7), ('thin', 'thin', 1048576, 65536, 0, '', 1);
                """
            #expect(sqlite3_exec(handle, volumes, nil, nil, nil) == SQLITE_OK)
            sqlite3_close(handle)
            let records = try MetadataStore(path: path).volumes()
            #expect(records.map(\.objectFormat.formatSince) == [7, 1])
            #expect(records.allSatisfy { $0.objectFormat.compression == "off" && $0.objectFormat.wrappedKey.isEmpty })
            let fresh = try MetadataStore(path: path).createVolume(
                name: "new", kind: "cached", size: 1 << 20, chunkSize: 65536, createdAt: 0, uuid: "u2",
                objectFormat: ObjectFormatRecord(compression: "zstd", cipher: "aes-256-gcm", wrappedKey: [1, 2, 3]))
            #expect(try MetadataStore(path: path).volumes().first { $0.name == "new" } == fresh)
            #expect(fresh.objectFormat.formatSince == 1)
        }
    }

    @Test func aNewerSchemaIsRefusedWithAMessage() throws {
        try withDatabase { path in
            var handle: OpaquePointer?
            sqlite3_open(path, &handle)
            sqlite3_exec(handle, "PRAGMA user_version = 99", nil, nil, nil)
            sqlite3_close(handle)
            #expect {
                try MetadataStore(path: path)
            } throws: { error in
                "\(error)".contains("newer than this blockgate knows")
            }
        }
    }
}
