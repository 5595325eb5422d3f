/// An object key that cannot escape its namespace: 1–1024 bytes of printable ASCII other than
/// backslash, "/"-separated segments none of which is empty, "." or "..".
public struct ObjectKey: Sendable, Hashable, CustomStringConvertible {
    /// The key as stored.
    public let rawValue: String

    /// - Throws: `ObjectStoreError.rejected` for a key that is empty, too long, absolute, has an
    ///   empty, "." or ".." segment, or a control, non-ASCII or backslash character.
    public init(_ rawValue: String) throws(ObjectStoreError) {
        let bytes = Array(rawValue.utf8)
        guard (1...1024).contains(bytes.count),
            bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\\") })
        else {
            throw ObjectStoreError(.rejected, "object key '\(rawValue)' has characters outside printable ASCII")
        }
        let segments = rawValue.split(separator: "/", omittingEmptySubsequences: false)
        guard segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw ObjectStoreError(.rejected, "object key '\(rawValue)' has an empty, '.' or '..' segment")
        }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
}
