/// What negotiation settled for the transmission phase of one connection.
public struct NBDSessionOptions: Sendable, Equatable {
    /// Replies with payloads are structured chunks.
    public var structuredReplies: Bool
    /// Requests and replies use 64-bit extended headers (implies structured chunks).
    public var extendedHeaders: Bool
    /// The id of base:allocation if the client selected it for this export.
    public var allocationContextID: UInt32?

    public init(structuredReplies: Bool = false, extendedHeaders: Bool = false, allocationContextID: UInt32? = nil) {
        self.structuredReplies = structuredReplies
        self.extendedHeaders = extendedHeaders
        self.allocationContextID = allocationContextID
    }

    /// Whether replies are chunks (structured or extended) rather than simple replies.
    public var usesChunks: Bool { structuredReplies || extendedHeaders }
}
