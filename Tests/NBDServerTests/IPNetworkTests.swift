import NIOCore
import Testing

@testable import NBDServer

/// Address ranges for allowing TCP clients.
@Suite struct IPNetworkTests {
    private func address(_ text: String) throws -> SocketAddress { try SocketAddress(ipAddress: text, port: 1) }

    @Test func rangesContainTheirAddressesOnly() throws {
        let private10 = try IPNetwork("10.0.0.0/8")
        #expect(private10.contains(try address("10.200.3.4")))
        #expect(!private10.contains(try address("11.0.0.1")))
        #expect(private10.contains(try address("::ffff:10.1.1.1")))
        #expect(!private10.contains(try address("::1")))
        let host = try IPNetwork("192.0.2.7")
        #expect(host.contains(try address("192.0.2.7")))
        #expect(!host.contains(try address("192.0.2.8")))
        let v6 = try IPNetwork("2001:db8::/32")
        #expect(v6.contains(try address("2001:db8:1::5")))
        #expect(!v6.contains(try address("2001:db9::1")))
        #expect(IPNetwork.loopback.contains { $0.contains(try! address("127.0.0.1")) })
        #expect(IPNetwork.loopback.contains { $0.contains(try! address("::1")) })
        #expect(try IPNetwork("0.0.0.0/0").contains(address("203.0.113.9")))
    }

    @Test func malformedRangesAreRejected() {
        for text in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::1/129", "1.2.3.4/-1", ""] {
            #expect(throws: IPNetwork.Invalid.self, "\(text)") { try IPNetwork(text) }
        }
    }
}
