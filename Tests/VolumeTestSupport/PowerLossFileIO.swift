import Foundation
import Glibc
import LocalIO
import NIOConcurrencyHelpers
import NIOCore

/// Real file I/O that also keeps, per file, what a power loss could leave: a durable image (the
/// file as of its last completed sync) and the writes, punches and zeroings completed since. A
/// test calls `powerLoss(path:using:)` to replace the file with one state a power cut could
/// leave: each 4 KiB page touched since the last sync holds its durable content or its content
/// after some of those operations (a later one only with every earlier one), the last of them
/// sometimes torn at 512-byte sectors. Writes with `dsync` are always kept. Each completed
/// operation and each sync is recorded through a `CrashRecorder`, under its lock, and
/// `capture(path:into:)` keeps the state of one instant to be written out later.
public final class PowerLossFileIO: FileIO, @unchecked Sendable {
    fileprivate enum Operation: Sendable {
        case write(offset: UInt64, bytes: [UInt8])
        case allocate(FileAllocation, offset: UInt64, length: UInt64)

        var range: Range<UInt64> {
            switch self {
            case .write(let offset, let bytes): offset..<(offset + UInt64(bytes.count))
            case .allocate(_, let offset, let length): offset..<(offset + length)
            }
        }
    }

    fileprivate struct Pending: Sendable {
        let sequence: UInt64
        let operation: Operation
        let durable: Bool
    }

    private struct Files {
        var sequence: UInt64 = 0
        var pending: [String: [Pending]] = [:]
    }

    private let base: any FileIO
    private let recorder: CrashRecorder
    private let files = NIOLockedValueBox(Files())
    static let page = 4096
    static let sector = 512

    public init(wrapping base: any FileIO, recorder: CrashRecorder) {
        self.base = base
        self.recorder = recorder
    }

    public var backendName: String { "power-loss(\(base.backendName))" }

    /// Where the durable image of `path` lives.
    public static func durablePath(_ path: String) -> String { path + ".durable" }

    /// Operations completed since the last sync of `path`.
    public func pendingCount(path: String) -> Int { files.withLockedValue { $0.pending[path]?.count ?? 0 } }

    public func read(
        _ file: LocalFile, offset: UInt64, length: Int, on eventLoop: any EventLoop,
        completion: @escaping @Sendable (Result<ByteBuffer, any Error>) -> Void
    ) {
        base.read(file, offset: offset, length: length, on: eventLoop, completion: completion)
    }

    public func write(_ file: LocalFile, offset: UInt64, data: ByteBuffer, dsync: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let bytes = Array(data.readableBytesView)
        return base.write(file, offset: offset, data: data, dsync: dsync, on: eventLoop).map {
            self.record(file.path, .write(offset: offset, bytes: bytes), durable: dsync)
        }
    }

    public func allocate(
        _ file: LocalFile, mode: FileAllocation, offset: UInt64, length: UInt64, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        base.allocate(file, mode: mode, offset: offset, length: length, on: eventLoop).map {
            self.record(file.path, .allocate(mode, offset: offset, length: length), durable: false)
        }
    }

    public func syncData(_ file: LocalFile, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        // Everything completed before the sync is called is covered by it.
        let barrier = recorder.record(.syncSent) { files.withLockedValue { $0.sequence } }
        return base.syncData(file, on: eventLoop).flatMapThrowing {
            try self.recorder.record(.syncDone) {
                let covered = self.files.withLockedValue { files -> [Pending] in
                    let all = files.pending[file.path] ?? []
                    files.pending[file.path] = all.filter { $0.sequence > barrier }
                    return all.filter { $0.sequence <= barrier }
                }
                try Self.apply(covered.map(\.operation), toFileAt: Self.durablePath(file.path), length: file.length())
            }
        }
    }

    public func shutdown() async {
        await base.shutdown()
    }

    private func record(_ path: String, _ operation: Operation, durable: Bool) {
        recorder.record(.fileChanged) {
            files.withLockedValue { files in
                files.sequence += 1
                files.pending[path, default: []].append(
                    Pending(sequence: files.sequence, operation: operation, durable: durable))
            }
        }
    }

    // MARK: - Captures

    /// A file as one instant left it: its durable image (a copy) and the operations since.
    public struct Capture: Sendable {
        let image: String
        let length: UInt64
        fileprivate let unsynced: [Pending]
        /// Operations completed since the last sync.
        public var unsyncedOperations: Int { unsynced.count }
    }

    /// Copies the durable image of `path` to `image` and keeps the operations since its last
    /// sync (call it from a `CrashRecorder` observer, so that nothing changes meanwhile).
    public func capture(path: String, into image: String) throws -> Capture {
        let unsynced = files.withLockedValue { $0.pending[path] ?? [] }
        let length = try LocalFile.openExisting(path: path).length()
        let durable = Self.durablePath(path)
        try Self.ensureImage(durable, length: length)
        try Self.copySparse(from: durable, to: image, length: length)
        return Capture(image: image, length: length, unsynced: unsynced)
    }

    /// Writes at `path` a state a power loss at the instant of `capture` could leave.
    public static func materialize(
        _ capture: Capture, at path: String, using random: inout some RandomNumberGenerator
    ) throws -> Outcome {
        try crashImage(
            from: capture.image, unsynced: capture.unsynced, to: path, length: capture.length, using: &random)
    }

    // MARK: - Power loss

    /// What one simulated power loss did to a file.
    public struct Outcome: CustomStringConvertible, Sendable {
        /// Pages touched since the last sync.
        public var pages = 0
        /// Pages left with their durable content.
        public var lost = 0
        /// Pages torn between two of their states.
        public var torn = 0
        public var description: String { "\(pages) unsynced page(s): \(lost) lost, \(torn) torn" }
    }

    /// Which state of each unsynced page a power loss leaves.
    public enum Choice: Sendable {
        /// Any, chosen with the generator.
        case random
        /// Every operation kept, the last one of each page torn: its odd sectors only.
        case tearLast
        /// Every operation a power loss may lose lost: of each page, only a dsync write and those
        /// before it stay.
        case loseAll
    }

    /// Replaces the file at `path` (closed by its users, or about to be reopened) with a state
    /// a power loss could leave, chosen with `random`; that state becomes the durable image.
    public func powerLoss(path: String, using random: inout some RandomNumberGenerator, choice: Choice = .random)
        throws -> Outcome
    {
        let pending = files.withLockedValue { files in
            defer { files.pending[path] = [] }
            return files.pending[path] ?? []
        }
        let length = try LocalFile.openExisting(path: path).length()
        let durable = Self.durablePath(path)
        try Self.ensureImage(durable, length: length)
        let crash = path + ".crash"
        let outcome = try Self.crashImage(
            from: durable, unsynced: pending, to: crash, length: length, using: &random, choice: choice)
        guard rename(crash, path) == 0 else { throw LocalIOError(errno: errno, operation: "rename \(crash)") }
        try Self.copySparse(from: path, to: durable, length: length)
        return outcome
    }

    /// Writes at `crash` the durable image with, per page touched by `pending`, the state a
    /// power loss could leave (see the type's comment).
    private static func crashImage(
        from durable: String, unsynced pending: [Pending], to crash: String, length: UInt64,
        using random: inout some RandomNumberGenerator, choice: Choice = .random
    ) throws -> Outcome {
        try copySparse(from: durable, to: crash, length: length)
        let file = try LocalFile.open(path: crash, length: length)
        var byPage: [UInt64: [Pending]] = [:]
        for item in pending {
            let range = item.operation.range
            guard !range.isEmpty else { continue }
            for page in (range.lowerBound / UInt64(Self.page))...((range.upperBound - 1) / UInt64(Self.page)) {
                byPage[page, default: []].append(item)
            }
        }
        var outcome = Outcome()
        for (page, items) in byPage.sorted(by: { $0.key < $1.key }) {
            outcome.pages += 1
            let start = page * UInt64(Self.page)
            let old = try pageState(file, at: start)
            // A later operation lands only with every earlier one; a dsync write always lands.
            let mustKeep = (items.lastIndex { $0.durable }).map { $0 + 1 } ?? 0
            let kept =
                switch choice {
                case .tearLast: items.count
                case .loseAll: mustKeep
                case .random: mustKeep + Int(random.next() % UInt64(items.count - mustKeep + 1))
                }
            if kept == 0 {
                outcome.lost += 1
                continue
            }
            var before = old
            for item in items.prefix(kept - 1) { apply(item.operation, to: &before, pageStart: start) }
            var new = before
            apply(items[kept - 1].operation, to: &new, pageStart: start)
            let tear = choice == .tearLast || random.next() % 4 == 0
            if !items[kept - 1].durable, tear, new != before {
                // Torn: the last operation kept reached some sectors only.
                outcome.torn += 1
                var mixed = before
                mixed.hole = false
                for sector in 0..<(Self.page / Self.sector)
                where choice == .tearLast ? sector % 2 == 1 : random.next() % 2 == 0 {
                    let bytes = (sector * Self.sector)..<((sector + 1) * Self.sector)
                    mixed.bytes.replaceSubrange(bytes, with: new.bytes[bytes])
                }
                new = mixed
            }
            try store(new, in: file, at: start)
        }
        try file.syncData()
        return outcome
    }

    /// Makes the durable image of `path` its current content (after a recovery that synced it
    /// with calls that do not pass through a `FileIO`).
    public func settle(path: String) throws {
        files.withLockedValue { $0.pending[path] = [] }
        let length = try LocalFile.openExisting(path: path).length()
        try Self.copySparse(from: path, to: Self.durablePath(path), length: length)
    }

    // MARK: - Pages and images

    private struct PageState: Equatable {
        var bytes: [UInt8]
        var hole: Bool
    }

    private static func pageState(_ file: LocalFile, at start: UInt64) throws -> PageState {
        let hole = try file.dataRanges(in: start..<(start + UInt64(page))).isEmpty
        var bytes = [UInt8](repeating: 0, count: page)
        if !hole {
            _ = bytes.withUnsafeMutableBytes { pread(file.descriptor, $0.baseAddress, page, off_t(start)) }
        }
        return PageState(bytes: bytes, hole: hole)
    }

    private static func store(_ state: PageState, in file: LocalFile, at start: UInt64) throws {
        if state.hole {
            try file.allocate(.punchHole, offset: start, length: UInt64(page))
            return
        }
        let written = state.bytes.withUnsafeBytes { pwrite(file.descriptor, $0.baseAddress, page, off_t(start)) }
        guard written == page else { throw LocalIOError(errno: errno, operation: "pwrite crash image") }
    }

    private static func apply(_ operation: Operation, to state: inout PageState, pageStart: UInt64) {
        let pageRange = pageStart..<(pageStart + UInt64(page))
        let range = operation.range.clamped(to: pageRange)
        guard !range.isEmpty else { return }
        let local = Int(range.lowerBound - pageStart)..<Int(range.upperBound - pageStart)
        switch operation {
        case .write(let offset, let bytes):
            let from = Int(range.lowerBound - offset)
            state.bytes.replaceSubrange(local, with: bytes[from..<(from + local.count)])
            state.hole = false
        case .allocate(let mode, _, _):
            state.bytes.replaceSubrange(local, with: repeatElement(0, count: local.count))
            if mode == .zeroRange || local.count < page {
                state.hole = state.hole && mode == .punchHole
            } else {
                state.hole = true
            }
        }
    }

    private static func apply(_ operations: [Operation], toFileAt path: String, length: UInt64) throws {
        try ensureImage(path, length: length)
        let file = try LocalFile.open(path: path, length: length)
        for operation in operations {
            switch operation {
            case .write(let offset, let bytes):
                let written = bytes.withUnsafeBytes {
                    pwrite(file.descriptor, $0.baseAddress, bytes.count, off_t(offset))
                }
                guard written == bytes.count else { throw LocalIOError(errno: errno, operation: "pwrite image") }
            case .allocate(let mode, let offset, let length):
                try file.allocate(mode, offset: offset, length: length)
            }
        }
    }

    private static func ensureImage(_ path: String, length: UInt64) throws {
        _ = try LocalFile.open(path: path, length: length)
    }

    private static func copySparse(from source: String, to target: String, length: UInt64) throws {
        unlink(target)
        let from = try LocalFile.open(path: source, length: length)
        let to = try LocalFile.open(path: target, length: length)
        for range in try from.dataRanges(in: 0..<length) {
            var position = range.lowerBound
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while position < range.upperBound {
                let count = Int(min(UInt64(buffer.count), range.upperBound - position))
                let read = buffer.withUnsafeMutableBytes {
                    pread(from.descriptor, $0.baseAddress, count, off_t(position))
                }
                guard read == count else { throw LocalIOError(errno: errno, operation: "pread \(source)") }
                let written = buffer.withUnsafeBytes { pwrite(to.descriptor, $0.baseAddress, count, off_t(position)) }
                guard written == count else { throw LocalIOError(errno: errno, operation: "pwrite \(target)") }
                position += UInt64(count)
            }
        }
    }
}

extension LocalFile {
    /// The file's length.
    func length() throws -> UInt64 {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw LocalIOError(errno: errno, operation: "fstat \(path)") }
        return UInt64(status.st_size)
    }

    /// Opens an existing file without changing its length.
    static func openExisting(path: String) throws -> LocalFile {
        var status = stat()
        guard stat(path, &status) == 0 else { throw LocalIOError(errno: errno, operation: "stat \(path)") }
        return try open(path: path, length: UInt64(status.st_size))
    }
}
