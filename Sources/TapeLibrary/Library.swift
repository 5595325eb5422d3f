import BlockDevice
import Foundation
import Logging
import Metadata
import NIOCore
import Synchronization

/// Where tape containers come from; the gateway keeps each tape in a cached volume.
public protocol TapeContainers: Sendable {
    /// Creates the container of a new tape of `pool`: `size` bytes that read as zeros.
    func create(barcode: String, size: UInt64, pool: String) async throws -> any BlockDevice
    /// The container of an existing tape.
    func open(barcode: String) throws -> any BlockDevice
    /// Makes everything in the container durable in the object store and drops its local cache;
    /// the store keeps the objects until `retainUntil` (unix seconds; `Int64.max` for ever) where
    /// the pool asks it to and it can, and moves them to the pool's storage class. Returns that
    /// class ("" for the store's default).
    func archive(barcode: String, pool: String, retainUntil: Int64?) async throws -> String
    /// Makes the objects of a tape that comes back from the shelf readable again; returns what to
    /// tell the user when that takes time (a retrieval from a cold storage class), else nil.
    func restore(barcode: String, pool: String, storageClass: String) async throws -> String?
    /// Deletes the container and its objects.
    func delete(barcode: String) async throws
    /// Bytes of the container not yet in the object store.
    func pendingUploadBytes(barcode: String) -> UInt64
}

/// The virtual tape library: owns which tapes exist, where each one is (slots, drives, the
/// import/export station, the shelf), the mounted tapes, and which drives have a client.
/// Tape bytes are the `Tape`'s business; containers come from `TapeContainers`.
public final class Library: Sendable {
    /// The library's shape.
    public struct Configuration: Sendable, Equatable {
        public var slots: Int
        public var drives: Int
        /// The pool new tapes go to when none is named.
        public var defaultPool: String
        /// What each pool named here asks of its tapes (others: nothing).
        public var pools: [String: PoolPolicy]

        public init(
            slots: Int = 20, drives: Int = 2, defaultPool: String = "default", pools: [String: PoolPolicy] = [:]
        ) {
            self.slots = slots
            self.drives = drives
            self.defaultPool = defaultPool
            self.pools = pools
        }

        /// Drive names: "0", "1", …
        public var driveNames: [String] { (0..<drives).map(String.init) }
    }

    private struct Entry {
        var record: TapeRecord
        var location: TapeLocation
        var tape: Tape?
    }

    private struct State {
        var tapes: [String: Entry] = [:]
        /// Drives with a client attached, or held by an admin verb.
        var attached: Set<String> = []
        /// Tapes being archived, retrieved or deleted.
        var busy: Set<String> = []
        /// Drives whose last client's file is being sealed: the task (true when sealed) and
        /// where the head will be.
        var sealing: [String: (task: Task<Bool, Never>, position: Tape.Position)] = [:]
        /// Where each drive's last tape-device program left the head inside a file; forgotten
        /// when anything else uses the drive.
        var deviceHeads: [String: (barcode: String, head: TapeDevice.Head)] = [:]
    }

    public let configuration: Configuration
    private let store: MetadataStore
    private let containers: any TapeContainers
    private let eventLoop: any EventLoop
    let logger: Logger
    private let state = Mutex(State())

    public init(
        configuration: Configuration, store: MetadataStore, containers: any TapeContainers,
        eventLoop: any EventLoop, logger: Logger
    ) {
        self.configuration = configuration
        self.store = store
        self.containers = containers
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// Loads the tapes the database knows and mounts those in drives.
    public func open() async throws {
        for record in try store.tapes() {
            let location = TapeLocation(stored: record.location) ?? .station
            state.withLock { $0.tapes[record.barcode] = Entry(record: record, location: location) }
            if case .drive = location {
                do {
                    _ = try await mount(record.barcode)
                } catch {
                    logger.error("tape \(record.barcode) in \(location) cannot be mounted: \(error)")
                }
            }
        }
    }

    // MARK: - Tapes

    /// Creates a blank tape in the first free slot (or the station when the slots are full).
    /// - Throws: `TapeLibraryError` for a bad barcode or size, a used barcode, or a full library.
    @discardableResult
    public func create(barcode: String, size: UInt64, worm: Bool, pool: String? = nil) async throws(TapeLibraryError)
        -> TapeInfo
    {
        try Barcode.validate(barcode)
        let worm = worm || configuration.pools[pool ?? configuration.defaultPool]?.worm == true
        let geometry = TapeGeometry(capacity: size)
        guard size >= UInt64(geometry.recordSize), size <= 1 << 44 else {
            throw TapeLibraryError(.invalid, "tape size must be from 64K to 16T")
        }
        let location = try state.withLock { state throws(TapeLibraryError) -> TapeLocation in
            guard state.tapes[barcode] == nil else {
                throw TapeLibraryError(.conflict, "a tape with barcode \(barcode) exists")
            }
            let location = try freeLocation(state)
            state.tapes[barcode] = Entry(
                record: TapeRecord(barcode: barcode, capacity: 0, pool: "", worm: worm, location: "", createdAt: 0),
                location: location)
            state.busy.insert(barcode)
            return location
        }
        let record = TapeRecord(
            barcode: barcode, capacity: geometry.capacity, pool: pool ?? configuration.defaultPool, worm: worm,
            location: location.stored, createdAt: Int64(Date().timeIntervalSince1970))
        do {
            try store.createTape(record)
        } catch {
            _ = state.withLock { $0.tapes.removeValue(forKey: barcode) }
            throw TapeLibraryError(.conflict, error.message)
        }
        do {
            let container = try await containers.create(
                barcode: barcode, size: geometry.containerSize, pool: record.pool)
            let tape = try await Tape.format(
                container: container, barcode: barcode, geometry: geometry, worm: worm, on: eventLoop, logger: logger)
            state.withLock {
                $0.tapes[barcode] = Entry(record: record, location: location, tape: tape)
                $0.busy.remove(barcode)
            }
        } catch {
            _ = state.withLock { $0.tapes.removeValue(forKey: barcode) }
            try? store.deleteTape(barcode: barcode)
            try? await containers.delete(barcode: barcode)
            throw TapeLibraryError(.failed, "cannot create tape \(barcode): \(error)")
        }
        logger.info("created tape \(barcode) of \(geometry.capacity) bytes\(worm ? " (WORM)" : "") in \(location)")
        return try await info(barcode: barcode)
    }

    /// The next `count` unused barcodes `PREFIX0001`, `PREFIX0002`, … (never-used numbers only).
    public func barcodes(prefix: String, count: Int) throws(TapeLibraryError) -> [String] {
        let digits = max(4, 5 - prefix.count)
        var result: [String] = []
        var number = 1
        while result.count < count {
            let barcode = prefix + String(repeating: "0", count: max(0, digits - String(number).count)) + String(number)
            try Barcode.validate(barcode)
            let used = state.withLock { $0.tapes[barcode] != nil }
            if !used, !((try? store.barcodeUsed(barcode)) ?? true) { result.append(barcode) }
            number += 1
        }
        return result
    }

    /// Tapes in the library, or with `shelf` those on the shelf, by barcode.
    public func list(shelf: Bool) async -> [TapeInfo] {
        let barcodes = state.withLock { state in
            state.tapes.filter { ($0.value.location == .shelf) == shelf }.keys.sorted()
        }
        var infos: [TapeInfo] = []
        for barcode in barcodes {
            if let info = try? await info(barcode: barcode, readHeader: false) { infos.append(info) }
        }
        return infos
    }

    /// A tape's report; reads its header (from the shelf if need be) unless `readHeader` is false
    /// and it is not mounted.
    public func info(barcode: String, readHeader: Bool = true) async throws(TapeLibraryError) -> TapeInfo {
        let entry = try lookup(barcode)
        var info = TapeInfo(
            barcode: barcode, capacity: entry.record.capacity, pool: entry.record.pool, worm: entry.record.worm,
            location: entry.location.description,
            state: entry.location == .shelf ? "shelf" : entry.record.retrieved ? "retrieved" : "library",
            uploadPending: containers.pendingUploadBytes(barcode: barcode), createdAt: entry.record.createdAt,
            retainUntil: entry.record.retainUntil,
            storageClass: entry.record.storageClass.isEmpty ? nil : entry.record.storageClass)
        var tape = entry.tape
        if tape == nil, readHeader { tape = try? await mount(barcode) }
        if let tape {
            let status = await tape.status
            info.files = status.files
            info.records = Int(status.usedBytes / UInt64(status.recordSize))
            info.bytesUsed = status.files.reduce(0, +) + status.openLength
            info.openBytes = status.openLength
            info.badRecords = status.badRecords
        }
        return info
    }

    /// Moves a tape from its slot (or the station) into an empty drive.
    public func load(barcode: String, drive: String) async throws(TapeLibraryError) {
        try requireDrive(drive)
        try state.withLock { state throws(TapeLibraryError) in
            guard let entry = state.tapes[barcode] else { throw notFound(barcode) }
            if let loaded = state.tapes.values.first(where: { $0.location.drive == drive }) {
                throw TapeLibraryError(
                    .conflict,
                    "drive \(drive) holds tape \(loaded.record.barcode); `blockgate tape eject \(drive)` first")
            }
            switch entry.location {
            case .slot, .station: break
            case .drive(let other, _): throw TapeLibraryError(.conflict, "tape \(barcode) is in drive \(other)")
            case .shelf:
                throw TapeLibraryError(
                    .conflict, "tape \(barcode) is on the shelf; `blockgate tape retrieve \(barcode)` first")
            }
            guard !state.busy.contains(barcode) else { throw busy(barcode) }
        }
        do {
            _ = try await mount(barcode)
        } catch {
            throw TapeLibraryError(.failed, "tape \(barcode) cannot be mounted: \(error)")
        }
        let home: Int? =
            if case .slot(let slot) = try lookup(barcode).location { slot } else { nil }
        try move(barcode, to: .drive(drive, home: home))
        logger.info("loaded tape \(barcode) into drive \(drive)")
    }

    /// Returns a drive's tape to `destination` (a free slot or the station), or by default to
    /// the slot it came from (or, when that is taken, a free slot).
    public func eject(drive: String, to destination: TapeLocation? = nil) async throws(TapeLibraryError) {
        try requireDrive(drive)
        try await attachForAdmin(drive)
        defer { detach(drive) }
        await settle(drive)
        let (barcode, slot) = try state.withLock { state throws(TapeLibraryError) -> (String, TapeLocation) in
            guard let entry = state.tapes.values.first(where: { $0.location.drive == drive }) else {
                throw TapeLibraryError(.conflict, "drive \(drive) is empty")
            }
            if let destination {
                try requireFree(destination, state)
                return (entry.record.barcode, destination)
            }
            if case .drive(_, .some(let home)) = entry.location,
                !state.tapes.values.contains(where: { $0.location == .slot(home) })
            {
                return (entry.record.barcode, .slot(home))
            }
            return (entry.record.barcode, try freeLocation(state))
        }
        try move(barcode, to: slot)
        logger.info("ejected tape \(barcode) from drive \(drive) to \(slot)")
    }

    /// Moves a tape between slots and the station (what a changer's transfer does).
    /// - Throws: `.conflict` for a tape in a drive or on the shelf, or a destination that is taken.
    public func transfer(barcode: String, to destination: TapeLocation) throws(TapeLibraryError) {
        try state.withLock { state throws(TapeLibraryError) in
            guard let entry = state.tapes[barcode] else { throw notFound(barcode) }
            switch entry.location {
            case .slot, .station: break
            case .drive(let drive, _):
                throw TapeLibraryError(
                    .conflict, "tape \(barcode) is in drive \(drive); `blockgate tape eject \(drive)` first")
            case .shelf:
                throw TapeLibraryError(
                    .conflict, "tape \(barcode) is on the shelf; `blockgate tape retrieve \(barcode)` first")
            }
            guard !state.busy.contains(barcode) else { throw busy(barcode) }
            try requireFree(destination, state)
        }
        let from = try lookup(barcode).location
        try move(barcode, to: destination)
        logger.info("moved tape \(barcode) from \(from) to \(destination)")
    }

    /// Sends a tape to the shelf: its data made durable in the object store, its local cache
    /// dropped, kept as long as its pool asks (see `PoolPolicy`).
    public func export(barcode: String) async throws(TapeLibraryError) {
        let record = try state.withLock { state throws(TapeLibraryError) -> TapeRecord in
            guard let entry = state.tapes[barcode] else { throw notFound(barcode) }
            if let drive = entry.location.drive {
                throw TapeLibraryError(
                    .conflict, "tape \(barcode) is in drive \(drive); `blockgate tape eject \(drive)` first")
            }
            guard entry.location != .shelf else {
                throw TapeLibraryError(.conflict, "tape \(barcode) is on the shelf already")
            }
            guard state.busy.insert(barcode).inserted else { throw busy(barcode) }
            return entry.record
        }
        defer { _ = state.withLock { $0.busy.remove(barcode) } }
        let policy = configuration.pools[record.pool] ?? PoolPolicy()
        let retainUntil = record.worm ? .max : policy.retainUntil(exportedAt: Date())
        let storageClass: String
        do {
            storageClass = try await containers.archive(barcode: barcode, pool: record.pool, retainUntil: retainUntil)
        } catch {
            throw TapeLibraryError(.failed, "tape \(barcode) could not be archived (it stays in the library): \(error)")
        }
        do {
            try store.shelveTape(barcode: barcode, retainUntil: retainUntil, storageClass: storageClass)
        } catch {
            throw TapeLibraryError(.failed, "cannot record that tape \(barcode) went to the shelf: \(error)")
        }
        state.withLock {
            $0.tapes[barcode]?.location = .shelf
            $0.tapes[barcode]?.record.location = TapeLocation.shelf.stored
            $0.tapes[barcode]?.record.retrieved = false
            $0.tapes[barcode]?.record.retainUntil = retainUntil
            $0.tapes[barcode]?.record.storageClass = storageClass
            $0.tapes[barcode]?.tape = nil
        }
        let kept = retainUntil.map { ", kept \(PoolPolicy.describe(retainUntil: $0))" } ?? ""
        logger.info("exported tape \(barcode) to the shelf\(storageClass.isEmpty ? "" : " (\(storageClass))")\(kept)")
    }

    /// Brings a tape back from the shelf into a free slot, read-only. Returns what to tell the
    /// user when its data takes time to become readable (a cold storage class), else nil.
    public func retrieve(barcode: String) async throws(TapeLibraryError) -> String? {
        let record = try state.withLock { state throws(TapeLibraryError) -> TapeRecord in
            guard let entry = state.tapes[barcode] else { throw notFound(barcode) }
            guard entry.location == .shelf else {
                throw TapeLibraryError(.conflict, "tape \(barcode) is not on the shelf (it is in \(entry.location))")
            }
            _ = try freeLocation(state)
            guard state.busy.insert(barcode).inserted else { throw busy(barcode) }
            return entry.record
        }
        defer { _ = state.withLock { $0.busy.remove(barcode) } }
        let note: String?
        do {
            note = try await containers.restore(
                barcode: barcode, pool: record.pool, storageClass: record.storageClass)
        } catch {
            throw TapeLibraryError(.failed, "cannot restore tape \(barcode) from \(record.storageClass): \(error)")
        }
        let slot = try state.withLock { state throws(TapeLibraryError) in try freeLocation(state) }
        try move(barcode, to: slot, retrieved: true)
        // Mounted again when used, read-only.
        state.withLock { $0.tapes[barcode]?.tape = nil }
        logger.info("retrieved tape \(barcode) from the shelf to \(slot) (read-only)\(note.map { "; \($0)" } ?? "")")
        return note
    }

    /// Deletes a tape (its barcode is never used again).
    /// - Throws: `.conflict` for a tape in a drive, a WORM tape, or one holding data without `force`.
    public func delete(barcode: String, force: Bool) async throws(TapeLibraryError) {
        let entry = try lookup(barcode)
        if let drive = entry.location.drive {
            throw TapeLibraryError(
                .conflict, "tape \(barcode) is in drive \(drive); `blockgate tape eject \(drive)` first")
        }
        guard !entry.record.worm else {
            throw TapeLibraryError(.conflict, "tape \(barcode) is WORM and cannot be deleted")
        }
        if let until = entry.record.retainUntil, until > Int64(Date().timeIntervalSince1970) {
            throw TapeLibraryError(
                .conflict,
                "tape \(barcode) is kept \(PoolPolicy.describe(retainUntil: until)) (retention of pool "
                    + "\(entry.record.pool)) and cannot be deleted before")
        }
        if !force, let info = try? await info(barcode: barcode),
            (info.files?.count ?? 0) > 0 || (info.openBytes ?? 0) > 0
        {
            throw TapeLibraryError(
                .conflict, "tape \(barcode) holds \(info.files?.count ?? 0) file(s); pass --force to delete it anyway")
        }
        try state.withLock { state throws(TapeLibraryError) in
            guard state.busy.insert(barcode).inserted else { throw busy(barcode) }
        }
        do {
            try await containers.delete(barcode: barcode)
            try store.deleteTape(barcode: barcode)
        } catch {
            _ = state.withLock { $0.busy.remove(barcode) }
            throw TapeLibraryError(.failed, "cannot delete tape \(barcode): \(error)")
        }
        state.withLock {
            $0.tapes[barcode] = nil
            $0.busy.remove(barcode)
        }
        logger.info("deleted tape \(barcode)")
    }

    /// What is in each slot and drive, the station and the shelf.
    public func status() -> LibraryStatus {
        let entries = state.withLock { Array($0.tapes.values) }
        var slots = (0..<configuration.slots).map { LibraryStatus.Slot(slot: $0, barcode: nil) }
        var station: String?
        var shelf: [String] = []
        for entry in entries {
            switch entry.location {
            case .slot(let slot) where slot < slots.count: slots[slot].barcode = entry.record.barcode
            case .station: station = entry.record.barcode
            case .shelf: shelf.append(entry.record.barcode)
            default: break
            }
        }
        return LibraryStatus(
            slots: slots, drives: configuration.driveNames.map(driveStatusSnapshot), station: station,
            shelf: shelf.sorted())
    }

    /// At shutdown, after the NBD connections were closed: waits (up to 10 s) for the drives'
    /// clients to go and for the files they wrote to be sealed.
    public func stop() async {
        for _ in 0..<200 where state.withLock({ !$0.attached.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for drive in configuration.driveNames { await settle(drive) }
    }

    // MARK: - Helpers shared with the drive verbs

    func lookup(_ barcode: String) throws(TapeLibraryError) -> (record: TapeRecord, location: TapeLocation, tape: Tape?)
    {
        guard let entry = state.withLock({ $0.tapes[barcode] }) else { throw notFound(barcode) }
        return (entry.record, entry.location, entry.tape)
    }

    /// The tape in a drive, mounted, and whether it is read-only.
    public func loadedTape(in drive: String) throws(TapeLibraryError) -> (barcode: String, tape: Tape, readOnly: Bool) {
        try requireDrive(drive)
        guard let entry = state.withLock({ $0.tapes.values.first { $0.location.drive == drive } }) else {
            throw TapeLibraryError(
                .conflict, "drive \(drive) has no tape loaded; `blockgate tape load BARCODE --drive \(drive)`")
        }
        guard let tape = entry.tape else {
            throw TapeLibraryError(.failed, "tape \(entry.record.barcode) in drive \(drive) could not be mounted")
        }
        return (entry.record.barcode, tape, entry.record.retrieved)
    }

    /// Marks a drive attached; false when it already is. The head a tape device left is forgotten.
    func attach(_ drive: String) -> Bool {
        state.withLock { state in
            guard state.attached.insert(drive).inserted else { return false }
            state.deviceHeads[drive] = nil
            return true
        }
    }

    /// Marks a drive attached for a tape device; nil when it already is, else the head the
    /// drive's last tape device left (if any).
    func attachDevice(_ drive: String) -> (barcode: String, head: TapeDevice.Head)?? {
        state.withLock { state in
            guard state.attached.insert(drive).inserted else { return nil }
            return .some(state.deviceHeads.removeValue(forKey: drive))
        }
    }

    /// Remembers where a tape device left a drive's head.
    func remember(_ head: TapeDevice.Head, of barcode: String, in drive: String) {
        state.withLock { $0.deviceHeads[drive] = (barcode, head) }
    }

    /// Attaches an admin verb to a drive, giving a client that is disconnecting (its
    /// disconnect sent, not yet processed) a moment to go.
    /// - Throws: `.conflict` saying a client is attached when it stays.
    func attachForAdmin(_ drive: String) async throws(TapeLibraryError) {
        for _ in 0..<100 {
            if attach(drive) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
        throw attachedError(drive)
    }

    func detach(_ drive: String) { _ = state.withLock { $0.attached.remove(drive) } }

    /// Records the task sealing a drive's file after its client left, and where the head will be.
    func sealing(_ drive: String, _ task: Task<Bool, Never>, position: Tape.Position) {
        state.withLock { $0.sealing[drive] = (task, position) }
    }

    /// The seal in progress on a drive, if any.
    func pendingSeal(_ drive: String) -> (task: Task<Bool, Never>, position: Tape.Position)? {
        state.withLock { $0.sealing[drive] }
    }

    /// Waits until a file the drive's last client wrote is sealed.
    func settle(_ drive: String) async {
        guard let pending = pendingSeal(drive) else { return }
        _ = await pending.task.value
        state.withLock { state in
            if state.sealing[drive]?.task == pending.task { state.sealing[drive] = nil }
        }
    }

    func isAttached(_ drive: String) -> Bool { state.withLock { $0.attached.contains(drive) } }

    func requireDrive(_ drive: String) throws(TapeLibraryError) {
        guard configuration.driveNames.contains(drive) else {
            throw TapeLibraryError(
                .notFound,
                "no drive '\(drive)'; the library has drives \(configuration.driveNames.joined(separator: ", "))")
        }
    }

    func attachedError(_ drive: String) -> TapeLibraryError {
        TapeLibraryError(.conflict, "drive \(drive) has a client attached; disconnect it first (nbd-client -d)")
    }

    private func mount(_ barcode: String) async throws -> Tape {
        if let tape = state.withLock({ $0.tapes[barcode]?.tape }) { return tape }
        let retrieved = state.withLock { $0.tapes[barcode]?.record.retrieved ?? false }
        let tape = try await Tape.load(
            container: try containers.open(barcode: barcode), on: eventLoop, logger: logger, readOnly: retrieved)
        return state.withLock { state in
            if let existing = state.tapes[barcode]?.tape { return existing }
            state.tapes[barcode]?.tape = tape
            return tape
        }
    }

    private func move(_ barcode: String, to location: TapeLocation, retrieved: Bool? = nil) throws(TapeLibraryError) {
        let keepRetrieved = state.withLock { $0.tapes[barcode]?.record.retrieved ?? false }
        let readOnly = retrieved ?? keepRetrieved
        do {
            try store.moveTape(barcode: barcode, to: location.stored, retrieved: readOnly)
        } catch {
            throw TapeLibraryError(.failed, "cannot record that tape \(barcode) moved: \(error)")
        }
        state.withLock {
            $0.tapes[barcode]?.location = location
            $0.tapes[barcode]?.record.location = location.stored
            $0.tapes[barcode]?.record.retrieved = readOnly
        }
    }

    /// A destination for a tape inside the library: a slot that exists, or the station, and empty.
    private func requireFree(_ location: TapeLocation, _ state: State) throws(TapeLibraryError) {
        switch location {
        case .slot(let slot) where (0..<configuration.slots).contains(slot): break
        case .station: break
        case .slot(let slot):
            throw TapeLibraryError(
                .invalid, "no slot \(slot); the library has slots 0 to \(configuration.slots - 1) and the station")
        default:
            throw TapeLibraryError(.invalid, "a tape can be moved to a slot or the station, not to \(location)")
        }
        if let holder = state.tapes.values.first(where: { $0.location == location }) {
            throw TapeLibraryError(.conflict, "\(location) holds tape \(holder.record.barcode)")
        }
    }

    private func freeLocation(_ state: State) throws(TapeLibraryError) -> TapeLocation {
        let taken = Set(state.tapes.values.map(\.location))
        if let slot = (0..<configuration.slots).first(where: { !taken.contains(.slot($0)) }) { return .slot(slot) }
        if !taken.contains(.station) { return .station }
        throw TapeLibraryError(
            .conflict, "the library is full (\(configuration.slots) slots and the station); export or delete a tape")
    }

    private func notFound(_ barcode: String) -> TapeLibraryError {
        TapeLibraryError(.notFound, "no tape with barcode \(barcode); `blockgate tape list` shows the tapes")
    }

    private func busy(_ barcode: String) -> TapeLibraryError {
        TapeLibraryError(.conflict, "tape \(barcode) is busy (being created, archived or deleted); try again")
    }

    private func driveStatusSnapshot(_ drive: String) -> DriveStatus {
        let entry = state.withLock { $0.tapes.values.first { $0.location.drive == drive } }
        guard let entry, let tape = entry.tape else {
            return DriveStatus(drive: drive, barcode: entry?.record.barcode, attached: isAttached(drive))
        }
        let position = tape.position
        let home: Int? = if case .drive(_, let home) = entry.location { home } else { nil }
        return DriveStatus(
            drive: drive, barcode: entry.record.barcode, homeSlot: home, attached: isAttached(drive),
            file: position.headFile, block: 0,
            bot: position.headFile == 0, eod: position.headFile == position.files,
            eot: position.spaceFromHead * 100 < entry.record.capacity, readOnly: entry.record.retrieved)
    }
}
