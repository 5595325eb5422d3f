import NBDServer
import NIOCore
import NIOSSL

/// Builds the NBD server's TLS from the configuration: one TLS context from the PEM files,
/// loaded at start so that a bad certificate stops the daemon before it serves.
enum TLSSetup {
    /// The server's TLS, or nil when TLS is off.
    /// - Throws: `GatewayError.invalid` for a missing certificate or key, or files that do not load.
    static func make(_ settings: GatewayConfig.TLSSettings) throws(GatewayError) -> NBDServerTLS? {
        guard settings.mode != .off else { return nil }
        guard let certificatePath = settings.certificate, let keyPath = settings.key else {
            throw GatewayError(
                .invalid, "TLS \(settings.mode.rawValue) needs a certificate and a key: --tls-cert PEM --tls-key PEM")
        }
        let context: NIOSSLContext
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
            let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            if let clientCA = settings.clientCA {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA))
                configuration.certificateVerification = .noHostnameVerification
            }
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw GatewayError(
                .invalid,
                "cannot load the TLS certificate \(certificatePath), key \(keyPath)"
                    + (settings.clientCA.map { " or CA \($0)" } ?? "") + ": \(error)")
        }
        return NBDServerTLS(mode: settings.mode) { NIOSSLServerHandler(context: context) }
    }
}
