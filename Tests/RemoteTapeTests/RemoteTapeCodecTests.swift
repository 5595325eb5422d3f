import NIOCore
import RemoteTape
import Testing

/// The rmt codec: requests as GNU tar, cpio, mt and dump's rmt client write them, taken off the
/// wire however the bytes arrive; replies; the MTIOCGET layout; operation numbering.
@Suite struct RemoteTapeCodecTests {
    static let conversation =
        "O/drive/0\n577 O_WRONLY|O_CREAT|O_TRUNC\nW5\nhelloR10240\nI-1\n0\nI5\n2\n\ni4\n0\nSsBsFL0\n1\nCdrive/0\n"

    static let expected: [RemoteTapeRequest] = [
        .open(device: "/drive/0", access: .writeOnly), .write(ByteBuffer(string: "hello")), .read(count: 10240),
        .operation(code: -1, count: 0), .operation(code: 5, count: 2), .extendedOperation(code: 4, count: 0), .status,
        .statusField(UInt8(ascii: "B")), .statusField(UInt8(ascii: "F")), .seek(offset: 0, whence: 1), .close,
    ]

    @Test func requestsAreTakenWholeHoweverTheBytesArrive() throws {
        let parser = RemoteTapeRequestParser()
        var whole = ByteBuffer(string: Self.conversation)
        var all: [RemoteTapeRequest] = []
        while let request = try parser.next(from: &whole) { all.append(request) }
        #expect(all == Self.expected)
        #expect(whole.readableBytes == 0)

        var trickle = ByteBuffer()
        var trickled: [RemoteTapeRequest] = []
        for byte in Self.conversation.utf8 {
            trickle.writeInteger(byte)
            while let request = try parser.next(from: &trickle) { trickled.append(request) }
        }
        #expect(trickled == Self.expected)
    }

    @Test func openFlagsAreNumbersNamesOrBoth() throws {
        let cases: [(String, RemoteTapeRequest.Access)] = [
            ("0", .readOnly), ("577", .writeOnly), ("66", .readWrite), ("O_RDONLY", .readOnly),
            ("CREAT|RDWR", .readWrite), ("66 O_RDWR|O_CREAT", .readWrite), ("1 O_WRONLY", .writeOnly),
            ("0 O_RDONLY", .readOnly),
        ]
        let parser = RemoteTapeRequestParser()
        for (flags, access) in cases {
            var buffer = ByteBuffer(string: "Odrive/1\n\(flags)\n")
            #expect(try parser.next(from: &buffer) == .open(device: "drive/1", access: access), "\(flags)")
        }
        var bad = ByteBuffer(string: "Odrive/1\nO_RD!ONLY\n")
        #expect(throws: RemoteTapeProtocolError.self) { try parser.next(from: &bad) }
    }

    @Test func whatIsNotTheProtocolIsRefused() {
        let parser = RemoteTapeRequestParser()
        for text in ["X\n", "Rten\n", "W-1\n", "W\(RemoteTapeRequestParser.maximumWrite + 1)\n", "I1 2\n3\n"] {
            var buffer = ByteBuffer(string: text)
            #expect(throws: RemoteTapeProtocolError.self, "\(text)") { try parser.next(from: &buffer) }
        }
        var endless = ByteBuffer(string: "O" + String(repeating: "a", count: 5000))
        #expect(throws: RemoteTapeProtocolError.self) { try parser.next(from: &endless) }
    }

    @Test func repliesAreANumberDataOrAnErrno() {
        func text(_ reply: RemoteTapeReply) -> String {
            var buffer = ByteBuffer()
            reply.encode(into: &buffer)
            return String(buffer: buffer)
        }
        #expect(text(.number(10240)) == "A10240\n")
        #expect(text(.data(Array("abc".utf8))) == "A3\nabc")
        #expect(text(.error(errno: 5, message: "bad\nrecord")) == "E5\nbad record\n")
    }

    @Test func theStatusIsLinuxsStructMtget() {
        let status = MagneticTapeStatus(
            file: 3, block: 7, blockSize: 10240, general: [.online, .afterFilemark, .writeProtected])
        let bytes = ByteBuffer(bytes: status.encoded)
        #expect(bytes.readableBytes == 48)
        #expect(bytes.getInteger(at: 0, endianness: .little, as: Int64.self) == 0x72)
        #expect(bytes.getInteger(at: 16, endianness: .little, as: Int64.self) == 10240)
        #expect(bytes.getInteger(at: 24, endianness: .little, as: Int64.self) == 0x8500_0000)
        #expect(bytes.getInteger(at: 40, endianness: .little, as: Int32.self) == 3)
        #expect(bytes.getInteger(at: 44, endianness: .little, as: Int32.self) == 7)
        #expect(status.field(UInt8(ascii: "F")) == 3 && status.field(UInt8(ascii: "B")) == 7)
        #expect(status.field(UInt8(ascii: "D")) == 10240 && status.field(UInt8(ascii: "x")) == nil)
    }

    @Test func operationsAreNumberedAsTheClientSays() {
        #expect(TapeOperation.linux(code: 5, count: 2) == .writeFilemarks(2))
        #expect(TapeOperation.linux(code: 6, count: 1) == .rewind)
        #expect(TapeOperation.linux(code: 11, count: 3) == .forwardFilesToMark(3))
        #expect(TapeOperation.linux(code: 12, count: 1) == .endOfData)
        #expect(TapeOperation.linux(code: 99, count: 1) == nil)
        #expect(TapeOperation.portable(code: 0, count: 2) == .writeFilemarks(2))
        #expect(TapeOperation.portable(code: 5, count: 1) == .rewind)
        #expect(TapeOperation.portable(code: 8, count: 1) == nil)
        #expect(TapeOperation.extended(code: 4, count: 0) == .endOfData)
        #expect(TapeOperation.extended(code: 5, count: 2) == .backFilesToMark(2))
    }
}
