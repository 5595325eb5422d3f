import BlockDevice

/// Bounds on what clients may ask of the server: per connection, and who may connect at all.
public struct NBDServerLimits: Sendable, Equatable {
    /// Largest write payload read off the wire; a larger one closes the connection (its bytes
    /// cannot be trusted to be skipped safely).
    public var maximumPayload: Int
    /// Longest request served (at most the device's own maximum), advertised as the maximum
    /// block size; a longer read or write gets EINVAL.
    public var maximumRequest: UInt32
    /// Requests in flight per connection before the server stops reading from it.
    public var maximumRequestsInFlight: Int
    /// Payload and read bytes in flight per connection before the server stops reading from it
    /// (replies not yet taken by the client count too: past 64 MiB of them, reading stops).
    public var maximumBytesInFlight: Int
    /// Connections served at once; more are closed as they arrive.
    public var maximumConnections: Int
    /// TCP clients allowed to connect (unix socket clients are governed by the socket's mode).
    public var allowedNetworks: [IPNetwork]
    /// Exports only some TCP clients (of those allowed to connect) may list and open, by name.
    public var exportNetworks: [String: [IPNetwork]]

    public init(
        maximumPayload: Int = 32 * 1024 * 1024, maximumRequest: UInt32 = 32 * 1024 * 1024,
        maximumRequestsInFlight: Int = 512,
        maximumBytesInFlight: Int = 256 * 1024 * 1024, maximumConnections: Int = 1024,
        allowedNetworks: [IPNetwork] = IPNetwork.loopback, exportNetworks: [String: [IPNetwork]] = [:]
    ) {
        self.maximumPayload = maximumPayload
        self.maximumRequest = maximumRequest
        self.maximumRequestsInFlight = maximumRequestsInFlight
        self.maximumBytesInFlight = maximumBytesInFlight
        self.maximumConnections = maximumConnections
        self.allowedNetworks = allowedNetworks
        self.exportNetworks = exportNetworks
    }
}

extension NBDServerLimits {
    /// What a device offers as this server serves it: no request longer than `maximumRequest`.
    func served(_ capabilities: BlockDeviceCapabilities) -> BlockDeviceCapabilities {
        var served = capabilities
        served.maximumRequest = min(capabilities.maximumRequest, maximumRequest)
        return served
    }
}
