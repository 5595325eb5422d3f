import NBDProtocol
import NIOCore
import Testing

/// Decoders fed random bytes never crash, and whatever decodes re-encodes to the same bytes
/// (after ZeroFS's fuzz target).
@Suite struct CodecRoundTripTests {
    @Test func randomRequestHeadersRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let extended = Bool.random(using: &generator)
            let header = NBDRequestHeader(
                flags: NBDCommandFlags(rawValue: .random(in: 0...UInt16.max, using: &generator)),
                command: NBDCommand(rawValue: .random(in: 0...12, using: &generator)),
                cookie: .random(in: 0...UInt64.max, using: &generator),
                offset: .random(in: 0...UInt64.max, using: &generator),
                length: extended
                    ? .random(in: 0...UInt64.max, using: &generator) : UInt64(UInt32.random(in: 0...UInt32.max)))
            var wire = ByteBuffer()
            header.write(into: &wire, extended: extended)
            #expect(try NBDRequestHeader.decode(from: &wire, extended: extended) == header)
        }
    }

    @Test func randomBytesNeverCrashTheDecoders() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20000 {
            let count = Int.random(in: 0...64, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if count >= 8, Bool.random(using: &generator) {
                bytes.replaceSubrange(0..<8, with: [0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54])
            }
            var buffer = ByteBuffer(bytes: bytes)
            _ = try? NBDOptionRequest.decode(from: &buffer)
            buffer = ByteBuffer(bytes: bytes)
            _ = try? NBDRequestHeader.decode(from: &buffer, extended: Bool.random(using: &generator))
            buffer = ByteBuffer(bytes: bytes)
            _ = try? NBDReplyHeader.decode(from: &buffer)
            _ = try? NBDInfoRequest(payload: ByteBuffer(bytes: bytes))
            _ = try? NBDMetaContextRequest(payload: ByteBuffer(bytes: bytes))
        }
    }

    @Test func optionPayloadsRoundTrip() throws {
        let info = NBDInfoRequest(exportName: "vol-ü", requests: [0, 1, 3, 77])
        var wire = ByteBuffer()
        info.write(into: &wire)
        #expect(try NBDInfoRequest(payload: wire) == info)
        let meta = NBDMetaContextRequest(exportName: "v", queries: ["base:allocation", "qemu:dirty-bitmap:x"])
        wire.clear()
        meta.write(into: &wire)
        #expect(try NBDMetaContextRequest(payload: wire) == meta)
        let option = NBDOptionRequest(code: .unknown(1234), payload: wire)
        var framed = ByteBuffer()
        option.write(into: &framed)
        #expect(try NBDOptionRequest.decode(from: &framed) == option)
    }
}
