import BlockDevice
import NIOCore

/// One program's use of a loaded drive as a no-rewind tape device (what the rmt protocol
/// drives): owns the head's position inside a file, the size of the records the program moves
/// (for block numbers and record spacing) and whether it wrote. Its requests come one at a time.
///
/// The head is a file and an offset in it. Offset `length` of a sealed file is the filemark's
/// near side: a read there returns no bytes once and moves past the filemark to the next file.
/// Writes go only to end of data, appending to the open file; writing filemarks seals it. The
/// tape's own head (what the NBD export and `drive status` use) follows the file the head is in.
public actor TapeDevice {
    /// Where the head is.
    public struct Head: Sendable, Equatable {
        public var file: Int
        public var offset: UInt64

        public init(file: Int, offset: UInt64) {
            self.file = file
            self.offset = offset
        }
    }

    /// What the device reports when asked for its status (mtio's MTIOCGET).
    public struct Status: Sendable, Equatable {
        public var file: Int
        /// Records of `blockSize` from the start of the file.
        public var block: Int
        /// The record size the program uses (0 before its first read or write).
        public var blockSize: Int
        public var beginningOfTape: Bool
        /// Just past a filemark.
        public var afterFilemark: Bool
        public var endOfData: Bool
        /// Less than 1% of the tape is left.
        public var endOfTape: Bool
        public var writeProtected: Bool
    }

    /// How a device operation failed, in the terms of a tape device's errors.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public enum Kind: Sendable, Equatable {
            /// A filemark, the beginning or the end of data was met (EIO).
            case io
            /// The operation is not allowed where the head is, or on a WORM tape (EPERM).
            case notPermitted
            /// The tape is read-only (EROFS).
            case readOnly
            /// End of tape (ENOSPC).
            case noSpace
            /// An operation or argument the device does not take (EINVAL).
            case invalid
        }

        public let kind: Kind
        public let message: String

        public init(_ kind: Kind, _ message: String) {
            self.kind = kind
            self.message = message
        }

        public var description: String { message }
    }

    public nonisolated let drive: String
    public nonisolated let barcode: String
    public nonisolated let readOnly: Bool
    private let tape: Tape
    private(set) var head: Head
    private var blockSize = 0
    /// The program wrote since the device was opened.
    private var wrote = false

    init(drive: String, barcode: String, tape: Tape, readOnly: Bool, head: Head) {
        self.drive = drive
        self.barcode = barcode
        self.tape = tape
        self.readOnly = readOnly
        self.head = head
    }

    // MARK: - Data

    /// Reads up to `count` bytes of the file at the head: fewer at its end, none at a filemark
    /// (the head then goes past it) or at end of data.
    public func read(count: Int) async throws -> [UInt8] {
        let status = await tape.status
        let length = Self.length(of: head.file, in: status)
        if head.offset >= length {
            if head.file < status.files.count {
                try await moveHead(to: Head(file: head.file + 1, offset: 0))
            }
            return []
        }
        let take = Int(min(UInt64(count), length - head.offset))
        let bytes = try await tape.read(file: head.file, offset: head.offset, length: take)
        head.offset += UInt64(take)
        if take > 0 { blockSize = take }
        return bytes
    }

    /// Appends `data` to the open file; only at end of data.
    public func write(_ data: ByteBuffer) async throws {
        try requireWritable()
        let status = await tape.status
        guard head.file == status.files.count, head.offset == status.openLength else {
            throw notAtEndOfData("write")
        }
        do {
            try await tape.write(offset: head.offset, data: data)
        } catch let error as BlockDeviceError where error.kind == .noSpace {
            throw Failure(.noSpace, error.message)
        }
        wrote = true
        head.offset += UInt64(data.readableBytes)
        if data.readableBytes > 0 { blockSize = data.readableBytes }
    }

    // MARK: - Operations

    /// Writes `count` filemarks at end of data (the first seals the open file); 0 makes what
    /// was written durable.
    public func writeFilemarks(_ count: Int) async throws {
        try requireWritable()
        let status = await tape.status
        guard head.file == status.files.count, head.offset == status.openLength else {
            throw notAtEndOfData("write a filemark")
        }
        if count == 0 { return try await tape.flush() }
        for _ in 0..<count {
            try await tape.writeFilemark()
            head = Head(file: head.file + 1, offset: 0)
            wrote = false
        }
    }

    /// Spaces forward over `count` filemarks, to the start of a later file.
    public func forwardFiles(_ count: Int) async throws {
        try await sealWritten()
        let status = await tape.status
        var target = head
        defer { head = target }
        for _ in 0..<count {
            guard target.file < status.files.count else {
                target = Head(file: status.files.count, offset: status.openLength)
                try await followHead(target)
                throw Failure(.io, "end of data reached after \(target.file) file(s)")
            }
            target = Head(file: target.file + 1, offset: 0)
        }
        try await followHead(target)
    }

    /// Spaces back over `count` filemarks: the head ends on the near side of the last one
    /// passed, at the end of the file before it.
    public func backFiles(_ count: Int) async throws {
        try await sealWritten()
        let status = await tape.status
        var target = head
        defer { head = target }
        for _ in 0..<count {
            guard target.file > 0 else {
                target = Head(file: 0, offset: 0)
                try await followHead(target)
                throw Failure(.io, "beginning of tape reached")
            }
            target = Head(file: target.file - 1, offset: Self.length(of: target.file - 1, in: status))
        }
        try await followHead(target)
    }

    /// Spaces forward over `count` filemarks and stops before the last one (mtio's MTFSFM).
    public func forwardFilesToMark(_ count: Int) async throws {
        try await forwardFiles(count)
        try await backFiles(1)
    }

    /// Spaces back over `count` filemarks and then forward over one: the head is at the start
    /// of a file (mtio's MTBSFM).
    public func backFilesToMark(_ count: Int) async throws {
        try await backFiles(count)
        try await forwardFiles(1)
    }

    /// Spaces forward `count` records of the program's record size within the file.
    public func forwardRecords(_ count: Int) async throws {
        try await sealWritten()
        let length = Self.length(of: head.file, in: await tape.status)
        let wanted = head.offset + UInt64(count) * UInt64(max(blockSize, 1))
        head.offset = min(wanted, length)
        if wanted > length { throw Failure(.io, "a filemark or end of data was met") }
    }

    /// Spaces back `count` records of the program's record size within the file.
    public func backRecords(_ count: Int) async throws {
        try await sealWritten()
        let back = UInt64(count) * UInt64(max(blockSize, 1))
        guard back <= head.offset else {
            head.offset = 0
            throw Failure(.io, "the start of the file was met")
        }
        head.offset -= back
    }

    /// Moves the head to the beginning of the tape.
    public func rewind() async throws {
        try await sealWritten()
        try await moveHead(to: Head(file: 0, offset: 0))
    }

    /// Moves the head to end of data, where writes append.
    public func endOfData() async throws {
        try await sealWritten()
        let status = await tape.status
        try await moveHead(to: Head(file: status.files.count, offset: status.openLength))
    }

    /// Erases the tape from the head, which must be at the start of a file or at end of data.
    public func erase() async throws {
        try requireWritable()
        guard head.offset == 0 else {
            throw Failure(
                .notPermitted, "the head is inside file \(head.file); erasing starts at the start of a file")
        }
        do {
            try await tape.erase()
        } catch let error as BlockDeviceError where error.kind == .notPermitted {
            throw Failure(.notPermitted, error.message)
        }
    }

    /// Sets the record size used for block numbers and record spacing (0: the size of the
    /// program's reads and writes).
    public func setBlockSize(_ size: Int) throws {
        guard size >= 0 else { throw Failure(.invalid, "a block size cannot be negative") }
        blockSize = size
    }

    public func status() async -> Status {
        let status = await tape.status
        return Status(
            file: head.file, block: blockSize > 0 ? Int(head.offset / UInt64(blockSize)) : 0, blockSize: blockSize,
            beginningOfTape: head == Head(file: 0, offset: 0), afterFilemark: head.file > 0 && head.offset == 0,
            endOfData: head.file == status.files.count && head.offset == status.openLength,
            endOfTape: (status.capacity - status.usedBytes) * 100 < status.capacity, writeProtected: readOnly)
    }

    /// Ends the program's use: what it wrote is sealed with a filemark, as a tape drive writes
    /// one when a device that wrote is closed, and the head stays after it.
    func finish() async throws {
        try await sealWritten()
    }

    // MARK: - Helpers

    private static func length(of file: Int, in status: Tape.Status) -> UInt64 {
        file < status.files.count ? status.files[file] : status.openLength
    }

    /// Before the head moves away from what the program wrote, the file is sealed (a drive
    /// writes a filemark there).
    private func sealWritten() async throws {
        guard wrote else { return }
        wrote = false
        if try await tape.sealOpenFile() { head = Head(file: head.file + 1, offset: 0) }
    }

    private func moveHead(to target: Head) async throws {
        try await followHead(target)
        head = target
    }

    /// Keeps the tape's head at the file the device's head is in.
    private func followHead(_ target: Head) async throws {
        guard tape.position.headFile != target.file else { return }
        try await tape.position(toFile: target.file)
    }

    private func requireWritable() throws {
        guard !readOnly else {
            throw Failure(.readOnly, "tape \(barcode) was retrieved from the shelf and is read-only")
        }
    }

    private func notAtEndOfData(_ what: String) -> Failure {
        Failure(
            .notPermitted,
            "tape \(barcode): cannot \(what) inside the recorded files (file \(head.file)); only at end of data "
                + "(mt eom), or erase from the start of a file first (mt erase)")
    }
}
