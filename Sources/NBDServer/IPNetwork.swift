import NIOCore

/// An address range in CIDR notation ("127.0.0.0/8", "::1/128", "192.0.2.7"): which TCP clients
/// may connect.
public struct IPNetwork: Sendable, Equatable, CustomStringConvertible {
    /// The network's address bytes (4 for IPv4, 16 for IPv6).
    private let bytes: [UInt8]
    private let prefixLength: Int

    /// The loopback ranges, the default for TCP clients.
    public static let loopback = [try! IPNetwork("127.0.0.0/8"), try! IPNetwork("::1/128")]

    /// - Throws: `IPNetwork.Invalid` for text that is not an address with an optional /prefix.
    public init(_ text: String) throws(Invalid) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let address = try? SocketAddress(ipAddress: first, port: 0) else {
            throw Invalid(text: text)
        }
        let bytes = Self.bytes(of: address)
        let length = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
        guard let length, (0...bytes.count * 8).contains(length) else { throw Invalid(text: text) }
        self.bytes = bytes
        self.prefixLength = length
    }

    /// Whether `address` lies in the range; an IPv4 address mapped into IPv6 counts as IPv4.
    public func contains(_ address: SocketAddress) -> Bool {
        var candidate = Self.bytes(of: address)
        if candidate.count == 16, bytes.count == 4, candidate.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] {
            candidate = Array(candidate.suffix(4))
        }
        guard candidate.count == bytes.count else { return false }
        for bit in 0..<prefixLength {
            let mask = UInt8(0x80) >> UInt8(bit % 8)
            if candidate[bit / 8] & mask != bytes[bit / 8] & mask { return false }
        }
        return true
    }

    public var description: String {
        let text =
            bytes.count == 4
            ? bytes.map(String.init).joined(separator: ".")
            : stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        return "\(text)/\(prefixLength)"
    }

    private static func bytes(of address: SocketAddress) -> [UInt8] {
        switch address {
        case .v4(let v4): withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6): withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        case .unixDomainSocket: []
        }
    }

    /// Text that is not an address range.
    public struct Invalid: Error, CustomStringConvertible {
        public let text: String
        public var description: String { "'\(text)' is not an address or range like 127.0.0.0/8 or ::1/128" }
    }
}
