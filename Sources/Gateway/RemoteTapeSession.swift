import BlockDevice
import Glibc
import Logging
import RemoteTape
import TapeLibrary

/// One rmt client's session: carries out its requests in order on the drive it opened, as a
/// no-rewind tape device, and turns every failure into the errno a tape device would give.
/// Owns the open device (at most one) and the protocol version the client chose.
actor RemoteTapeSession {
    private let library: Library
    private let logger: Logger
    private var device: TapeDevice?
    /// 0: operation numbers are Linux's MTIOCTOP ones; 1: the portable ones (after `I-1`).
    private var version = 0
    /// The largest read answered at once.
    static let maximumRead = 1 << 20

    init(library: Library, logger: Logger) {
        self.library = library
        self.logger = logger
    }

    /// The reply to one request.
    func answer(_ request: RemoteTapeRequest) async -> RemoteTapeReply {
        do {
            return try await carryOut(request)
        } catch let failure as Errno {
            return .error(errno: failure.code, message: failure.message)
        } catch let failure as TapeDevice.Failure {
            let code: Int32 =
                switch failure.kind {
                case .io: EIO
                case .notPermitted: EPERM
                case .readOnly: EROFS
                case .noSpace: ENOSPC
                case .invalid: EINVAL
                }
            return .error(errno: code, message: failure.message)
        } catch let failure as BlockDeviceError {
            logger.warning("rmt: \(failure.message)")
            let code: Int32 =
                switch failure.kind {
                case .noSpace: ENOSPC
                case .notPermitted: EPERM
                case .invalid, .notSupported: EINVAL
                default: EIO
                }
            return .error(errno: code, message: failure.message)
        } catch {
            logger.warning("rmt: \(error)")
            return .error(errno: EIO, message: "\(error)")
        }
    }

    /// Closes the open device, if any (the client went).
    func end() async {
        _ = try? await closeDevice()
    }

    private func carryOut(_ request: RemoteTapeRequest) async throws -> RemoteTapeReply {
        switch request {
        case .open(let name, let access):
            try await closeDevice()
            device = try await open(name, access: access)
            return .number(0)
        case .close:
            try await closeDevice()
            return .number(0)
        case .seek:
            // As Linux's st driver: a tape is not seekable, seeking succeeds and does nothing.
            _ = try requireDevice()
            return .number(0)
        case .read(let count):
            return .data(try await requireDevice().read(count: min(count, Self.maximumRead)))
        case .write(let data):
            try await requireDevice().write(data)
            return .number(data.readableBytes)
        case .operation(-1, _):
            version = 1
            return .number(1)
        case .operation(let code, let count):
            let operation =
                version == 0 ? TapeOperation.linux(code: code, count: count) : .portable(code: code, count: count)
            guard let operation else { throw Errno(EINVAL, "tape operation \(code) is not supported") }
            try await perform(operation, on: try requireDevice())
            return .number(0)
        case .extendedOperation(let code, let count):
            guard let operation = TapeOperation.extended(code: code, count: count) else {
                throw Errno(EINVAL, "extended tape operation \(code) is not supported")
            }
            try await perform(operation, on: try requireDevice())
            return .number(0)
        case .status:
            return .data(try await status().encoded)
        case .statusField(let letter):
            guard let value = try await status().field(letter) else {
                throw Errno(EINVAL, "no status field '\(Character(Unicode.Scalar(letter)))'")
            }
            return .number(value)
        }
    }

    private func open(_ name: String, access: RemoteTapeRequest.Access) async throws -> TapeDevice {
        let path = name.hasPrefix("/") ? String(name.dropFirst()) : name
        guard path.hasPrefix("drive/") else {
            throw Errno(ENOENT, "'\(name)' is not a drive; name one as drive/0")
        }
        let drive = String(path.dropFirst("drive/".count))
        do {
            let loaded = try library.loadedTape(in: drive)
            if access.writes, loaded.readOnly {
                throw Errno(EROFS, "tape \(loaded.barcode) was retrieved from the shelf and is read-only")
            }
        } catch let error as TapeLibraryError {
            throw Errno(error.kind == .notFound ? ENOENT : error.kind == .conflict ? ENOMEDIUM : EIO, error.message)
        }
        do {
            let device = try await library.openDevice(drive: drive)
            logger.info("rmt: opened drive \(drive) (tape \(device.barcode))")
            return device
        } catch {
            throw Errno(error.kind == .conflict ? EBUSY : EIO, error.message)
        }
    }

    private func closeDevice() async throws {
        guard let device else { return }
        self.device = nil
        do {
            try await library.closeDevice(device)
            logger.info("rmt: closed drive \(device.drive)")
        } catch {
            logger.error("rmt: drive \(device.drive): sealing the file the client wrote failed: \(error)")
            throw error
        }
    }

    private func requireDevice() throws -> TapeDevice {
        guard let device else { throw Errno(EBADF, "no drive is open; open one first (O drive/0)") }
        return device
    }

    private func perform(_ operation: TapeOperation, on device: TapeDevice) async throws {
        switch operation {
        case .writeFilemarks(let count): try await device.writeFilemarks(count)
        case .forwardFiles(let count): try await device.forwardFiles(count)
        case .backFiles(let count): try await device.backFiles(count)
        case .forwardFilesToMark(let count): try await device.forwardFilesToMark(count)
        case .backFilesToMark(let count): try await device.backFilesToMark(count)
        case .forwardRecords(let count): try await device.forwardRecords(count)
        case .backRecords(let count): try await device.backRecords(count)
        case .rewind, .offline, .retension: try await device.rewind()
        case .endOfData: try await device.endOfData()
        case .erase: try await device.erase()
        case .setBlockSize(let size): try await device.setBlockSize(size)
        case .noOperation, .accepted: break
        }
    }

    private func status() async throws -> MagneticTapeStatus {
        let status = try await requireDevice().status()
        var general: MagneticTapeStatus.GeneralStatus = [.online, .immediateReport]
        if status.beginningOfTape { general.insert(.beginningOfTape) }
        if status.afterFilemark { general.insert(.afterFilemark) }
        if status.endOfData { general.insert(.endOfData) }
        if status.endOfTape { general.insert(.endOfTape) }
        if status.writeProtected { general.insert(.writeProtected) }
        return MagneticTapeStatus(
            file: Int32(clamping: status.file), block: Int32(clamping: status.block), blockSize: status.blockSize,
            general: general)
    }

    /// A failure with the errno to send.
    private struct Errno: Error {
        let code: Int32
        let message: String

        init(_ code: Int32, _ message: String) {
            self.code = code
            self.message = message
        }
    }
}
