import Foundation
import Metadata
import NIOPosix
import ObjectStore

/// What a power loss at one instant of a recorded volume fixture leaves, captured at any
/// `CrashRecorder` event and written out later: the volume file (its durable image and the
/// operations since, through `PowerLossFileIO`), the database as of its last committed
/// transaction (a `VACUUM INTO` copy), and for a cached volume the object store (through
/// `RecordingObjectStore`). A state is written out as a directory that
/// `VolumeFixture(existing:)` opens.
public final class CrashWorld: Sendable {
    public let recorder: CrashRecorder
    public let powerLoss: PowerLossFileIO
    public let objects: RecordingObjectStore?
    private let volumePath: String
    private let databasePath: String

    init(fixture: VolumeFixture, recorder: CrashRecorder, powerLoss: PowerLossFileIO, objects: RecordingObjectStore?) {
        self.recorder = recorder
        self.powerLoss = powerLoss
        self.objects = objects
        volumePath = fixture.path
        databasePath = "\(fixture.directory)/meta.db"
    }

    /// One captured instant, kept in its directory until it is written out there.
    public struct State: Sendable {
        public let directory: String
        let file: PowerLossFileIO.Capture
        let store: RecordingObjectStore.Capture?
        /// File operations completed since the last sync.
        public var unsyncedOperations: Int { file.unsyncedOperations }
        /// Object-store requests in flight.
        public var requestsInFlight: Int { store?.requestsInFlight ?? 0 }
    }

    /// Captures the present instant into `directory` (call it from the recorder's observer).
    public func capture(into directory: String) throws -> State {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = try powerLoss.capture(path: volumePath, into: "\(directory)/durable.img")
        try Self.copyDatabase(databasePath, to: "\(directory)/meta.db")
        return State(directory: directory, file: file, store: objects?.capture())
    }

    /// What writing out a state chose.
    public struct Written: Sendable {
        public let file: PowerLossFileIO.Outcome
        /// Requests in flight taken as done.
        public let requestsDone: Int
    }

    /// Writes out `state` in its directory (`vol.img`; for a cached volume `objects/`, and `late/`
    /// with the PUTs in flight not taken as done, which may yet land), each unsynced page and
    /// each request in flight as `random` chooses.
    public static func writeOut(_ state: State, using random: inout some RandomNumberGenerator) async throws -> Written
    {
        let file = try PowerLossFileIO.materialize(state.file, at: "\(state.directory)/vol.img", using: &random)
        try FileManager.default.removeItem(atPath: "\(state.directory)/durable.img")
        var done = 0
        if let store = state.store {
            let objects = FileObjectStore(root: "\(state.directory)/objects", pool: NIOThreadPool.singleton)
            let late = FileObjectStore(root: "\(state.directory)/late", pool: NIOThreadPool.singleton)
            try await objects.prepare()
            try await late.prepare()
            done = try await RecordingObjectStore.materialize(store, into: objects, late: late, using: &random)
        }
        return Written(file: file, requestsDone: done)
    }

    /// Copies the database as of its last committed transaction, through a connection of its own.
    private static func copyDatabase(_ source: String, to target: String) throws {
        let escaped = target.replacingOccurrences(of: "'", with: "''")
        try executeOnSideConnection("VACUUM INTO '\(escaped)'", database: source)
    }
}
