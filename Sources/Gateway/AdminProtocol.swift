import ChunkEngine
import Codecs
import TapeLibrary

/// One admin request: a JSON object on one line of the admin socket.
public struct AdminRequest: Codable, Sendable, Equatable {
    /// What is asked.
    public enum Operation: String, Codable, Sendable {
        case volumeCreate = "volume.create"
        case volumeList = "volume.list"
        case volumeInfo = "volume.info"
        case volumeDelete = "volume.delete"
        case volumeFlush = "volume.flush"
        case volumeRecover = "volume.recover"
        case keyRotate = "key.rotate"
        case cacheStatus = "cache.status"
        case tapeCreate = "tape.create"
        case tapeList = "tape.list"
        case tapeInfo = "tape.info"
        case tapeLoad = "tape.load"
        case tapeEject = "tape.eject"
        case tapeMove = "tape.move"
        case tapeExport = "tape.export"
        case tapeRetrieve = "tape.retrieve"
        case tapeDelete = "tape.delete"
        case libraryStatus = "library.status"
        case driveStatus = "drive.status"
        case driveRewind = "drive.rewind"
        case driveEndOfData = "drive.eod"
        case driveForwardFiles = "drive.fsf"
        case driveBackFiles = "drive.bsf"
        case driveWriteFilemark = "drive.weof"
        case driveErase = "drive.erase"
        /// Turns the connection into an rmt session (docs/rmt.md): after the answer, the bytes
        /// on it are the remote tape protocol.
        case driveRemoteTape = "drive.rmt"
        case reload = "reload"
    }

    public var op: Operation
    public var name: String?
    public var size: UInt64?
    public var chunkSize: UInt64?
    public var kind: String?
    public var force: Bool?
    /// Tapes: a barcode, a drive, how many (tapes to create, filemarks to pass), WORM, the pool,
    /// and whether a listing is of the shelf.
    public var barcode: String?
    public var drive: String?
    public var count: Int?
    public var worm: Bool?
    public var pool: String?
    public var shelf: Bool?
    /// Cached volumes: compression and encryption by name (`volume.create`).
    public var compression: String?
    public var encryption: String?
    /// The file holding the new master key (`key.rotate`), read by the daemon.
    public var keyFile: String?
    /// Where a tape goes (`tape.move`, `tape.eject`): "slot N" or "station".
    public var location: String?
    /// How many seconds `volume.flush` waits at most, after the flush, for a cached volume's
    /// uploads to end (it answers as soon as they have).
    public var uploadWait: Double?

    public init(
        op: Operation, name: String? = nil, size: UInt64? = nil, chunkSize: UInt64? = nil, kind: String? = nil,
        force: Bool? = nil, barcode: String? = nil, drive: String? = nil, count: Int? = nil, worm: Bool? = nil,
        pool: String? = nil, shelf: Bool? = nil, compression: String? = nil, encryption: String? = nil,
        keyFile: String? = nil, location: String? = nil, uploadWait: Double? = nil
    ) {
        self.op = op
        self.name = name
        self.size = size
        self.chunkSize = chunkSize
        self.kind = kind
        self.force = force
        self.barcode = barcode
        self.drive = drive
        self.count = count
        self.worm = worm
        self.pool = pool
        self.shelf = shelf
        self.compression = compression
        self.encryption = encryption
        self.keyFile = keyFile
        self.location = location
        self.uploadWait = uploadWait
    }

    enum CodingKeys: String, CodingKey {
        case op, name, size, force, kind, barcode, drive, count, worm, pool, shelf, compression, encryption, location
        case chunkSize = "chunk_size"
        case keyFile = "key_file"
        case uploadWait = "upload_wait"
    }
}

/// The answer to an admin request: a JSON object on one line.
public struct AdminResponse: Codable, Sendable, Equatable {
    /// Set when the request failed.
    public var error: GatewayError?
    /// The volume a request was about.
    public var volume: VolumeInfo?
    /// The volumes, for a listing.
    public var volumes: [VolumeInfo]?
    /// The cache, for `cache.status`.
    public var cache: CacheManager.Status?
    /// The tape a request was about, or the tapes of a listing.
    public var tape: TapeInfo?
    public var tapes: [TapeInfo]?
    /// The library, for `library.status`.
    public var library: LibraryStatus?
    /// The drive a drive request was about.
    public var drive: DriveStatus?
    /// What a request did, in words (a reload).
    public var message: String?

    public init(
        error: GatewayError? = nil, volume: VolumeInfo? = nil, volumes: [VolumeInfo]? = nil,
        cache: CacheManager.Status? = nil, tape: TapeInfo? = nil, tapes: [TapeInfo]? = nil,
        library: LibraryStatus? = nil, drive: DriveStatus? = nil, message: String? = nil
    ) {
        self.error = error
        self.volume = volume
        self.volumes = volumes
        self.cache = cache
        self.tape = tape
        self.tapes = tapes
        self.library = library
        self.drive = drive
        self.message = message
    }
}

extension VolumeManager {
    /// Carries out one volume or cache request.
    func handle(_ request: AdminRequest) async -> AdminResponse {
        do throws(GatewayError) {
            switch request.op {
            case .volumeCreate:
                guard let size = request.size else { throw GatewayError(.invalid, "volume.create needs a size") }
                guard let kind = Volume.Kind(rawValue: request.kind ?? "thin") else {
                    throw GatewayError(.invalid, "volume kind '\(request.kind ?? "")' is not thin or cached")
                }
                return AdminResponse(
                    volume: try await create(
                        name: try name(request), size: size, chunkSize: request.chunkSize, kind: kind,
                        format: try formatRequest(request, kind: kind)))
            case .volumeList:
                return AdminResponse(volumes: list())
            case .volumeInfo:
                return AdminResponse(volume: try await detailedInfo(name: try name(request)))
            case .volumeDelete:
                try await delete(name: try name(request), force: request.force ?? false)
                return AdminResponse()
            case .volumeFlush:
                return AdminResponse(
                    volume: try await flush(name: try name(request), uploadWait: try uploadWait(request)))
            case .volumeRecover:
                return AdminResponse(volume: try await recover(name: try name(request)))
            case .cacheStatus:
                return AdminResponse(cache: cache.status())
            case .keyRotate:
                guard let keyFile = request.keyFile else { throw GatewayError(.invalid, "key.rotate needs a key_file") }
                return AdminResponse(message: try await rotateMasterKey(newKeyFile: keyFile))
            default:
                throw GatewayError(.invalid, "\(request.op.rawValue) is not a volume request")
            }
        } catch {
            return AdminResponse(error: error)
        }
    }

    /// The compression and encryption a `volume.create` asks for, checked.
    private func formatRequest(_ request: AdminRequest, kind: Volume.Kind) throws(GatewayError)
        -> ObjectFormatChoice.Request
    {
        var format = ObjectFormatChoice.Request()
        if let text = request.compression {
            guard let compression = Compression(parsing: text) else {
                throw GatewayError(.invalid, "compression '\(text)' is not off, lz4, zstd or zstd:LEVEL (1-19)")
            }
            format.compression = compression
        }
        if let text = request.encryption {
            guard let cipher = Cipher(parsing: text) else {
                throw GatewayError(.invalid, "encryption '\(text)' is not off, aes-256-gcm or chacha20-poly1305")
            }
            format.cipher = cipher
        }
        guard kind == .cached || format == .init() else {
            throw GatewayError(
                .invalid, "compression and encryption apply to what goes into the object store: use --kind cached")
        }
        return format
    }

    private func name(_ request: AdminRequest) throws(GatewayError) -> String {
        guard let name = request.name else { throw GatewayError(.invalid, "\(request.op.rawValue) needs a name") }
        return name
    }

    /// How long a flush waits for the uploads (nil: not at all); at most an hour a request.
    private func uploadWait(_ request: AdminRequest) throws(GatewayError) -> Duration? {
        guard let seconds = request.uploadWait else { return nil }
        guard seconds.isFinite, (0...3600).contains(seconds) else {
            throw GatewayError(.invalid, "upload_wait must be between 0 and 3600 seconds, not \(seconds)")
        }
        return .seconds(seconds)
    }
}
