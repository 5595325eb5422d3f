import Crypto
import Glibc
import NIOConcurrencyHelpers
import NIOCore

/// AWS Signature Version 4 (the header form), as S3 uses it: the canonical request, the string
/// to sign, the derived signing key and the signature. Pure functions but for one memo: the
/// signing key of the last day asked for (four HMACs a request otherwise). Checked against
/// AWS's published examples in the tests.
public struct SigV4Signer: Sendable {
    /// An access key pair.
    public struct Credentials: Sendable, Equatable {
        public var accessKeyID: String
        public var secretAccessKey: String

        public init(accessKeyID: String, secretAccessKey: String) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
        }
    }

    /// What is signed of a request.
    public struct Request: Sendable {
        /// HTTP method.
        public var method: String
        /// The path exactly as sent on the wire (already URI-encoded).
        public var encodedPath: String
        /// Query parameters, not encoded.
        public var query: [(name: String, value: String)]
        /// Headers to sign (names in any case); must include host and x-amz-date.
        public var headers: [(name: String, value: String)]
        /// Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
        public var payloadHash: String

        public init(
            method: String, encodedPath: String, query: [(name: String, value: String)],
            headers: [(name: String, value: String)], payloadHash: String
        ) {
            self.method = method
            self.encodedPath = encodedPath
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }
    }

    public let credentials: Credentials
    public let region: String
    public let service: String

    /// The last day's signing key, its bytes (shared by copies of the signer).
    private let lastKey = NIOLockedValueBox<(date: String, key: [UInt8])?>(nil)

    public init(credentials: Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The Authorization header value for `request` at `amzDate` ("YYYYMMDDTHHMMSSZ").
    public func authorization(for request: Request, amzDate: String) -> String {
        let headers = Self.canonicalHeaders(request.headers)
        let signedHeaders = headers.map(\.name).joined(separator: ";")
        let signature = signature(canonicalRequest: canonicalRequest(request, headers: headers), amzDate: amzDate)
        return "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope(amzDate)), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    /// The headers a request to `host` (HOST:PORT) is sent with: x-amz-date,
    /// x-amz-content-sha256, its own `headers`, and the Authorization that signs them all with
    /// Host (which the HTTP client sets itself, so it is not among them).
    public func signedHeaders(
        method: String, host: String, encodedPath: String, query: [(name: String, value: String)],
        headers: [(name: String, value: String)] = [], payloadHash: String, amzDate: String
    ) -> [(name: String, value: String)] {
        let sent = [(name: "x-amz-date", value: amzDate), (name: "x-amz-content-sha256", value: payloadHash)] + headers
        let authorization = self.authorization(
            for: Request(
                method: method, encodedPath: encodedPath, query: query, headers: [(name: "host", value: host)] + sent,
                payloadHash: payloadHash),
            amzDate: amzDate)
        return sent + [(name: "Authorization", value: authorization)]
    }

    /// The hex signature of `request`.
    public func signature(for request: Request, amzDate: String) -> String {
        signature(canonicalRequest: canonicalRequest(request), amzDate: amzDate)
    }

    private func signature(canonicalRequest: String, amzDate: String) -> String {
        let key = signingKey(date: String(amzDate.prefix(8)))
        let toSign = stringToSign(canonicalRequest: canonicalRequest, amzDate: amzDate)
        return Self.hex(HMAC<SHA256>.authenticationCode(for: Array(toSign.utf8), using: key))
    }

    /// The canonical request: method, path, sorted encoded query, sorted trimmed headers, the
    /// signed header names and the payload hash, one per line.
    public func canonicalRequest(_ request: Request) -> String {
        canonicalRequest(request, headers: Self.canonicalHeaders(request.headers))
    }

    /// `canonicalRequest` with the request's canonical headers already made.
    private func canonicalRequest(_ request: Request, headers: [(name: String, value: String)]) -> String {
        let encoded: [(name: String, value: String)] = request.query.map {
            (Self.uriEncode($0.name), Self.uriEncode($0.value))
        }
        let sorted = encoded.sorted { $0.name == $1.name ? $0.value < $1.value : $0.name < $1.name }
        let query: String = sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        let headerLines: String = headers.map { "\($0.name):\($0.value)\n" }.joined()
        let signedNames: String = headers.map(\.name).joined(separator: ";")
        let path = request.encodedPath.isEmpty ? "/" : request.encodedPath
        return [request.method, path, query, headerLines, signedNames, request.payloadHash].joined(separator: "\n")
    }

    /// The string to sign: algorithm, date, credential scope and the hash of the canonical request.
    public func stringToSign(canonicalRequest: String, amzDate: String) -> String {
        ["AWS4-HMAC-SHA256", amzDate, scope(amzDate), Self.sha256Hex(Array(canonicalRequest.utf8))]
            .joined(separator: "\n")
    }

    /// The signing key of a day: HMACs of date, region, service and "aws4_request".
    public func signingKey(date: String) -> SymmetricKey {
        if let last = lastKey.withLockedValue({ $0 }), last.date == date { return SymmetricKey(data: last.key) }
        let key = deriveSigningKey(date: date)
        lastKey.withLockedValue { $0 = (date, key.withUnsafeBytes { Array($0) }) }
        return key
    }

    private func deriveSigningKey(date: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    private func scope(_ amzDate: String) -> String {
        "\(amzDate.prefix(8))/\(region)/\(service)/aws4_request"
    }

    // MARK: - Helpers

    /// Lowercased names, values trimmed with inner runs of spaces collapsed, sorted by name.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> [(name: String, value: String)] {
        var merged: [String: [String]] = [:]
        for header in headers {
            merged[header.name.lowercased(), default: []].append(trimmed(header.value))
        }
        return merged.keys.sorted().map { ($0, merged[$0]!.joined(separator: ",")) }
    }

    /// A header value trimmed, its inner runs of spaces collapsed (most need nothing done).
    private static func trimmed(_ value: String) -> String {
        let space = UInt8(ascii: " ")
        var previous = space
        var clean = value.utf8.last != space
        for byte in value.utf8 where clean {
            clean = !(byte == space && previous == space)
            previous = byte
        }
        return clean ? value : value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    /// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, everything else as
    /// uppercase %XX of its UTF-8 bytes; "/" kept only when `keepSlash`.
    public static func uriEncode(_ text: String, keepSlash: Bool = false) -> String {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                encoded.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                encoded.append(byte)
            default:
                encoded += [UInt8(ascii: "%"), upperDigits[Int(byte >> 4)], upperDigits[Int(byte & 0xF)]]
            }
        }
        return String(decoding: encoded, as: UTF8.self)
    }

    /// Hex SHA-256 of bytes.
    public static func sha256Hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        hex(SHA256.hash(data: Array(bytes)))
    }

    /// Hex SHA-256 of a buffer's readable bytes, hashed where they lie (a body is not copied).
    public static func sha256Hex(_ buffer: ByteBuffer) -> String {
        sha256Hex(pieces: [buffer])
    }

    /// Hex SHA-256 of the readable bytes of buffers one after another, hashed where they lie.
    public static func sha256Hex(pieces: [ByteBuffer]) -> String {
        var hasher = SHA256()
        for piece in pieces { piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) } }
        return hex(hasher.finalize())
    }

    static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in bytes {
            text.append(lowerDigits[Int(byte >> 4)])
            text.append(lowerDigits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static let lowerDigits = Array("0123456789abcdef".utf8)
    private static let upperDigits = Array("0123456789ABCDEF".utf8)

    /// The x-amz-date of a moment: "YYYYMMDDTHHMMSSZ" in UTC.
    public static func amzDate(_ time: time_t) -> String {
        var moment = time
        var parts = tm()
        gmtime_r(&moment, &parts)
        let date = [
            (Int(parts.tm_year) + 1900, 4), (Int(parts.tm_mon) + 1, 2), (Int(parts.tm_mday), 2),
        ].map { String($0.0).leftPadded(to: $0.1) }.joined()
        let clock = [Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec)].map { String($0).leftPadded(to: 2) }
            .joined()
        return "\(date)T\(clock)Z"
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
