import BlockDevice
import Foundation
import Logging
import NBDProtocol
import NBDServer
import NBDTestSupport
import NIOCore
import NIOPosix
import Testing

/// The server over a real unix socket with an in-memory device, driven byte by byte.
@Suite struct TransmissionTests {
    /// Starts a server with one export "disk": by default 1 MiB whose first READ of offset 0 is slowed.
    private func withServer(
        limits: NBDServerLimits = NBDServerLimits(),
        device: any BlockDevice = MemoryDevice(size: 1 << 20) { offset in offset == 0 ? .milliseconds(200) : .zero },
        _ body: (String) async throws -> Void
    ) async throws {
        let server = NBDServer(
            catalog: FakeCatalog(devices: ["disk": device]), group: MultiThreadedEventLoopGroup.singleton,
            limits: limits, logger: Logger(label: "test"))
        let path = NSTemporaryDirectory() + "nbd-\(UUID().uuidString.prefix(8)).sock"
        let channel = try await server.listen(unixSocket: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            try await body(path)
        } catch {
            try await channel.close()
            throw error
        }
        try await channel.close()
    }

    private func request(
        _ command: NBDCommand, cookie: UInt64, offset: UInt64 = 0, length: UInt64 = 0, flags: NBDCommandFlags = []
    ) -> NBDRequestHeader {
        NBDRequestHeader(flags: flags, command: command, cookie: cookie, offset: offset, length: length)
    }

    @Test func pipelinedRequestsAreAnsweredAsTheyComplete() async throws {
        try await withServer { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: false)
            try client.send(request(.read, cookie: 1, offset: 0, length: 4096))
            try client.send(request(.read, cookie: 2, offset: 8192, length: 4096))
            try client.send(request(.flush, cookie: 3))
            let cookies = try (0..<3).map { _ in try client.receiveReply().cookie }
            #expect(Set(cookies) == [1, 2, 3])
            #expect(cookies.last == 1, "the slow read should be answered last, got \(cookies)")
        }
    }

    @Test func outOfRangeAndUnknownRequestsGetTheSpecifiedErrors() async throws {
        try await withServer { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: false)
            var payload = ByteBuffer()
            payload.writeRepeatingByte(1, count: 4096)
            try client.send(request(.write, cookie: 1, offset: (1 << 20) - 2048, length: 4096), payload: payload)
            #expect(try client.receiveReply().error == NBDErrno.noSpace.rawValue)
            try client.send(request(.read, cookie: 2, offset: 1 << 20, length: 1))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue)
            try client.send(request(.trim, cookie: 3, offset: UInt64.max - 10, length: 100))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue)
            try client.send(request(.unknown(42), cookie: 4))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue)
            try client.send(request(.read, cookie: 5, length: 4096, flags: NBDCommandFlags(rawValue: 0x100)))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue)
            try client.send(request(.read, cookie: 6, length: 33 << 20))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue)
            try client.send(request(.blockStatus, cookie: 7, length: 4096))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue, "no context was negotiated")
            // The connection still works.
            try client.send(request(.write, cookie: 8, offset: 4096, length: 4096), payload: payload)
            #expect(try client.receiveReply().error == 0)
            try client.send(request(.read, cookie: 9, offset: 4096, length: 4096))
            let readBack = try client.receiveReply().data
            let same = readBack == [UInt8](repeating: 1, count: 4096)
            #expect(same, "read back \(readBack.count) bytes differ")
        }
    }

    @Test func structuredReadsSendHolesAsHoleChunks() async throws {
        try await withServer { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk")
            var payload = ByteBuffer()
            payload.writeRepeatingByte(7, count: 4096)
            try client.send(request(.write, cookie: 1, offset: 8192, length: 4096), payload: payload)
            _ = try client.receiveReply()
            try client.send(request(.read, cookie: 2, offset: 4096, length: 12288))
            let reply = try client.receiveReply()
            #expect(reply.chunkTypes == [2, 1, 2])
            let expected =
                [UInt8](repeating: 0, count: 4096) + [UInt8](repeating: 7, count: 4096)
                + [UInt8](repeating: 0, count: 4096)
            let same = reply.data == expected
            #expect(same, "the hole/data/hole read differs")
            try client.send(request(.read, cookie: 3, offset: 4096, length: 12288, flags: .dontFragment))
            #expect(try client.receiveReply().chunkTypes == [1])
            try client.send(request(.blockStatus, cookie: 4, offset: 0, length: 1 << 20))
            let status = try client.receiveReply()
            #expect(status.chunkTypes == [5])
            #expect(status.extents.map(\.length) == [8192, 4096, (1 << 20) - 12288])
            #expect(status.extents.map(\.flags) == [3, 0, 3])
            try client.send(request(.blockStatus, cookie: 5, offset: 0, length: 1 << 20, flags: .reqOne))
            #expect(try client.receiveReply().extents.count == 1)
            try client.send(request(.read, cookie: 6, offset: 1 << 20, length: 1))
            let failed = try client.receiveReply()
            #expect(failed.error == NBDErrno.invalid.rawValue && failed.chunkTypes == [0x8001])
            // Data the device answers in several buffers in a row goes as one data chunk.
            payload.clear()
            payload.writeRepeatingByte(8, count: 8192)
            try client.send(request(.write, cookie: 7, offset: 12288, length: 8192), payload: payload)
            _ = try client.receiveReply()
            try client.send(request(.read, cookie: 8, offset: 4096, length: 20480))
            let joined = try client.receiveReply()
            #expect(joined.chunkTypes == [2, 1, 2])
            let joinedData =
                [UInt8](repeating: 0, count: 4096) + [UInt8](repeating: 7, count: 4096)
                + [UInt8](repeating: 8, count: 8192) + [UInt8](repeating: 0, count: 4096)
            let sameJoined = joined.data == joinedData
            #expect(sameJoined, "the hole/data/data/data/hole read differs")
        }
    }

    @Test func extendedHeadersCarry64BitLengthsEndToEnd() async throws {
        try await withServer { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", extendedHeaders: true)
            var payload = ByteBuffer()
            payload.writeRepeatingByte(9, count: 8192)
            try client.send(
                request(.write, cookie: 1, offset: 0, length: 8192, flags: .payloadLength), payload: payload)
            let written = try client.receiveReply()
            #expect(written.error == 0 && written.chunkTypes == [0], "extended replies are never simple")
            try client.send(request(.read, cookie: 2, offset: 0, length: 8192))
            let readBack = try client.receiveReply().data
            let same = readBack == [UInt8](repeating: 9, count: 8192)
            #expect(same, "read back \(readBack.count) bytes differ")
            try client.send(request(.blockStatus, cookie: 3, offset: 0, length: 5 << 30))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue, "past the end")
            try client.send(request(.blockStatus, cookie: 4, offset: 0, length: 1 << 20))
            let status = try client.receiveReply()
            #expect(status.chunkTypes == [6])
            #expect(status.extents.map(\.length) == [8192, (1 << 20) - 8192])
            // A payload on a command that takes none is read and refused.
            try client.send(
                request(.trim, cookie: 5, offset: 0, length: 16, flags: .payloadLength),
                payload: ByteBuffer(repeating: 0, count: 16))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue)
            try client.send(request(.flush, cookie: 6))
            #expect(try client.receiveReply().error == 0)
            // A WRITE must carry PAYLOAD_LEN under extended headers.
            try client.send(request(.write, cookie: 7, offset: 0, length: 4096))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue)
        }
    }

    @Test func aBadMagicClosesOnlyThatConnection() async throws {
        try await withServer { path in
            let bad = try RawNBDClient(unixSocket: path)
            try bad.negotiate(export: "disk")
            try bad.send(ByteBuffer(repeating: 0x5A, count: 28))
            #expect(bad.isClosedByServer())
            let good = try RawNBDClient(unixSocket: path)
            try good.negotiate(export: "disk")
            try good.send(request(.flush, cookie: 1))
            #expect(try good.receiveReply().error == 0)
        }
    }

    @Test func anOversizedWriteClosesWithoutAllocatingIt() async throws {
        try await withServer { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: false)
            try client.send(request(.write, cookie: 1, offset: 0, length: UInt64(UInt32.max)))
            #expect(client.isClosedByServer())
        }
    }

    @Test func requestsLongerThanTheServersCapGetEINVALAndTheConnectionGoesOn() async throws {
        try await withServer(limits: NBDServerLimits(maximumRequest: 64 << 10)) { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: false)
            try client.send(request(.read, cookie: 1, offset: 4096, length: 128 << 10))
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue)
            var payload = ByteBuffer()
            payload.writeRepeatingByte(1, count: 128 << 10)
            try client.send(request(.write, cookie: 2, offset: 4096, length: 128 << 10), payload: payload)
            #expect(try client.receiveReply().error == NBDErrno.invalid.rawValue)
            try client.send(request(.read, cookie: 3, offset: 4096, length: 64 << 10))
            let reply = try client.receiveReply()
            #expect(reply.error == 0 && reply.data == [UInt8](repeating: 0, count: 64 << 10))
        }
    }

    @Test func garbageDuringNegotiationCloses() async throws {
        try await withServer { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.greet()
            try client.send(ByteBuffer(repeating: 0xFF, count: 64))
            #expect(client.isClosedByServer())
        }
    }

    @Test(arguments: [false, true])
    func readsServedAsFileRegionsArriveWholeAmongCopiedOnes(structured: Bool) async throws {
        let bytes = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let device = try FileRegionDevice(bytes: bytes)
        try await withServer(device: device) { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: structured)
            // Region, copied, region, copied: the replies must keep their framing in between.
            let reads: [(offset: Int, length: Int)] = [(0, 1 << 20), (4096, 8192), (12288, 256 << 10), (1 << 20, 512)]
            try client.send(
                batch: reads.enumerated().map { cookie, read in
                    request(.read, cookie: UInt64(cookie), offset: UInt64(read.offset), length: UInt64(read.length))
                })
            for _ in reads {
                let reply = try client.receiveReply()
                let read = reads[Int(reply.cookie)]
                #expect(reply.error == 0)
                let same = reply.data == Array(bytes[read.offset..<(read.offset + read.length)])
                #expect(same, "read \(reply.cookie) (\(read.length) bytes) differs")
                if structured { #expect(reply.chunkTypes == [1]) }
            }
        }
        #expect(device.regionsGiven.count == 2)
        // Each region's descriptor is closed once it is sent.
        var open: Int { device.regionsGiven.filter { $0.fileHandle.isOpen }.count }
        for _ in 0..<100 where open > 0 || device.regionsSent < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(open == 0)
        #expect(device.regionsSent == 2)
    }

    @Test func regionsLeftUnsentWhenTheClientGoesAwayAreClosed() async throws {
        let device = try FileRegionDevice(bytes: [UInt8](repeating: 5, count: 32 << 20))
        try await withServer(device: device) { path in
            var client: RawNBDClient? = try RawNBDClient(unixSocket: path)
            try client?.negotiate(export: "disk", structuredReplies: false)
            // More replies than the socket holds, none of them read: regions wait, then the
            // client is gone. Past 16 unsent regions a connection copies instead.
            try client?.send(
                batch: (0..<24).map { request(.read, cookie: UInt64($0), offset: UInt64($0) << 18, length: 1 << 18) })
            for _ in 0..<100 where device.regionsGiven.count < 16 { try await Task.sleep(for: .milliseconds(10)) }
            try await Task.sleep(for: .milliseconds(100))
            #expect(device.regionsGiven.count == 16)
            client = nil  // closes its socket
        }
        var open: Int { device.regionsGiven.filter { $0.fileHandle.isOpen }.count }
        for _ in 0..<200 where open > 0 || device.regionsSent < 16 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(open == 0)
        #expect(device.regionsSent == 16)
    }

    @Test func aFloodOfLargeReadsIsAdmittedOnlyAsRepliesDrain() async throws {
        let device = MemoryDevice(size: 32 << 20)
        try await withServer(device: device) { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: false)
            // 200 reads of 32 MiB (6.4 GB of replies) sent at once, none of them read yet.
            try client.send(
                batch: (0..<200).map {
                    NBDRequestHeader(flags: [], command: .read, cookie: UInt64($0), offset: 0, length: 32 << 20)
                })
            try await Task.sleep(for: .seconds(1))
            // Past 64 MiB of replies the client has not taken, the server stops taking requests.
            #expect(device.readCount < 10, "\(device.readCount) reads admitted while no reply was read")
            for _ in 0..<3 { #expect(try client.receiveReply().error == 0) }
        }
    }

    @Test func smallWritesArrivingTogetherDoNotKeepTheirReceiveBufferAlive() async throws {
        let device = MemoryDevice(size: 1 << 20)
        try await withServer(device: device) { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: false)
            // 16 writes of 512 bytes in one send: the server receives them in one buffer of 64 KiB.
            var batch = ByteBuffer()
            for index in 0..<16 {
                request(.write, cookie: UInt64(index), offset: UInt64(index) * 512, length: 512)
                    .write(into: &batch, extended: false)
                batch.writeRepeatingByte(UInt8(index), count: 512)
            }
            try client.send(batch)
            for _ in 0..<16 { #expect(try client.receiveReply().error == 0) }
            let storage = device.writePayloadStorage
            #expect(storage.count == 16)
            #expect(storage.allSatisfy { $0 < 4096 }, "write payloads kept buffers of \(storage) bytes")
        }
    }

    /// A payload that arrives in pieces, some after a pause, is read into its own buffer up to
    /// its last byte and no further: the request right behind it is parsed as one.
    @Test func aWritePayloadArrivingInPiecesIsReadWholeAndNotPastItsEnd() async throws {
        let device = MemoryDevice(size: 1 << 20)
        try await withServer(device: device) { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: false)
            let length = 300_007
            let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
            var stream = ByteBuffer()
            request(.write, cookie: 1, offset: 4096, length: UInt64(length)).write(into: &stream, extended: false)
            stream.writeBytes(data)
            // A second write directly behind the first, and a read of both.
            request(.write, cookie: 2, offset: 4096 + UInt64(length), length: 5).write(into: &stream, extended: false)
            stream.writeBytes([1, 2, 3, 4, 5])
            for piece in [28 + 1000, 150_000, 3, stream.readableBytes] {
                try client.send(stream.readSlice(length: min(piece, stream.readableBytes))!)
                try await Task.sleep(for: .milliseconds(30))
            }
            #expect(try client.receiveReply().error == 0)
            #expect(try client.receiveReply().error == 0)
            try client.send(request(.read, cookie: 3, offset: 4096, length: UInt64(length + 5)))
            let reply = try client.receiveReply()
            #expect(reply.error == 0)
            #expect(reply.data == data + [1, 2, 3, 4, 5])
        }
    }

    /// Replies larger than the socket can hold at once are all written before a DISC closes.
    @Test func disconnectWritesEveryReplyOwedBeforeClosing() async throws {
        let device = MemoryDevice(size: 64 << 20) { _ in .zero }
        try await withServer(device: device) { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: false)
            for cookie in 1...4 {
                try client.send(
                    request(.read, cookie: UInt64(cookie), offset: UInt64(cookie - 1) << 24, length: 16 << 20))
            }
            try client.send(request(.disconnect, cookie: 9))
            try await Task.sleep(for: .milliseconds(300))  // the server has answered all four by now
            var received = 0
            for _ in 1...4 {
                let reply = try client.receiveReply()
                #expect(reply.error == 0)
                received += reply.data.count
            }
            #expect(received == 64 << 20)
            #expect(client.isClosedByServer())
        }
    }

    @Test func disconnectAnswersRequestsInFlightFirst() async throws {
        try await withServer { path in
            let client = try RawNBDClient(unixSocket: path)
            try client.negotiate(export: "disk", structuredReplies: false)
            try client.send(request(.read, cookie: 1, offset: 0, length: 4096))
            try client.send(request(.disconnect, cookie: 2))
            let reply = try client.receiveReply()
            #expect(reply.cookie == 1 && reply.error == 0)
            #expect(client.isClosedByServer())
        }
    }
}
