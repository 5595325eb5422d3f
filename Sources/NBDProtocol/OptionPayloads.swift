import NIOCore

/// A malformed option payload: answered with NBD_REP_ERR_INVALID, the connection stays open.
public struct NBDMalformedOption: Error, Equatable, Sendable {
    /// What was wrong, for the error reply's message.
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// The payload of NBD_OPT_INFO and NBD_OPT_GO: an export name and the information wanted.
public struct NBDInfoRequest: Equatable, Sendable {
    /// The export the client asks about ("" is the default export).
    public var exportName: String
    /// Information types requested, in the client's order (unknown ones are kept and ignored later).
    public var requests: [UInt16]

    public init(exportName: String, requests: [UInt16]) {
        self.exportName = exportName
        self.requests = requests
    }

    /// Parses the payload.
    /// - Throws: `NBDMalformedOption` when lengths do not add up.
    public init(payload: ByteBuffer) throws {
        var payload = payload
        exportName = try payload.readNBDString()
        guard let count = payload.readInteger(as: UInt16.self) else {
            throw NBDMalformedOption("missing information request count")
        }
        guard payload.readableBytes == Int(count) * 2 else {
            throw NBDMalformedOption("information request count does not match the payload length")
        }
        requests = (0..<count).map { _ in payload.readInteger(as: UInt16.self)! }
    }

    /// Encodes the payload, as a client sends it.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeNBDString(exportName)
        buffer.writeInteger(UInt16(requests.count))
        for request in requests { buffer.writeInteger(request) }
    }
}

/// The payload of NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.
public struct NBDMetaContextRequest: Equatable, Sendable {
    /// The export the contexts are for.
    public var exportName: String
    /// The queries (context names or namespace prefixes).
    public var queries: [String]

    public init(exportName: String, queries: [String]) {
        self.exportName = exportName
        self.queries = queries
    }

    /// Parses the payload.
    /// - Throws: `NBDMalformedOption` when lengths do not add up.
    public init(payload: ByteBuffer) throws {
        var payload = payload
        exportName = try payload.readNBDString()
        guard let count = payload.readInteger(as: UInt32.self) else {
            throw NBDMalformedOption("missing query count")
        }
        var queries: [String] = []
        for _ in 0..<count {
            queries.append(try payload.readNBDString())
        }
        guard payload.readableBytes == 0 else {
            throw NBDMalformedOption("trailing bytes after the queries")
        }
        self.queries = queries
    }

    /// Encodes the payload, as a client sends it.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeNBDString(exportName)
        buffer.writeInteger(UInt32(queries.count))
        for query in queries { buffer.writeNBDString(query) }
    }
}

extension ByteBuffer {
    /// Reads a 32-bit length followed by that many bytes of UTF-8.
    /// - Throws: `NBDMalformedOption` when the length exceeds the buffer or the protocol's limit.
    mutating func readNBDString() throws -> String {
        guard let length = readInteger(as: UInt32.self) else {
            throw NBDMalformedOption("missing string length")
        }
        guard length <= NBDWireSize.maxString, let string = readString(length: Int(length)) else {
            throw NBDMalformedOption("string length \(length) exceeds the payload or the 4096-byte limit")
        }
        return string
    }

    /// Writes a 32-bit length followed by the UTF-8 bytes of `string`.
    mutating func writeNBDString(_ string: String) {
        let lengthIndex = writerIndex
        writeInteger(UInt32(0))
        let written = writeString(string)
        setInteger(UInt32(written), at: lengthIndex)
    }
}
