import Foundation
import LocalIO
import Testing

/// Random writes, trims, zeroing, flushes and reads through libnbd over the server, on two
/// connections at once (multi-conn), compared with an in-memory model; both I/O backends.
@Suite(.serialized) struct ModelOverNBDTests {
    static let size = 8 << 20

    @Test(arguments: [FileIOBackendChoice.uring, .posix])
    func randomOperationsOnTwoConnectionsMatchTheModel(_ backend: FileIOBackendChoice) async throws {
        let fixture = try await GatewayFixture(ioBackend: backend, demoSize: UInt64(Self.size))
        let connections = [
            try await LibNBD.connect(fixture.uri("demo")), try await LibNBD.connect(fixture.tcpURI("demo")),
        ]
        #expect(connections[0].canMultiConn)
        var bytes = [UInt8](repeating: 0, count: Self.size)
        var defined = [Bool](repeating: true, count: Self.size)
        var random = SystemRandomNumberGenerator()
        var mismatches = 0
        for step in 0..<600 {
            let client = connections[step % 2]
            let offset = Int.random(in: 0..<(Self.size - 1), using: &random)
            let length = Int.random(in: 1...min(200_000, Self.size - offset), using: &random)
            switch Int.random(in: 0..<10, using: &random) {
            case 0...3:
                let seed = UInt8.random(in: 0...255, using: &random)
                let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) ^ seed }
                try await client.write(UInt64(offset), data, fua: step % 11 == 0)
                bytes.replaceSubrange(offset..<(offset + length), with: data)
                for index in offset..<(offset + length) { defined[index] = true }
            case 4:
                try await client.trim(UInt64(offset), UInt64(length))
                for index in offset..<(offset + length) { defined[index] = false }
            case 5:
                try await client.zero(UInt64(offset), UInt64(length), noHole: step % 2 == 0)
                for index in offset..<(offset + length) {
                    bytes[index] = 0
                    defined[index] = true
                }
            case 6:
                try await client.flush()
            default:
                let read = try await client.read(UInt64(offset), length)
                for index in 0..<length where defined[offset + index] && read[index] != bytes[offset + index] {
                    mismatches += 1
                }
            }
        }
        #expect(mismatches == 0)
        // Whatever block status calls a hole must read as zeros.
        var position: UInt64 = 0
        var holesWithData = 0
        for extent in try await connections[0].blockStatus(0, UInt64(Self.size)) {
            if extent.flags & 2 != 0,
                try await connections[1].read(position, Int(extent.length)).contains(where: { $0 != 0 })
            {
                holesWithData += 1
            }
            position += extent.length
        }
        #expect(holesWithData == 0)
        await fixture.stop()
    }
}
