import BlockDevice

/// Where the server finds its exports; the composition root provides it.
public protocol NBDExportCatalog: Sendable {
    /// Exports to show for NBD_OPT_LIST, in a stable order.
    func listExports() -> [NBDExportListing]
    /// Describes an export for NBD_OPT_INFO without opening it ("" names the default export).
    func describeExport(named name: String) -> Result<NBDExportListing, NBDExportError>
    /// Opens an export for a connection entering transmission.
    func openExport(named name: String) -> Result<NBDExportSession, NBDExportError>
}

/// An export as it is listed and described during negotiation.
public struct NBDExportListing: Sendable, Equatable {
    /// The export's canonical name.
    public var name: String
    /// A human-readable description.
    public var description: String
    /// Size in bytes.
    public var size: UInt64
    /// What the export can do.
    public var capabilities: BlockDeviceCapabilities

    public init(name: String, description: String, size: UInt64, capabilities: BlockDeviceCapabilities) {
        self.name = name
        self.description = description
        self.size = size
        self.capabilities = capabilities
    }
}

/// One connection's use of an export: the device, and what to do when the connection ends.
public struct NBDExportSession: Sendable {
    /// The export's canonical name.
    public let name: String
    /// The device requests go to.
    public let device: any BlockDevice
    /// Called once when the connection ends, after every request has been answered.
    public let onClose: @Sendable () -> Void

    public init(name: String, device: any BlockDevice, onClose: @escaping @Sendable () -> Void = {}) {
        self.name = name
        self.device = device
        self.onClose = onClose
    }
}

/// Why an export cannot be described or opened; the message goes to the client.
public struct NBDExportError: Error, Equatable, Sendable {
    /// How the refusal is reported during negotiation.
    public enum Kind: Sendable, Equatable {
        /// No such export (NBD_REP_ERR_UNKNOWN).
        case unknown
        /// The export exists but may not be used now, e.g. a drive in use (NBD_REP_ERR_POLICY).
        case unavailable
        /// The server is shutting down (NBD_REP_ERR_SHUTDOWN).
        case shutdown
    }

    /// The kind of refusal.
    public var kind: Kind
    /// A message for the client.
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}
