import BlockDevice
import NIOCore
import Testing

@testable import NBDServer

/// Per-export rules: which exports a TCP client may list, describe and open.
@Suite struct ExportAccessCatalogTests {
    let base = FakeCatalog(devices: ["disk": MemoryDevice(size: 4096), "other": MemoryDevice(size: 4096)])
    let rules = ["disk": [try! IPNetwork("10.0.0.0/8")], "other": [try! IPNetwork("192.168.0.0/16")]]

    @Test func aClientSeesAndOpensOnlyTheExportsItsAddressIsAllowed() throws {
        let catalog = ExportAccessCatalog.forClient(
            try SocketAddress(ipAddress: "10.1.2.3", port: 40000), of: base, rules: rules)
        #expect(catalog.listExports().map(\.name) == ["disk"])
        #expect(try catalog.describeExport(named: "").get().name == "disk")
        #expect(try catalog.openExport(named: "disk").get().name == "disk")
        guard case .failure(let refusal) = catalog.openExport(named: "other") else {
            Issue.record("an export outside the client's networks opened")
            return
        }
        #expect(refusal.kind == .unavailable)
        #expect(refusal.message == "export 'other' is not open to clients at 10.1.2.3")
        guard case .failure(let described) = catalog.describeExport(named: "other") else {
            Issue.record("an export outside the client's networks was described")
            return
        }
        #expect(described == refusal)
    }

    @Test func exportsWithoutRulesAndUnixSocketClientsAreUnrestricted() throws {
        let partial = ExportAccessCatalog.forClient(
            try SocketAddress(ipAddress: "172.16.0.1", port: 40000), of: base, rules: ["other": rules["other"]!])
        #expect(partial.listExports().map(\.name) == ["disk"])
        let local = ExportAccessCatalog.forClient(
            try SocketAddress(unixDomainSocketPath: "/tmp/nbd.sock"), of: base, rules: rules)
        #expect(local.listExports().map(\.name) == ["disk", "other"])
    }
}
