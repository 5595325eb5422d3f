/// Drives used as tape devices (the rmt protocol): one program at a time, excluding the drive's
/// NBD export and the drive verbs, as an NBD client does.
extension Library {
    /// Opens a drive as a tape device. The head is where the drive's last program left it
    /// inside a file, when nothing moved the tape since; otherwise at the start of the tape's
    /// head file (after a seal in progress).
    /// - Throws: `.conflict` when the drive is empty or in use; `.notFound` for no such drive.
    public func openDevice(drive: String) async throws(TapeLibraryError) -> TapeDevice {
        guard let remembered = attachDevice(drive) else {
            throw TapeLibraryError(.conflict, "drive \(drive) is in use by another client; a drive takes one at a time")
        }
        // Held now: the tape cannot be ejected or swapped until the device is closed.
        let (barcode, tape, readOnly): (String, Tape, Bool)
        do {
            (barcode, tape, readOnly) = try loadedTape(in: drive)
        } catch {
            detach(drive)
            throw error
        }
        await settle(drive)
        let file = tape.position.headFile
        let head =
            if let remembered, remembered.barcode == barcode, remembered.head.file == file {
                remembered.head
            } else {
                TapeDevice.Head(file: file, offset: 0)
            }
        return TapeDevice(drive: drive, barcode: barcode, tape: tape, readOnly: readOnly, head: head)
    }

    /// Ends a program's use of a drive: what it wrote is sealed, and the head is remembered for
    /// the drive's next program.
    /// - Throws: when the seal fails (the file is sealed at its durable length when the tape is
    ///   next mounted).
    public func closeDevice(_ device: TapeDevice) async throws {
        defer { detach(device.drive) }
        try await device.finish()
        remember(await device.head, of: device.barcode, in: device.drive)
    }
}
