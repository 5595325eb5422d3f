import NIOCore
import NIOHTTP1
import ObjectStore

/// Switches a running emulator's faults over its control endpoint (for tests and the
/// `blockgate objstore faults` command).
public enum EmulatorControl {
    /// Posts `name=value` settings (latency_ms, error_rate, outage=on|off; none to just read them).
    /// - Returns: the emulator's summary of its faults.
    /// - Throws: `ObjectStoreError.rejected` with the emulator's message for a bad setting, or
    ///   `HTTPClient.TransportError` when no emulator answers.
    public static func faults(
        host: String, port: Int, settings: [(String, String)], group: any EventLoopGroup
    ) async throws -> String {
        let client = HTTPClient(host: host, port: port, group: group)
        let query = settings.map { "\($0.0)=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&")
        let target = "/_emulator/faults" + (query.isEmpty ? "" : "?" + query)
        let response: HTTPClient.Response
        do {
            response = try await client.execute(
                HTTPClient.Request(method: .POST, target: target), timeout: .seconds(10))
            await client.shutdown()
        } catch {
            await client.shutdown()
            throw error
        }
        let text = String(buffer: response.body).trimmingTrailingNewline
        guard response.status == .ok else { throw ObjectStoreError(.rejected, text) }
        return text
    }
}

extension String {
    fileprivate var trimmingTrailingNewline: String {
        hasSuffix("\n") ? String(dropLast()) : self
    }
}
