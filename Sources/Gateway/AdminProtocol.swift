import ChunkEngine

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
        case cacheStatus = "cache.status"
    }

    public var op: Operation
    public var name: String?
    public var size: UInt64?
    public var chunkSize: UInt64?
    public var kind: String?
    public var force: Bool?

    public init(
        op: Operation, name: String? = nil, size: UInt64? = nil, chunkSize: UInt64? = nil, kind: String? = nil,
        force: Bool? = nil
    ) {
        self.op = op
        self.name = name
        self.size = size
        self.chunkSize = chunkSize
        self.kind = kind
        self.force = force
    }

    enum CodingKeys: String, CodingKey {
        case op, name, size, force, kind
        case chunkSize = "chunk_size"
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

    public init(
        error: GatewayError? = nil, volume: VolumeInfo? = nil, volumes: [VolumeInfo]? = nil,
        cache: CacheManager.Status? = nil
    ) {
        self.error = error
        self.volume = volume
        self.volumes = volumes
        self.cache = cache
    }
}

extension VolumeManager {
    /// Carries out one admin request.
    public func handle(_ request: AdminRequest) async -> AdminResponse {
        do throws(GatewayError) {
            switch request.op {
            case .volumeCreate:
                guard let size = request.size else { throw GatewayError(.invalid, "volume.create needs a size") }
                guard let kind = Volume.Kind(rawValue: request.kind ?? "thin") else {
                    throw GatewayError(.invalid, "volume kind '\(request.kind ?? "")' is not thin or cached")
                }
                return AdminResponse(
                    volume: try await create(
                        name: try name(request), size: size, chunkSize: request.chunkSize, kind: kind))
            case .volumeList:
                return AdminResponse(volumes: list())
            case .volumeInfo:
                return AdminResponse(volume: try info(name: try name(request)))
            case .volumeDelete:
                try await delete(name: try name(request), force: request.force ?? false)
                return AdminResponse()
            case .volumeFlush:
                return AdminResponse(volume: try await flush(name: try name(request)))
            case .volumeRecover:
                return AdminResponse(volume: try await recover(name: try name(request)))
            case .cacheStatus:
                return AdminResponse(cache: cache.status())
            }
        } catch {
            return AdminResponse(error: error)
        }
    }

    private func name(_ request: AdminRequest) throws(GatewayError) -> String {
        guard let name = request.name else { throw GatewayError(.invalid, "\(request.op.rawValue) needs a name") }
        return name
    }
}
