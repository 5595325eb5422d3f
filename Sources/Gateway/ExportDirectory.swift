import NBDServer
import TapeLibrary

/// The NBD server's view of every export: volumes by name (read-only where configured), and
/// the library's drives as `drive/<name>` (one client at a time; no tape loaded is a clear refusal).
struct ExportDirectory: NBDExportCatalog {
    static let drivePrefix = "drive/"

    let volumes: VolumeManager
    let library: Library
    let readOnlyExports: Set<String>

    func listExports() -> [NBDExportListing] {
        volumes.listExports().map(restricted)
            + library.configuration.driveNames.compactMap {
                try? describeDrive($0).get()
            }
    }

    func describeExport(named name: String) -> Result<NBDExportListing, NBDExportError> {
        guard let drive = driveName(name) else { return volumes.describeExport(named: name).map(restricted) }
        return describeDrive(drive)
    }

    func openExport(named name: String) -> Result<NBDExportSession, NBDExportError> {
        guard let drive = driveName(name) else {
            return volumes.openExport(named: name).map { session in
                guard readOnlyExports.contains(session.name) else { return session }
                return NBDExportSession(
                    name: session.name, device: ReadOnlyDevice(session.device), onClose: session.onClose)
            }
        }
        do {
            let session = try library.openSession(drive: drive)
            return .success(
                NBDExportSession(name: name, device: session) { [library] in
                    library.closeSession(drive: drive, session)
                })
        } catch {
            return .failure(exportError(error))
        }
    }

    /// A volume's listing, read-only when configured so.
    private func restricted(_ listing: NBDExportListing) -> NBDExportListing {
        guard readOnlyExports.contains(listing.name) else { return listing }
        var listing = listing
        listing.capabilities = ReadOnlyDevice.restrict(listing.capabilities)
        return listing
    }

    private func driveName(_ name: String) -> String? {
        name.hasPrefix(Self.drivePrefix) ? String(name.dropFirst(Self.drivePrefix.count)) : nil
    }

    private func describeDrive(_ drive: String) -> Result<NBDExportListing, NBDExportError> {
        do {
            let (barcode, position, readOnly) = try library.headPosition(drive: drive)
            let capabilities = DriveSession.capabilities(readOnly: readOnly)
            return .success(
                NBDExportListing(
                    name: Self.drivePrefix + drive,
                    description: "tape drive \(drive): tape \(barcode), file \(position.headFile)",
                    size: position.spaceFromHead, capabilities: capabilities))
        } catch {
            return .failure(exportError(error))
        }
    }

    private func exportError(_ error: TapeLibraryError) -> NBDExportError {
        NBDExportError(error.kind == .notFound ? .unknown : .unavailable, error.message)
    }
}
