import BlockDevice
import Codecs
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A tape mounted from its container (any block device; the gateway gives it a cached volume):
/// owns the header in force, the open file's live length, the records changed since the last
/// commit, the group headers read so far and the records that failed their CRC check.
/// See docs/tape-format.md for the bytes and the commit order.
public actor Tape {
    /// What `tape info` and `drive status` show.
    public struct Status: Sendable, Equatable {
        public var barcode: String
        public var capacity: UInt64
        public var recordSize: Int
        public var worm: Bool
        /// Length of every sealed file, in order.
        public var files: [UInt64]
        /// Bytes written to the open file so far (not yet sealed).
        public var openLength: UInt64
        /// The file the head is at.
        public var headFile: Int
        /// Records that failed their CRC check since the tape was mounted.
        public var badRecords: [Int]
        /// Bytes of records in use (sealed files and the open file).
        public var usedBytes: UInt64
        /// The head is past the last filemark, where writes go.
        public var atEndOfData: Bool { headFile == files.count }
    }

    /// Where the head is, readable without waiting for the tape (for opening a drive export).
    public struct Position: Sendable, Equatable {
        /// The file the head is at.
        public var headFile: Int
        /// Sealed files; `headFile == files` is end of data.
        public var files: Int
        /// Bytes from the start of the head's file to the end of the tape.
        public var spaceFromHead: UInt64
        /// Bytes written to the open file.
        public var openLength: UInt64
        /// Bytes per record.
        public var recordSize: Int

        /// Where the head will be once the open file is sealed (head at end of data).
        public var afterSealing: Position {
            let records = (openLength + UInt64(recordSize) - 1) / UInt64(recordSize)
            return Position(
                headFile: files + 1, files: files + 1, spaceFromHead: spaceFromHead - records * UInt64(recordSize),
                openLength: 0, recordSize: recordSize)
        }
    }

    private let container: any BlockDevice
    /// A tape back from the shelf: nothing is written to its container, not even the head.
    private let readOnly: Bool
    private let eventLoop: any EventLoop
    private nonisolated let published: NIOLockedValueBox<Position>
    private let logger: Logger
    /// The header of the last commit, with the head position in force.
    private var header: TapeHeader {
        didSet { published.withLockedValue { $0 = Self.position(of: header, openLength: openLength) } }
    }
    /// Bytes of the open file written by completed writes.
    private var openLength: UInt64 {
        didSet { published.withLockedValue { $0.openLength = openLength } }
    }
    /// Records written since the last commit: their CRCs are not computed yet.
    private var dirtyRecords: Set<Int> = []
    /// Writes in flight per record; such records stay dirty through a commit.
    private var writing: [Int: Int] = [:]
    /// Group headers read so far: the copy in force of each, and which of the two it is.
    private var groupHeaders: [Int: (header: GroupHeader, copy: Int)] = [:]
    private var badRecords: Set<Int> = []
    /// The commit running now, which the next one waits for.
    private var lastCommit: Task<Void, any Error>?

    private var geometry: TapeGeometry { header.geometry }

    private init(
        container: any BlockDevice, header: TapeHeader, eventLoop: any EventLoop, logger: Logger, readOnly: Bool = false
    ) {
        self.container = container
        self.readOnly = readOnly
        self.header = header
        self.published = NIOLockedValueBox(Self.position(of: header, openLength: header.openLength))
        self.openLength = header.openLength
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// Writes a blank tape's header into `container`, which must be at least
    /// `geometry.containerSize` bytes and read as zeros.
    public static func format(
        container: any BlockDevice, barcode: String, geometry: TapeGeometry, worm: Bool, on eventLoop: any EventLoop,
        logger: Logger
    ) async throws -> Tape {
        var header = TapeHeader(barcode: barcode, geometry: geometry, worm: worm)
        header.sequence = 1
        let tape = Tape(container: container, header: header, eventLoop: eventLoop, logger: logger)
        try await tape.writeHeader(header)
        return tape
    }

    /// Mounts a tape: the header slot with the higher valid sequence number is in force. A
    /// `readOnly` tape (back from the shelf, its objects perhaps locked) keeps its head in memory
    /// and never writes: a file cut short stays open.
    /// - Throws: `BlockDeviceError.io` when neither slot holds a valid header.
    public static func load(
        container: any BlockDevice, on eventLoop: any EventLoop, logger: Logger, readOnly: Bool = false
    ) async throws -> Tape {
        var best: TapeHeader?
        var problems: [String] = []
        for slot in 0..<2 {
            let bytes = try await readBytes(
                container, offset: TapeGeometry.headerSlotSize * slot, length: TapeGeometry.headerSlotSize,
                on: eventLoop)
            do {
                let header = try TapeHeader(decoding: bytes)
                if header.sequence > best?.sequence ?? 0 { best = header }
            } catch {
                problems.append("slot \(slot): \(error.message)")
            }
        }
        guard let best else {
            throw BlockDeviceError(.io, "no valid tape header (\(problems.joined(separator: "; ")))")
        }
        let tape = Tape(container: container, header: best, eventLoop: eventLoop, logger: logger, readOnly: readOnly)
        if !readOnly { try await tape.sealInterruptedFile() }
        return tape
    }

    /// A file still open at mount was cut short (a client that writes seals its file when it
    /// leaves, and so does a clean stop): it is sealed at its durable length, as a drive's end
    /// of data would leave it, so that the next write appends a new file instead of
    /// overwriting it. The head stays where it was, or goes after the file if it was at it.
    private func sealInterruptedFile() async throws {
        guard header.openLength > 0 else { return }
        let file = header.files.count
        let length = header.openLength
        let head = header.headFile
        do {
            try await commit(sealing: true) { next in
                if head < file { next.headFile = head }
            }
            logger.notice(
                "tape \(header.barcode): file \(file) was cut short (by a crash?); sealed it at its durable length of \(length) bytes"
            )
        } catch {
            logger.warning("tape \(header.barcode): file \(file) was cut short and cannot be sealed now: \(error)")
        }
    }

    /// Where the head is now.
    public nonisolated var position: Position { published.withLockedValue { $0 } }

    private static func position(of header: TapeHeader, openLength: UInt64) -> Position {
        let first = header.firstRecord(ofFile: header.headFile)
        return Position(
            headFile: header.headFile, files: header.files.count,
            spaceFromHead: header.geometry.capacity - UInt64(first) * UInt64(header.geometry.recordSize),
            openLength: openLength, recordSize: header.geometry.recordSize)
    }

    public var status: Status {
        let sealed = header.files.reduce(UInt64(0)) { $0 + UInt64(geometry.recordCount(forLength: $1.length)) }
        let open = UInt64(geometry.recordCount(forLength: openLength))
        return Status(
            barcode: header.barcode, capacity: geometry.capacity, recordSize: geometry.recordSize, worm: header.worm,
            files: header.files.map(\.length), openLength: openLength, headFile: header.headFile,
            badRecords: badRecords.sorted(), usedBytes: (sealed + open) * UInt64(geometry.recordSize))
    }

    // MARK: - Data

    /// Reads `length` bytes at `offset` in `file`; bytes past the end of the file read as zeros.
    /// - Throws: `BlockDeviceError.io` when a record fails its CRC check.
    public func read(file: Int, offset: UInt64, length: Int) async throws -> [UInt8] {
        let (first, fileLength) = extent(of: file)
        var result = [UInt8](repeating: 0, count: length)
        let end = min(offset + UInt64(length), fileLength)
        guard offset < end else { return result }
        let recordSize = UInt64(geometry.recordSize)
        for index in Int(offset / recordSize)...Int((end - 1) / recordSize) {
            let record = first + index
            let recordStart = UInt64(index) * recordSize
            let valid = Int(min(recordSize, fileLength - recordStart))
            let bytes = try await readRecord(record, file: file, valid: valid)
            let from = max(offset, recordStart)
            let to = min(end, recordStart + UInt64(valid))
            result.replaceSubrange(
                Int(from - offset)..<Int(to - offset), with: bytes[Int(from - recordStart)..<Int(to - recordStart)])
        }
        return result
    }

    /// Writes `data` at `offset` of the open file.
    /// - Throws: `BlockDeviceError.notPermitted` unless the head is at end of data;
    ///   `.noSpace` past the capacity.
    public func write(offset: UInt64, data: ByteBuffer) async throws {
        try requireWritable()
        guard header.headFile == header.files.count else {
            throw BlockDeviceError(
                .notPermitted, "tape \(header.barcode): file \(header.headFile) is sealed; writes go to the last file")
        }
        let recordSize = UInt64(geometry.recordSize)
        let start = UInt64(header.openFirstRecord) * recordSize + offset
        let end = start + UInt64(data.readableBytes)
        guard end <= geometry.capacity else {
            throw BlockDeviceError(.noSpace, "tape \(header.barcode) is full (end of tape)")
        }
        guard data.readableBytes > 0 else { return }
        let records = Int(start / recordSize)...Int((end - 1) / recordSize)
        for record in records {
            dirtyRecords.insert(record)
            writing[record, default: 0] += 1
        }
        defer {
            for record in records {
                writing[record]! -= 1
                if writing[record] == 0 { writing[record] = nil }
            }
        }
        // Records of one group are contiguous in the container; a write crossing groups is split.
        var position = start
        while position < end {
            let record = Int(position / recordSize)
            let groupEnd = UInt64((record / geometry.groupRecords + 1) * geometry.groupRecords) * recordSize
            let pieceEnd = min(end, groupEnd)
            let piece = data.getSlice(at: data.readerIndex + Int(position - start), length: Int(pieceEnd - position))!
            let physical = geometry.recordOffset(record) + position % recordSize
            try await container.write(offset: physical, data: piece, fua: false, on: eventLoop).get()
            position = pieceEnd
        }
        openLength = max(openLength, offset + UInt64(data.readableBytes))
    }

    // MARK: - Commits and positioning

    /// Makes every completed write durable: the open file's records, their CRCs and its length.
    public func flush() async throws {
        guard !readOnly else { return }
        try await commit { _ in }
    }

    /// Ends the open file with a filemark when it holds data, and moves the head after it.
    /// Returns whether a file was sealed.
    @discardableResult
    public func sealOpenFile() async throws -> Bool {
        guard header.headFile == header.files.count, openLength > 0 else { return false }
        try await writeFilemark()
        return true
    }

    /// Writes a filemark at end of data: the open file (possibly empty) becomes a sealed file.
    /// - Throws: `BlockDeviceError.notPermitted` unless the head is at end of data.
    public func writeFilemark() async throws {
        try requireWritable()
        try requireEndOfData("write a filemark")
        try await commit(sealing: true) { _ in }
    }

    /// Moves the head to the start of `file` (0 to the number of sealed files, end of data).
    public func position(toFile file: Int) async throws {
        guard (0...header.files.count).contains(file) else {
            throw BlockDeviceError(
                .invalid, "tape \(header.barcode) has \(header.files.count) file(s); the head can go to 0 through that")
        }
        guard file != header.headFile else { return }
        guard !readOnly else {
            header.headFile = file
            return
        }
        try await commit { $0.headFile = file }
    }

    /// Erases the tape from the head on: files there and after are dropped and their records freed.
    /// - Throws: `BlockDeviceError.notPermitted` for a WORM tape.
    public func erase() async throws {
        try requireWritable()
        guard !header.worm else {
            throw BlockDeviceError(.notPermitted, "tape \(header.barcode) is WORM: its files cannot be erased")
        }
        let head = header.headFile
        let firstFreed = header.firstRecord(ofFile: head)
        let lastUsed = max(
            header.openFirstRecord + geometry.recordCount(forLength: openLength), header.endOfSealedRecords)
        try await commit(clearing: firstFreed..<max(firstFreed, lastUsed)) { header in
            header.files.removeSubrange(head...)
            header.openFirstRecord = firstFreed
            header.openLength = 0
            header.headFile = head
        }
        openLength = 0
        dirtyRecords.removeAll()
        if lastUsed > firstFreed {
            let from = geometry.recordOffset(firstFreed)
            try await container.trim(
                offset: from, length: geometry.recordOffset(lastUsed - 1) + UInt64(geometry.recordSize) - from,
                fua: false, on: eventLoop
            ).get()
        }
        try await container.flush(on: eventLoop).get()
        badRecords = badRecords.filter { $0 < firstFreed }
    }

    private func requireWritable() throws {
        guard !readOnly else {
            throw BlockDeviceError(.notPermitted, "tape \(header.barcode) is back from the shelf and read-only")
        }
    }

    private func requireEndOfData(_ what: String) throws {
        guard header.headFile == header.files.count else {
            throw BlockDeviceError(
                .notPermitted,
                "tape \(header.barcode): cannot \(what) at file \(header.headFile); only at end of data (file \(header.files.count))"
            )
        }
    }

    /// Runs one commit after the previous one (see docs/tape-format.md, "Commit"): `change`
    /// edits the header to be written; with `sealing`, the open file becomes a sealed file;
    /// records in `clearing` become unused.
    private func commit(
        sealing: Bool = false, clearing: Range<Int> = 0..<0, _ change: @escaping @Sendable (inout TapeHeader) -> Void
    ) async throws {
        let previous = lastCommit
        let task = Task {
            _ = try? await previous?.value
            try await self.performCommit(sealing: sealing, clearing: clearing, change)
        }
        lastCommit = task
        try await task.value
    }

    private func performCommit(sealing: Bool, clearing: Range<Int>, _ change: (inout TapeHeader) -> Void) async throws {
        let length = openLength
        let first = header.openFirstRecord
        let fileNumber = header.files.count
        let recordsInFile = geometry.recordCount(forLength: length)
        let sequence = header.sequence + 1
        // A record with a write still in flight is committed too (its completed bytes are
        // within the durable length) and stays dirty for the next commit.
        var taken = dirtyRecords.filter { $0 < first + recordsInFile }
        if sealing, recordsInFile > 0 { taken.insert(first + recordsInFile - 1) }
        dirtyRecords.subtract(taken)
        do {
            try await container.flush(on: eventLoop).get()
            var changedGroups: [Int: GroupHeader] = [:]
            for group
                in (clearing.lowerBound / geometry.groupRecords)..<((clearing.upperBound + geometry.groupRecords - 1)
                / geometry.groupRecords)
            {
                var groupHeader = try await self.groupHeader(group)
                for slot in 0..<geometry.groupRecords where clearing.contains(group * geometry.groupRecords + slot) {
                    groupHeader.entries[slot] = .unused
                }
                changedGroups[group] = groupHeader
            }
            for record in taken.sorted() where !clearing.contains(record) {
                let group = record / geometry.groupRecords
                var groupHeader: GroupHeader
                if let changed = changedGroups[group] {
                    groupHeader = changed
                } else {
                    groupHeader = try await self.groupHeader(group)
                }
                let valid = Int(
                    min(UInt64(geometry.recordSize), length - UInt64(record - first) * UInt64(geometry.recordSize)))
                let bytes = try await Self.readBytes(
                    container, offset: geometry.recordOffset(record), length: valid, on: eventLoop)
                let last = record == first + recordsInFile - 1
                groupHeader.entries[record % geometry.groupRecords] = GroupHeader.Entry(
                    file: fileNumber, length: valid, crc: CRC32C.checksum(bytes),
                    markers: sealing && last ? [.record, .filemark] : [.record])
                changedGroups[group] = groupHeader
            }
            // Each group's new header goes to the copy not in force: a torn write leaves the
            // copy in force intact, and a copy newer than the tape header is not in force.
            var written: [Int: (header: GroupHeader, copy: Int)] = [:]
            for (group, var groupHeader) in changedGroups {
                groupHeader.sequence = sequence
                let copy = 1 - (groupHeaders[group]?.copy ?? 0)
                try await container.write(
                    offset: geometry.groupHeaderOffset(group, copy: copy),
                    data: ByteBuffer(bytes: groupHeader.encoded()),
                    fua: false, on: eventLoop
                ).get()
                written[group] = (groupHeader, copy)
            }
            if !changedGroups.isEmpty { try await container.flush(on: eventLoop).get() }
            var next = header
            next.sequence = sequence
            next.openLength = length
            if sealing {
                next.files.append(TapeHeader.File(firstRecord: first, length: length))
                next.openFirstRecord = first + recordsInFile
                next.openLength = 0
                next.headFile = next.files.count
            }
            change(&next)
            try await writeHeader(next)
            header = next
            groupHeaders.merge(written) { $1 }
            if sealing { openLength = 0 }
            dirtyRecords.formUnion(taken.filter { writing[$0] != nil })
        } catch {
            dirtyRecords.formUnion(taken)
            throw error
        }
    }

    private func writeHeader(_ header: TapeHeader) async throws {
        let bytes = header.encoded()
        guard bytes.count <= TapeGeometry.headerSlotSize else {
            throw BlockDeviceError(.noSpace, "tape \(header.barcode) has no room for more files in its header")
        }
        try await container.write(
            offset: geometry.headerOffset(slot: Int(header.sequence % 2)), data: ByteBuffer(bytes: bytes), fua: false,
            on: eventLoop
        ).get()
        try await container.flush(on: eventLoop).get()
    }

    // MARK: - Records

    /// First record and length of a file (the open file's live length at end of data).
    private func extent(of file: Int) -> (first: Int, length: UInt64) {
        let length =
            file < header.files.count ? header.files[file].length : file == header.files.count ? openLength : 0
        return (header.firstRecord(ofFile: file), length)
    }

    /// The first `valid` bytes of a record, checked against its CRC unless written since the last commit.
    private func readRecord(_ record: Int, file: Int, valid: Int) async throws -> [UInt8] {
        let bytes: [UInt8]
        do {
            bytes = try await Self.readBytes(
                container, offset: geometry.recordOffset(record), length: valid, on: eventLoop)
        } catch let error as BlockDeviceError where error.kind == .damaged {
            throw checkFailed(record, "its data is damaged where the tape is kept (\(error.message))")
        }
        if dirtyRecords.contains(record) || writing[record] != nil { return bytes }
        let entry: GroupHeader.Entry
        do {
            entry = try await groupHeader(record / geometry.groupRecords).entries[record % geometry.groupRecords]
        } catch let error as TapeFormatError {
            throw checkFailed(record, error.message)
        }
        guard entry.markers.contains(.record), entry.length == valid, entry.file == file else {
            throw checkFailed(record, "its group header entry does not describe file \(file) with \(valid) bytes")
        }
        guard CRC32C.checksum(bytes) == entry.crc else {
            throw checkFailed(record, "its data does not match its CRC")
        }
        return bytes
    }

    private func checkFailed(_ record: Int, _ why: String) -> BlockDeviceError {
        badRecords.insert(record)
        let message = "tape \(header.barcode): record \(record) failed its check: \(why)"
        logger.error("\(message)")
        return BlockDeviceError(.io, message)
    }

    /// The copy in force of a group's header (read once, then kept).
    private func groupHeader(_ group: Int) async throws -> GroupHeader {
        if let cached = groupHeaders[group] { return cached.header }
        let bytes = try await Self.readBytes(
            container, offset: geometry.groupOffset(group), length: TapeGeometry.groupHeaderSize, on: eventLoop)
        let size = TapeGeometry.groupHeaderCopySize
        let inForce = try GroupHeader.inForce(
            copies: [Array(bytes[0..<size]), Array(bytes[size..<(2 * size)])], group: group,
            records: geometry.groupRecords, committed: header.sequence)
        groupHeaders[group] = inForce
        return inForce.header
    }

    private static func readBytes(
        _ container: any BlockDevice, offset: some BinaryInteger, length: Int, on eventLoop: any EventLoop
    ) async throws -> [UInt8] {
        guard length > 0 else { return [] }
        switch try await container.read(offset: UInt64(offset), length: length, on: eventLoop).get() {
        case .data(let buffer):
            return Array(buffer.readableBytesView)
        case .segments(let segments):
            var bytes: [UInt8] = []
            bytes.reserveCapacity(length)
            for segment in segments {
                switch segment {
                case .data(let buffer): bytes.append(contentsOf: buffer.readableBytesView)
                case .hole(let count): bytes.append(contentsOf: repeatElement(0, count: count))
                }
            }
            return bytes
        }
    }
}
