import BlockDevice

/// The drive verbs (status, positioning, filemarks, erase) and drive sessions for NBD clients.
extension Library {
    /// What a drive holds and where its head is.
    public func driveStatus(_ drive: String) async throws(TapeLibraryError) -> DriveStatus {
        try requireDrive(drive)
        await settle(drive)
        var status = self.status().drives.first { $0.drive == drive }!
        if let (_, tape, _) = try? loadedTape(in: drive), status.attached {
            status.block = await tape.status.openLength > 0 ? Int(await tape.status.openLength) / 512 : 0
        }
        return status
    }

    /// Moves the head to the start of the tape.
    public func rewind(drive: String) async throws(TapeLibraryError) {
        try await reposition(drive) { _ in 0 }
    }

    /// Moves the head to end of data, where writes append a file.
    public func endOfData(drive: String) async throws(TapeLibraryError) {
        try await reposition(drive) { $0.files }
    }

    /// Moves the head forward over `count` filemarks (to the start of a later file).
    public func forwardFiles(drive: String, count: Int) async throws(TapeLibraryError) {
        try await reposition(drive) { $0.headFile + count }
    }

    /// Moves the head back `count` files (to the start of an earlier file).
    public func backFiles(drive: String, count: Int) async throws(TapeLibraryError) {
        try await reposition(drive) { $0.headFile - count }
    }

    /// Writes a filemark at end of data: the open file, possibly empty, is sealed.
    public func writeFilemark(drive: String) async throws(TapeLibraryError) {
        try await detachedOperation(drive, writing: true) { tape in try await tape.writeFilemark() }
    }

    /// Erases from the head to the end of the tape.
    public func erase(drive: String) async throws(TapeLibraryError) {
        try await detachedOperation(drive, writing: true) { tape in try await tape.erase() }
    }

    /// Where a drive's head is for the next client: after the seal in progress, if one is.
    public func headPosition(drive: String) throws(TapeLibraryError) -> (
        barcode: String, position: Tape.Position, readOnly: Bool
    ) {
        let (barcode, tape, readOnly) = try loadedTape(in: drive)
        return (barcode, pendingSeal(drive)?.position ?? tape.position, readOnly)
    }

    /// Opens a drive for one NBD client. When the previous client's file is still being sealed,
    /// the session starts where the head will be and its requests wait for the seal.
    /// - Throws: `.conflict` when the drive is empty or another client has it.
    public func openSession(drive: String) throws(TapeLibraryError) -> DriveSession {
        let (_, tape, readOnly) = try loadedTape(in: drive)
        guard attach(drive) else {
            throw TapeLibraryError(.conflict, "drive \(drive) is in use by another client; a drive takes one at a time")
        }
        let pending = pendingSeal(drive)
        return DriveSession(
            tape: tape, position: pending?.position ?? tape.position, readOnly: readOnly, after: pending?.task)
    }

    /// Ends a client's session: a file it wrote is sealed (made durable, filemark written, head
    /// moved after it); the next client and the drive verbs wait for that.
    public func closeSession(drive: String, _ session: DriveSession) {
        defer { detach(drive) }
        // A session that wrote waited for any earlier seal first, so the position is current.
        let tape = session.tape
        let position = tape.position
        guard session.hasWritten, position.headFile == position.files, position.openLength > 0 else { return }
        let logger = self.logger
        let task = Task {
            do {
                try await tape.sealOpenFile()
                return true
            } catch {
                logger.error("drive \(drive): sealing the file the client wrote failed: \(error)")
                return false
            }
        }
        sealing(drive, task, position: position.afterSealing)
    }

    private func reposition(_ drive: String, to target: @escaping @Sendable (Tape.Position) -> Int)
        async throws(TapeLibraryError)
    {
        try await detachedOperation(drive, writing: false) { tape in
            try await tape.position(toFile: target(tape.position))
        }
    }

    /// Runs `body` on the drive's tape with the drive held as if attached, so that no client
    /// can connect meanwhile.
    private func detachedOperation(
        _ drive: String, writing: Bool, _ body: @Sendable (Tape) async throws -> Void
    ) async throws(TapeLibraryError) {
        let (barcode, tape, readOnly) = try loadedTape(in: drive)
        if writing, readOnly {
            throw TapeLibraryError(.conflict, "tape \(barcode) was retrieved from the shelf and is read-only")
        }
        try await attachForAdmin(drive)
        defer { detach(drive) }
        await settle(drive)
        do {
            try await body(tape)
        } catch let error as BlockDeviceError {
            throw TapeLibraryError(
                error.kind == .invalid || error.kind == .notPermitted ? .conflict : .failed, error.message)
        } catch {
            throw TapeLibraryError(.failed, "drive \(drive): \(error)")
        }
    }
}
