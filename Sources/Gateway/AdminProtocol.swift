/// One admin request: a JSON object on one line of the admin socket.
public struct AdminRequest: Codable, Sendable, Equatable {
    /// What is asked.
    public enum Operation: String, Codable, Sendable {
        case volumeCreate = "volume.create"
        case volumeList = "volume.list"
        case volumeInfo = "volume.info"
        case volumeDelete = "volume.delete"
    }

    public var op: Operation
    public var name: String?
    public var size: UInt64?
    public var chunkSize: UInt64?
    public var force: Bool?

    public init(op: Operation, name: String? = nil, size: UInt64? = nil, chunkSize: UInt64? = nil, force: Bool? = nil) {
        self.op = op
        self.name = name
        self.size = size
        self.chunkSize = chunkSize
        self.force = force
    }

    enum CodingKeys: String, CodingKey {
        case op, name, size, force
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

    public init(error: GatewayError? = nil, volume: VolumeInfo? = nil, volumes: [VolumeInfo]? = nil) {
        self.error = error
        self.volume = volume
        self.volumes = volumes
    }
}

extension VolumeManager {
    /// Carries out one admin request.
    public func handle(_ request: AdminRequest) -> AdminResponse {
        do throws(GatewayError) {
            switch request.op {
            case .volumeCreate:
                guard let size = request.size else { throw GatewayError(.invalid, "volume.create needs a size") }
                return AdminResponse(
                    volume: try create(name: try name(request), size: size, chunkSize: request.chunkSize))
            case .volumeList:
                return AdminResponse(volumes: list())
            case .volumeInfo:
                return AdminResponse(volume: try info(name: try name(request)))
            case .volumeDelete:
                try delete(name: try name(request), force: request.force ?? false)
                return AdminResponse()
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
