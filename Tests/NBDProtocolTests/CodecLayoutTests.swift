import NBDProtocol
import NIOCore
import Testing

/// Byte layouts checked against doc/proto.md of NetworkBlockDevice/nbd.
@Suite struct CodecLayoutTests {
    private func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

    @Test func greetingIsMagicOptionMagicAndFlags() {
        var buffer = ByteBuffer()
        NBDGreeting.write(flags: [.fixedNewstyle, .noZeroes], into: &buffer)
        #expect(
            bytes(buffer) == [
                0x4e, 0x42, 0x44, 0x4d, 0x41, 0x47, 0x49, 0x43,  // NBDMAGIC
                0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54,  // IHAVEOPT
                0x00, 0x03,
            ])
    }

    @Test func optionRequestDecodesOnlyWhenComplete() throws {
        var wire = ByteBuffer(bytes: [
            0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54,  // IHAVEOPT
            0x00, 0x00, 0x00, 0x07,  // NBD_OPT_GO
            0x00, 0x00, 0x00, 0x0a,  // length 10
            0x00, 0x00, 0x00, 0x04, 0x76, 0x6f, 0x6c, 0x31,  // "vol1"
            0x00, 0x00,  // no information requests
        ])
        var partial = wire.getSlice(at: 0, length: 20)!
        #expect(try NBDOptionRequest.decode(from: &partial) == nil)
        #expect(partial.readableBytes == 20)
        let option = try #require(try NBDOptionRequest.decode(from: &wire))
        #expect(option.code == .go)
        #expect(try NBDInfoRequest(payload: option.payload) == NBDInfoRequest(exportName: "vol1", requests: []))
    }

    @Test func optionRequestWithBadMagicThrows() {
        var wire = ByteBuffer(bytes: [UInt8](repeating: 0x11, count: 16))
        #expect(throws: NBDProtocolError.badMagic(0x1111_1111_1111_1111)) { try NBDOptionRequest.decode(from: &wire) }
    }

    @Test func infoExportReplyCountsItsTypeInTheLength() {
        var buffer = ByteBuffer()
        NBDOptionReply.writeInfoExport(option: .go, size: 0x1_0000_0000, flags: [.hasFlags, .sendFlush], into: &buffer)
        #expect(
            bytes(buffer) == [
                0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9,  // reply magic
                0x00, 0x00, 0x00, 0x07,  // NBD_OPT_GO
                0x00, 0x00, 0x00, 0x03,  // NBD_REP_INFO
                0x00, 0x00, 0x00, 0x0c,  // length 12
                0x00, 0x00,  // NBD_INFO_EXPORT
                0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,  // size
                0x00, 0x05,  // flags
            ])
    }

    @Test func blockSizeInfoIsFourteenBytes() {
        var buffer = ByteBuffer()
        NBDOptionReply.writeInfoBlockSize(option: .info, minimum: 1, preferred: 4096, maximum: 1 << 25, into: &buffer)
        #expect(buffer.getInteger(at: 16, as: UInt32.self) == 14)
        #expect(bytes(buffer).suffix(14) == [0, 3, 0, 0, 0, 1, 0, 0, 0x10, 0, 2, 0, 0, 0])
    }

    @Test func exportNameReplyPadsUnlessNoZeroes() {
        var padded = ByteBuffer()
        NBDOptionReply.writeExportNameReply(size: 4096, flags: [.hasFlags], noZeroes: false, into: &padded)
        #expect(padded.readableBytes == 134)
        var bare = ByteBuffer()
        NBDOptionReply.writeExportNameReply(size: 4096, flags: [.hasFlags], noZeroes: true, into: &bare)
        #expect(bytes(bare) == [0, 0, 0, 0, 0, 0, 0x10, 0, 0, 1])
    }

    @Test func compactRequestHeaderIs28Bytes() throws {
        var wire = ByteBuffer(bytes: [
            0x25, 0x60, 0x95, 0x13,  // request magic
            0x00, 0x01,  // FUA
            0x00, 0x01,  // NBD_CMD_WRITE
            1, 2, 3, 4, 5, 6, 7, 8,  // cookie
            0, 0, 0, 0, 0, 0, 0x10, 0,  // offset 4096
            0, 0, 0x02, 0,  // length 512
        ])
        let header = try #require(try NBDRequestHeader.decode(from: &wire, extended: false))
        #expect(
            header
                == NBDRequestHeader(
                    flags: .fua, command: .write, cookie: 0x0102_0304_0506_0708, offset: 4096, length: 512))
        #expect(wire.readableBytes == 0)
    }

    @Test func extendedRequestHeaderCarries64BitLengths() throws {
        let header = NBDRequestHeader(
            flags: [], command: .trim, cookie: 9, offset: 1 << 33, length: 5 << 30)
        var wire = ByteBuffer()
        header.write(into: &wire, extended: true)
        #expect(wire.readableBytes == 32)
        #expect(wire.getInteger(at: 0, as: UInt32.self) == 0x21e4_1c71)
        #expect(try NBDRequestHeader.decode(from: &wire, extended: true) == header)
    }

    @Test func headerStyleMismatchIsAProtocolError() {
        var wire = ByteBuffer()
        NBDRequestHeader(flags: [], command: .read, cookie: 1, offset: 0, length: 1).write(into: &wire, extended: false)
        #expect(throws: NBDProtocolError.unexpectedHeaderStyle) {
            try NBDRequestHeader.decode(from: &wire, extended: true)
        }
    }

    @Test func simpleReplyAndHoleChunkLayouts() {
        var simple = ByteBuffer()
        NBDReply.writeSimple(cookie: 0xAA, error: .invalid, into: &simple)
        #expect(bytes(simple) == [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0xAA])
        var hole = ByteBuffer()
        NBDReply.writeOffsetHole(
            cookie: 1, offset: 512, requestOffset: 0, length: 1024, done: true, extended: false, into: &hole)
        #expect(
            bytes(hole) == [
                0x66, 0x8e, 0x33, 0xef, 0, 1, 0, 2,  // magic, DONE, OFFSET_HOLE
                0, 0, 0, 0, 0, 0, 0, 1,  // cookie
                0, 0, 0, 12,  // length
                0, 0, 0, 0, 0, 0, 2, 0,  // offset
                0, 0, 4, 0,  // hole size
            ])
    }

    @Test func blockStatusExtendedUses64BitDescriptors() {
        var buffer = ByteBuffer()
        NBDReply.writeBlockStatus(
            cookie: 3, contextID: 1, extents: [NBDExtent(length: 6 << 30, flags: [.hole, .zero])], requestOffset: 4096,
            extended: true, into: &buffer)
        #expect(buffer.readableBytes == 32 + 8 + 16)
        #expect(buffer.getInteger(at: 4, as: UInt16.self) == 1)  // DONE
        #expect(buffer.getInteger(at: 6, as: UInt16.self) == 6)  // BLOCK_STATUS_EXT
        #expect(buffer.getInteger(at: 16, as: UInt64.self) == 4096)  // request offset
        #expect(buffer.getInteger(at: 36, as: UInt32.self) == 1)  // one descriptor
        #expect(buffer.getInteger(at: 40, as: UInt64.self) == 6 << 30)
        #expect(buffer.getInteger(at: 48, as: UInt64.self) == 3)
    }

    @Test func errorChunkCarriesTheMessage() throws {
        var buffer = ByteBuffer()
        NBDReply.writeError(
            cookie: 5, error: .noSpace, message: "full", requestOffset: 0, extended: false, into: &buffer)
        let header = try #require(try NBDReplyHeader.decode(from: &buffer))
        #expect(header == .chunk(cookie: 5, flags: .done, type: 0x8001, offset: 0, length: 10))
        #expect(buffer.readInteger(as: UInt32.self) == 28)
        #expect(buffer.readInteger(as: UInt16.self) == 4)
        #expect(buffer.readString(length: 4) == "full")
    }

    @Test func metaContextRequestRejectsOverlongQueries() {
        var payload = ByteBuffer()
        payload.writeMultipleIntegers(UInt32(0), UInt32(1), UInt32(100))
        payload.writeString("base:allocation")
        #expect(throws: NBDMalformedOption.self) { try NBDMetaContextRequest(payload: payload) }
    }
}
