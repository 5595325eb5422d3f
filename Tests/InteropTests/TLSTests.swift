import Foundation
import Gateway
import NBDServer
import Testing

/// NBD over TLS with real clients: nbdinfo (libnbd, GnuTLS) and qemu-img, in required and
/// optional mode, with and without client certificates.
@Suite struct TLSTests {
    private func settings(_ mode: NBDTLSMode, _ pki: TestCertificates, clientCA: Bool = false)
        -> GatewayConfig.TLSSettings
    {
        var tls = GatewayConfig.TLSSettings()
        tls.mode = mode
        tls.certificate = pki.serverCertificate
        tls.key = pki.serverKey
        tls.clientCA = clientCA ? pki.caCertificate : nil
        return tls
    }

    private func nbdinfo(_ arguments: String...) async throws -> Tool.Result {
        try await Tool.run(["nbdinfo"] + arguments)
    }

    @Test func requiredTLSServesTLSClientsAndRefusesPlaintextOnes() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        let fixture = try await GatewayFixture(tls: settings(.required, pki))
        let port = fixture.gateway.tcpPort!
        let secure = try await nbdinfo("nbds://127.0.0.1:\(port)/demo?tls-certificates=\(pki.clientDirectory)")
        #expect(secure.status == 0 && secure.output.contains("with TLS"), "\(secure.errors)")
        #expect(secure.output.contains("export-size: 67108864"))
        let qemu = try await Tool.run([
            "qemu-img", "info", "--object", "tls-creds-x509,id=tls0,dir=\(pki.clientDirectory),endpoint=client",
            "--image-opts", "driver=nbd,host=127.0.0.1,port=\(port),export=demo,tls-creds=tls0",
        ])
        #expect(qemu.status == 0 && qemu.output.contains("67108864 bytes"), "\(qemu.errors)")

        let plain = try await nbdinfo("nbd://127.0.0.1:\(port)/demo")
        #expect(plain.status != 0 && !plain.output.contains("export-size"))
        let listing = try await nbdinfo("--list", "nbd://127.0.0.1:\(port)/")
        #expect(listing.status != 0 && !listing.output.contains("demo"), "\(listing.output)")
        await fixture.stop()
    }

    @Test func optionalTLSServesBoth() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        let fixture = try await GatewayFixture(tls: settings(.optional, pki))
        let port = fixture.gateway.tcpPort!
        let plain = try await nbdinfo("nbd://127.0.0.1:\(port)/demo")
        #expect(plain.status == 0 && plain.output.contains("without TLS"), "\(plain.errors)")
        let secure = try await nbdinfo("nbds://127.0.0.1:\(port)/demo?tls-certificates=\(pki.clientDirectory)")
        #expect(secure.status == 0 && secure.output.contains("with TLS"), "\(secure.errors)")
        // A large read goes to a plain socket as a region of the volume's file (sendfile), and
        // through TLS as bytes: both read back what was written.
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 9) }
        let plainClient = try await LibNBD.connect("nbd://127.0.0.1:\(port)/demo")
        try await plainClient.write(1 << 20, bytes)
        let plainRead = try await plainClient.read(1 << 20, 1 << 20)
        let secureClient = try await LibNBD.connect(
            "nbds://127.0.0.1:\(port)/demo?tls-certificates=\(pki.clientDirectory)")
        let secureRead = try await secureClient.read(1 << 20, 1 << 20)
        #expect(plainRead == bytes)
        #expect(secureRead == bytes)
        try await plainClient.shutdown()
        try await secureClient.shutdown()
        await fixture.stop()
    }

    @Test func clientCertificatesAreCheckedAgainstTheCA() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        let fixture = try await GatewayFixture(tls: settings(.required, pki, clientCA: true))
        let port = fixture.gateway.tcpPort!
        let known = try await nbdinfo("nbds://127.0.0.1:\(port)/demo?tls-certificates=\(pki.clientDirectory)")
        #expect(known.status == 0, "\(known.errors)")
        let anonymous = try await nbdinfo(
            "nbds://127.0.0.1:\(port)/demo?tls-certificates=\(pki.anonymousClientDirectory)")
        #expect(anonymous.status != 0)
        await fixture.stop()
    }

    @Test func aMissingOrBrokenCertificateStopsTheStart() async throws {
        var tls = GatewayConfig.TLSSettings()
        tls.mode = .required
        await #expect(throws: GatewayError.self) { _ = try await GatewayFixture(tls: tls) }
        tls.certificate = "/nonexistent/cert.pem"
        tls.key = "/nonexistent/key.pem"
        await #expect(throws: GatewayError.self) { _ = try await GatewayFixture(tls: tls) }
    }
}
