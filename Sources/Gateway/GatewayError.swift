/// A failed admin or startup operation, with a message that says what to do.
public struct GatewayError: Error, Equatable, CustomStringConvertible, Sendable, Codable {
    /// What kind of failure, which decides the CLI's exit code.
    public enum Kind: String, Sendable, Codable {
        /// The request was malformed or out of range.
        case invalid
        /// The named thing does not exist.
        case notFound
        /// The request conflicts with the current state (name taken, clients attached).
        case conflict
        /// Something failed inside the gateway (disk, database).
        case failed
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
