import Glibc
import NBDProtocol
import NIOCore

/// A blocking NBD client built from the project's codecs: negotiates what a test asks for
/// (including extended headers, which Debian 12's clients lack) and exchanges requests and replies
/// byte by byte, or sends raw bytes for malformed-input tests.
public final class RawNBDClient {
    private let descriptor: CInt
    private var input = ByteBuffer()
    /// Extended headers are in use after a successful `negotiate(extendedHeaders: true)`.
    public private(set) var extended = false
    /// The export's size and flags after GO.
    public private(set) var size: UInt64 = 0
    public private(set) var flags = NBDTransmissionFlags()
    /// Offset and length of READs awaiting their replies, by cookie.
    private var reads: [UInt64: (offset: UInt64, length: UInt64)] = [:]

    /// A failure of the client or the connection.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Connects to a unix socket.
    public init(unixSocket path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(descriptor)
            throw Failure(description: "connect \(path): \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(descriptor)
    }

    // MARK: - Negotiation

    /// Reads the greeting and sends the client flags.
    @discardableResult
    public func greet(clientFlags: UInt32 = 3) throws -> NBDHandshakeFlags {
        var greeting = try receive(NBDGreeting.length)
        guard greeting.readInteger(as: UInt64.self) == NBDMagic.greeting,
            greeting.readInteger(as: UInt64.self) == NBDMagic.option
        else { throw Failure(description: "bad greeting") }
        let flags = NBDHandshakeFlags(rawValue: greeting.readInteger(as: UInt16.self)!)
        var out = ByteBuffer()
        out.writeInteger(clientFlags)
        try send(out)
        return flags
    }

    /// Sends an option and collects replies up to the final one (ACK or an error).
    public func option(_ code: NBDOptionCode, payload: ByteBuffer = ByteBuffer()) throws -> [NBDOptionReplyHeader] {
        var out = ByteBuffer()
        NBDOptionRequest(code: code, payload: payload).write(into: &out)
        try send(out)
        var replies: [NBDOptionReplyHeader] = []
        while true {
            let reply = try readOptionReply()
            replies.append(reply)
            if reply.type == NBDOptionReplyType.ack.rawValue || reply.type & 0x8000_0000 != 0 { return replies }
        }
    }

    /// Full negotiation: optional structured replies / extended headers / base:allocation, then GO.
    public func negotiate(
        export: String, structuredReplies: Bool = true, extendedHeaders: Bool = false, blockStatus: Bool = true
    ) throws {
        try greet()
        if extendedHeaders {
            let replies = try option(.extendedHeaders)
            guard replies.last?.type == NBDOptionReplyType.ack.rawValue else {
                throw Failure(description: "extended headers refused")
            }
        } else if structuredReplies {
            _ = try option(.structuredReply)
        }
        if blockStatus && (structuredReplies || extendedHeaders) {
            var payload = ByteBuffer()
            NBDMetaContextRequest(exportName: export, queries: [nbdBaseAllocationContext]).write(into: &payload)
            _ = try option(.setMetaContext, payload: payload)
        }
        var payload = ByteBuffer()
        NBDInfoRequest(exportName: export, requests: [NBDInfoType.blockSize.rawValue]).write(into: &payload)
        let replies = try option(.go, payload: payload)
        guard replies.last?.type == NBDOptionReplyType.ack.rawValue else {
            throw Failure(description: "GO failed: \(String(buffer: replies.last?.payload ?? ByteBuffer()))")
        }
        for reply in replies where reply.type == NBDOptionReplyType.info.rawValue {
            var payload = reply.payload
            if payload.readInteger(as: UInt16.self) == NBDInfoType.export.rawValue {
                size = payload.readInteger(as: UInt64.self)!
                flags = NBDTransmissionFlags(rawValue: payload.readInteger(as: UInt16.self)!)
            }
        }
        extended = extendedHeaders
    }

    private func readOptionReply() throws -> NBDOptionReplyHeader {
        while true {
            if let reply = try NBDOptionReplyHeader.decode(from: &input) { return reply }
            try fill()
        }
    }

    // MARK: - Transmission

    /// Sends a request (and its payload, if any).
    public func send(_ header: NBDRequestHeader, payload: ByteBuffer? = nil) throws {
        var out = ByteBuffer()
        header.write(into: &out, extended: extended)
        if let payload { out.writeImmutableBuffer(payload) }
        if header.command == .read { reads[header.cookie] = (header.offset, header.length) }
        try send(out)
    }

    /// Sends requests without payloads in one write, so that the server receives them together.
    public func send(batch headers: [NBDRequestHeader]) throws {
        var out = ByteBuffer()
        for header in headers {
            header.write(into: &out, extended: extended)
            if header.command == .read { reads[header.cookie] = (header.offset, header.length) }
        }
        try send(out)
    }

    /// One whole reply: the error (0 on success), the data of a READ (holes as zeros), and the
    /// chunks seen.
    public struct Reply {
        public var cookie: UInt64
        public var error: UInt32
        public var data: [UInt8]
        public var chunkTypes: [UInt16]
        public var extents: [(length: UInt64, flags: UInt32)]
        public var errorMessage: String
    }

    /// Reads the next complete reply (all chunks of one request up to DONE).
    public func receiveReply() throws -> Reply {
        let first = try readReplyHeader()
        switch first {
        case .simple(let cookie, let error):
            var data: [UInt8] = []
            if let read = reads.removeValue(forKey: cookie), error == 0 {
                data = Array(try receive(Int(read.length)).readableBytesView)
            }
            return Reply(cookie: cookie, error: error, data: data, chunkTypes: [], extents: [], errorMessage: "")
        case .chunk(let cookie, _, _, _, _):
            let read = reads.removeValue(forKey: cookie) ?? (0, 0)
            var reply = Reply(
                cookie: cookie, error: 0, data: [UInt8](repeating: 0, count: Int(read.length)), chunkTypes: [],
                extents: [], errorMessage: "")
            var header = first
            while true {
                guard case .chunk(_, let flags, let type, let offset, let length) = header else {
                    throw Failure(description: "simple reply inside a structured reply")
                }
                var payload = try receive(Int(length))
                reply.chunkTypes.append(type)
                if extended && offset != read.offset && type == NBDReplyChunkType.offsetData.rawValue {
                    throw Failure(
                        description: "extended chunk header offset \(offset) is not the request's \(read.offset)")
                }
                try absorb(type: type, payload: &payload, requestOffset: read.offset, into: &reply)
                if flags.contains(.done) { return reply }
                header = try readReplyHeader()
                guard header.cookie == cookie else { throw Failure(description: "interleaved replies are not handled") }
            }
        }
    }

    private func absorb(type: UInt16, payload: inout ByteBuffer, requestOffset: UInt64, into reply: inout Reply) throws
    {
        switch type {
        case NBDReplyChunkType.offsetData.rawValue:
            let offset = payload.readInteger(as: UInt64.self)!
            let start = Int(offset - requestOffset)
            reply.data.replaceSubrange(start..<(start + payload.readableBytes), with: payload.readableBytesView)
        case NBDReplyChunkType.offsetHole.rawValue:
            _ = payload.readInteger(as: UInt64.self)
        case NBDReplyChunkType.blockStatus.rawValue:
            _ = payload.readInteger(as: UInt32.self)
            while let (length, flags) = payload.readMultipleIntegers(as: (UInt32, UInt32).self) {
                reply.extents.append((UInt64(length), flags))
            }
        case NBDReplyChunkType.blockStatusExtended.rawValue:
            _ = payload.readMultipleIntegers(as: (UInt32, UInt32).self)
            while let (length, flags) = payload.readMultipleIntegers(as: (UInt64, UInt64).self) {
                reply.extents.append((length, UInt32(flags)))
            }
        case NBDReplyChunkType.error.rawValue, NBDReplyChunkType.errorOffset.rawValue:
            reply.error = payload.readInteger(as: UInt32.self)!
            let length = payload.readInteger(as: UInt16.self)!
            reply.errorMessage = payload.readString(length: Int(length)) ?? ""
        case NBDReplyChunkType.none.rawValue:
            break
        default:
            throw Failure(description: "unknown chunk type \(type)")
        }
    }

    private func readReplyHeader() throws -> NBDReplyHeader {
        while true {
            if let header = try NBDReplyHeader.decode(from: &input) { return header }
            try fill()
        }
    }

    // MARK: - Bytes

    /// Sends raw bytes.
    public func send(_ buffer: ByteBuffer) throws {
        try buffer.withUnsafeReadableBytes { raw in
            var sent = 0
            while sent < raw.count {
                let result = Glibc.send(descriptor, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
                sent += result
            }
        }
    }

    /// Whether the server has closed the connection (reads EOF within the receive timeout).
    public func isClosedByServer() -> Bool {
        do {
            while true { try fill() }
        } catch {
            return true
        }
    }

    private func receive(_ count: Int) throws -> ByteBuffer {
        while input.readableBytes < count { try fill() }
        return input.readSlice(length: count)!
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        var count: Int
        repeat {
            count = recv(descriptor, &chunk, chunk.count, 0)
        } while count < 0 && errno == EINTR
        guard count > 0 else {
            throw Failure(description: count == 0 ? "connection closed" : "recv: \(String(cString: strerror(errno)))")
        }
        input.writeBytes(chunk[0..<count])
    }
}
