import Foundation
import NBDProtocol
import NBDTestSupport
import NIOCore
import Testing

/// Whatever a client sends, the server answers or closes that connection, and keeps serving.
@Suite(.serialized) struct HostileClientTests {
    /// A request with random command, flags, offset and length, sometimes valid, often not.
    static func randomRequest(size: UInt64, extended: Bool, using random: inout SystemRandomNumberGenerator)
        -> (NBDRequestHeader, ByteBuffer?)
    {
        let command = NBDCommand(rawValue: UInt16.random(in: 0...9, using: &random))
        let flags = NBDCommandFlags(
            rawValue: Bool.random(using: &random)
                ? UInt16.random(in: 0...63, using: &random) : .random(in: 0...UInt16.max, using: &random))
        let offset: UInt64 =
            switch Int.random(in: 0..<4, using: &random) {
            case 0: .random(in: 0...UInt64.max, using: &random)
            case 1: size - UInt64.random(in: 0...8192, using: &random)
            default: .random(in: 0..<size, using: &random)
            }
        var length: UInt64 =
            switch Int.random(in: 0..<5, using: &random) {
            case 0: 0
            case 1: .random(in: 0...(extended ? UInt64.max : UInt64(UInt32.max)), using: &random)
            case 2: .random(in: 1...4096, using: &random)
            default: .random(in: 1...(1 << 20), using: &random)
            }
        var payload: ByteBuffer?
        let carriesPayload = extended ? flags.contains(.payloadLength) : command == .write
        if carriesPayload {
            length = min(length, 1 << 20)
            payload = ByteBuffer(repeating: UInt8.random(in: 0...255, using: &random), count: Int(length))
        }
        return (
            NBDRequestHeader(
                flags: flags, command: command, cookie: .random(in: 0...UInt64.max, using: &random),
                offset: offset, length: length), payload
        )
    }

    @Test func randomRequestsAndGarbageNeverStopTheServer() async throws {
        let fixture = try await GatewayFixture(demoSize: 16 << 20)
        let socketPath = fixture.socketPath
        try await Blocking.run { try Self.attack(socketPath) }
        // The server still does real work.
        let client = try await LibNBD.connect(fixture.uri("demo"))
        try await client.write(8192, [UInt8](repeating: 0x42, count: 4096))
        try await client.flush()
        #expect(try await client.read(8192, 4096).allSatisfy { $0 == 0x42 })
        await fixture.stop()
    }

    /// 120 connections of garbage or random requests, none of them waiting for replies.
    static func attack(_ socketPath: String) throws {
        var random = SystemRandomNumberGenerator()
        for round in 0..<120 {
            let client = try RawNBDClient(unixSocket: socketPath)
            let extended = round % 3 == 0
            switch round % 4 {
            case 0:
                try client.greet(clientFlags: UInt32.random(in: 0...7, using: &random))
                var garbage = ByteBuffer()
                for _ in 0..<Int.random(in: 1...300, using: &random) { garbage.writeInteger(UInt8.random(in: 0...255)) }
                try? client.send(garbage)
            default:
                try client.negotiate(export: "demo", structuredReplies: round % 2 == 0, extendedHeaders: extended)
                for _ in 0..<40 {
                    let (header, payload) = Self.randomRequest(size: 16 << 20, extended: extended, using: &random)
                    guard (try? client.send(header, payload: payload)) != nil else { break }
                }
            }
        }
    }
}
