import TapeLibrary

/// Carries out admin requests: volume and cache requests go to the volume manager, tape,
/// library and drive requests to the tape library, reloads to the config reloader.
public struct AdminHandler: Sendable {
    let volumes: VolumeManager
    let library: Library
    let reloader: ConfigReloader

    /// Answers one request.
    public func handle(_ request: AdminRequest) async -> AdminResponse {
        do throws(TapeLibraryError) {
            switch request.op {
            case .volumeCreate, .volumeList, .volumeInfo, .volumeDelete, .volumeFlush, .volumeRecover, .cacheStatus,
                .keyRotate:
                return await volumes.handle(request)
            case .reload:
                do {
                    return AdminResponse(message: try reloader.reload())
                } catch {
                    return AdminResponse(error: error)
                }
            case .tapeCreate:
                guard let size = request.size else { throw TapeLibraryError(.invalid, "tape.create needs a size") }
                let barcodes =
                    if let prefix = request.barcode, let count = request.count {
                        try library.barcodes(prefix: prefix, count: count)
                    } else {
                        [try barcode(request)]
                    }
                var created: [TapeInfo] = []
                for barcode in barcodes {
                    created.append(
                        try await library.create(
                            barcode: barcode, size: size, worm: request.worm ?? false, pool: request.pool))
                }
                return AdminResponse(tape: created.count == 1 ? created[0] : nil, tapes: created)
            case .tapeList:
                return AdminResponse(tapes: await library.list(shelf: request.shelf ?? false))
            case .tapeInfo:
                return AdminResponse(tape: try await library.info(barcode: try barcode(request)))
            case .tapeLoad:
                try await library.load(barcode: try barcode(request), drive: try drive(request))
                return AdminResponse(drive: try await library.driveStatus(try drive(request)))
            case .tapeEject:
                try await library.eject(drive: try drive(request), to: try request.location.map(location))
                return AdminResponse(drive: try await library.driveStatus(try drive(request)))
            case .tapeMove:
                guard let text = request.location else {
                    throw TapeLibraryError(.invalid, "tape.move needs a location (\"slot N\" or \"station\")")
                }
                try library.transfer(barcode: try barcode(request), to: try location(text))
                return AdminResponse(tape: try await library.info(barcode: try barcode(request), readHeader: false))
            case .tapeExport:
                try await library.export(barcode: try barcode(request))
                return AdminResponse(tape: try await library.info(barcode: try barcode(request), readHeader: false))
            case .tapeRetrieve:
                let note = try await library.retrieve(barcode: try barcode(request))
                return AdminResponse(
                    tape: try await library.info(barcode: try barcode(request), readHeader: false), message: note)
            case .tapeDelete:
                try await library.delete(barcode: try barcode(request), force: request.force ?? false)
                return AdminResponse()
            case .driveRemoteTape:
                throw TapeLibraryError(.invalid, "drive.rmt must be the first request of its connection")
            case .libraryStatus:
                return AdminResponse(library: library.status())
            case .driveStatus:
                return AdminResponse(drive: try await library.driveStatus(try drive(request)))
            case .driveRewind, .driveEndOfData, .driveForwardFiles, .driveBackFiles, .driveWriteFilemark, .driveErase:
                let drive = try drive(request)
                let count = request.count ?? 1
                guard count >= 1 else { throw TapeLibraryError(.invalid, "the count must be 1 or more") }
                switch request.op {
                case .driveRewind: try await library.rewind(drive: drive)
                case .driveEndOfData: try await library.endOfData(drive: drive)
                case .driveForwardFiles: try await library.forwardFiles(drive: drive, count: count)
                case .driveBackFiles: try await library.backFiles(drive: drive, count: count)
                case .driveWriteFilemark: try await library.writeFilemark(drive: drive)
                default: try await library.erase(drive: drive)
                }
                return AdminResponse(drive: try await library.driveStatus(drive))
            }
        } catch {
            let kind: GatewayError.Kind =
                switch error.kind {
                case .invalid: .invalid
                case .notFound: .notFound
                case .conflict: .conflict
                case .failed: .failed
                }
            return AdminResponse(error: GatewayError(kind, error.message))
        }
    }

    private func barcode(_ request: AdminRequest) throws(TapeLibraryError) -> String {
        guard let barcode = request.barcode else {
            throw TapeLibraryError(.invalid, "\(request.op.rawValue) needs a barcode")
        }
        return barcode
    }

    private func location(_ text: String) throws(TapeLibraryError) -> TapeLocation {
        guard let location = TapeLocation(stored: text), location == .station || location.slot != nil else {
            throw TapeLibraryError(.invalid, "'\(text)' is not a place for a tape; say \"slot N\" or \"station\"")
        }
        return location
    }

    private func drive(_ request: AdminRequest) throws(TapeLibraryError) -> String {
        guard let drive = request.drive else {
            throw TapeLibraryError(.invalid, "\(request.op.rawValue) needs a drive")
        }
        return drive
    }
}
