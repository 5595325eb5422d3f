import Foundation

/// Where cached volumes keep their data: `file:///path` (the embedded store) or
/// `s3://BUCKET?endpoint=http://HOST:PORT[&region=R]` (any S3-compatible service, path-style).
public enum ObjectStoreLocation: Sendable, Equatable {
    case file(path: String)
    case s3(bucket: String, host: String, port: Int, region: String)

    /// Parses a location.
    /// - Throws: `GatewayError.invalid` naming the accepted forms.
    public static func parse(_ text: String) throws(GatewayError) -> ObjectStoreLocation {
        let forms = "use file:///path or s3://BUCKET?endpoint=http://127.0.0.1:9000&region=us-east-1"
        guard let url = URLComponents(string: text), let scheme = url.scheme else {
            throw GatewayError(.invalid, "object store '\(text)' is not a URL; \(forms)")
        }
        switch scheme {
        case "file":
            guard !url.path.isEmpty else {
                throw GatewayError(.invalid, "object store '\(text)' names no directory; \(forms)")
            }
            return .file(path: url.path)
        case "s3":
            let query = url.queryItems ?? []
            guard let bucket = url.host, !bucket.isEmpty,
                let endpoint = query.first(where: { $0.name == "endpoint" })?.value.flatMap(
                    URLComponents.init(string:)),
                endpoint.scheme == "http", let host = endpoint.host
            else {
                throw GatewayError(.invalid, "object store '\(text)' needs a bucket and an http endpoint; \(forms)")
            }
            guard (3...63).contains(bucket.count),
                bucket.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") })
            else {
                throw GatewayError(
                    .invalid, "bucket name '\(bucket)' is not valid: use 3-63 lowercase letters, digits, '-' or '.'")
            }
            let region = query.first { $0.name == "region" }?.value ?? "us-east-1"
            return .s3(bucket: bucket, host: host, port: endpoint.port ?? 80, region: region)
        default:
            throw GatewayError(.invalid, "object store scheme '\(scheme)' is not supported; \(forms)")
        }
    }
}
