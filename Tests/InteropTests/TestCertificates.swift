import Foundation

/// A throwaway PKI made with openssl: a CA, a server certificate for 127.0.0.1 and localhost,
/// and a client certificate, laid out as libnbd and qemu expect (`ca-cert.pem`,
/// `client-cert.pem`, `client-key.pem` in a directory).
struct TestCertificates {
    let directory: String
    var caCertificate: String { directory + "/ca-cert.pem" }
    var serverCertificate: String { directory + "/server-cert.pem" }
    var serverKey: String { directory + "/server-key.pem" }
    /// What a client that trusts the CA and has a certificate needs.
    var clientDirectory: String { directory + "/client" }
    /// What a client that trusts the CA but has no certificate needs.
    var anonymousClientDirectory: String { directory + "/anonymous" }

    static func make() async throws -> TestCertificates {
        let certificates = TestCertificates(
            directory: NSTemporaryDirectory() + "blockgate-pki-\(UUID().uuidString.prefix(8))")
        let directory = certificates.directory
        for folder in [directory, certificates.clientDirectory, certificates.anonymousClientDirectory] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(
            toFile: directory + "/server.ext", atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(toFile: directory + "/client.ext", atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory + "/ca-key.pem", "-out",
                certificates.caCertificate, "-days", "2", "-subj", "/CN=blockgate test CA",
            ],
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", certificates.serverKey, "-out",
                directory + "/server.csr", "-subj", "/CN=localhost",
            ],
            [
                "x509", "-req", "-in", directory + "/server.csr", "-CA", certificates.caCertificate, "-CAkey",
                directory + "/ca-key.pem", "-CAcreateserial", "-out", certificates.serverCertificate, "-days", "2",
                "-extfile", directory + "/server.ext",
            ],
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", certificates.clientDirectory + "/client-key.pem",
                "-out", directory + "/client.csr", "-subj", "/CN=blockgate test client",
            ],
            [
                "x509", "-req", "-in", directory + "/client.csr", "-CA", certificates.caCertificate, "-CAkey",
                directory + "/ca-key.pem", "-CAcreateserial", "-out",
                certificates.clientDirectory + "/client-cert.pem", "-days", "2", "-extfile", directory + "/client.ext",
            ],
        ]
        for step in steps {
            let result = try await Tool.run(["openssl"] + step)
            guard result.status == 0 else { throw Failure(description: "openssl \(step[0]): \(result.errors)") }
        }
        for folder in [certificates.clientDirectory, certificates.anonymousClientDirectory] {
            try FileManager.default.copyItem(atPath: certificates.caCertificate, toPath: folder + "/ca-cert.pem")
        }
        return certificates
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }
}
