/// Magic numbers and fixed sizes of the NBD wire protocol (doc/proto.md, "Protocol phases").
public enum NBDMagic {
    /// The first eight bytes a server sends: "NBDMAGIC".
    public static let greeting: UInt64 = 0x4e42_444d_4147_4943
    /// "IHAVEOPT": follows the greeting in newstyle negotiation and starts every option request.
    public static let option: UInt64 = 0x4948_4156_454F_5054
    /// Starts every option reply.
    public static let optionReply: UInt64 = 0x0003_e889_0455_65a9
    /// A compact (32-bit length) request header.
    public static let request: UInt32 = 0x2560_9513
    /// An extended (64-bit length) request header.
    public static let extendedRequest: UInt32 = 0x21e4_1c71
    /// A simple reply.
    public static let simpleReply: UInt32 = 0x6744_6698
    /// A structured reply chunk.
    public static let structuredReply: UInt32 = 0x668e_33ef
    /// An extended reply chunk.
    public static let extendedReply: UInt32 = 0x6e8a_278c
}

/// Fixed sizes of wire structures, in bytes.
public enum NBDWireSize {
    /// Compact request header.
    public static let requestHeader = 28
    /// Extended request header.
    public static let extendedRequestHeader = 32
    /// Simple reply header.
    public static let simpleReply = 16
    /// Structured reply chunk header.
    public static let structuredReplyHeader = 20
    /// Extended reply chunk header.
    public static let extendedReplyHeader = 32
    /// Option request header (magic, option, length).
    public static let optionHeader = 16
    /// Longest option payload accepted; longer ones close the connection.
    public static let maxOptionLength = 64 * 1024
    /// Longest string (export name, description, query) the protocol allows.
    public static let maxString = 4096
}

/// Handshake flags sent by the server after the greeting (doc/proto.md, "Newstyle negotiation").
public struct NBDHandshakeFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// The server speaks fixed newstyle.
    public static let fixedNewstyle = NBDHandshakeFlags(rawValue: 1 << 0)
    /// The server will omit the 124 zero bytes after NBD_OPT_EXPORT_NAME if the client agrees.
    public static let noZeroes = NBDHandshakeFlags(rawValue: 1 << 1)
}

/// Flags the client sends back after the handshake flags.
public struct NBDClientFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The client speaks fixed newstyle.
    public static let fixedNewstyle = NBDClientFlags(rawValue: 1 << 0)
    /// The client wants no zero padding after NBD_OPT_EXPORT_NAME.
    public static let noZeroes = NBDClientFlags(rawValue: 1 << 1)
}

/// Per-export transmission flags (doc/proto.md, "Transmission flags").
public struct NBDTransmissionFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Always set by a server that sends flags.
    public static let hasFlags = NBDTransmissionFlags(rawValue: 1 << 0)
    /// The export is read-only.
    public static let readOnly = NBDTransmissionFlags(rawValue: 1 << 1)
    /// NBD_CMD_FLUSH is supported.
    public static let sendFlush = NBDTransmissionFlags(rawValue: 1 << 2)
    /// NBD_CMD_FLAG_FUA is supported.
    public static let sendFUA = NBDTransmissionFlags(rawValue: 1 << 3)
    /// The export behaves like a rotational medium.
    public static let rotational = NBDTransmissionFlags(rawValue: 1 << 4)
    /// NBD_CMD_TRIM is supported.
    public static let sendTrim = NBDTransmissionFlags(rawValue: 1 << 5)
    /// NBD_CMD_WRITE_ZEROES is supported.
    public static let sendWriteZeroes = NBDTransmissionFlags(rawValue: 1 << 6)
    /// NBD_CMD_FLAG_DF is supported.
    public static let sendDF = NBDTransmissionFlags(rawValue: 1 << 7)
    /// FLUSH on one connection covers writes completed on every connection.
    public static let canMultiConn = NBDTransmissionFlags(rawValue: 1 << 8)
    /// NBD_CMD_RESIZE is supported.
    public static let sendResize = NBDTransmissionFlags(rawValue: 1 << 9)
    /// NBD_CMD_CACHE is supported.
    public static let sendCache = NBDTransmissionFlags(rawValue: 1 << 10)
    /// NBD_CMD_FLAG_FAST_ZERO is supported.
    public static let sendFastZero = NBDTransmissionFlags(rawValue: 1 << 11)
    /// NBD_CMD_BLOCK_STATUS accepts a payload (extended headers only).
    public static let blockStatusPayload = NBDTransmissionFlags(rawValue: 1 << 12)
}

/// Option codes a client may send during negotiation (doc/proto.md, "Option types").
public enum NBDOptionCode: Equatable, Hashable, Sendable {
    case exportName
    case abort
    case list
    case peekExport
    case startTLS
    case info
    case go
    case structuredReply
    case listMetaContext
    case setMetaContext
    case extendedHeaders
    /// Any option this server does not know.
    case unknown(UInt32)

    public init(rawValue: UInt32) {
        switch rawValue {
        case 1: self = .exportName
        case 2: self = .abort
        case 3: self = .list
        case 4: self = .peekExport
        case 5: self = .startTLS
        case 6: self = .info
        case 7: self = .go
        case 8: self = .structuredReply
        case 9: self = .listMetaContext
        case 10: self = .setMetaContext
        case 11: self = .extendedHeaders
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt32 {
        switch self {
        case .exportName: 1
        case .abort: 2
        case .list: 3
        case .peekExport: 4
        case .startTLS: 5
        case .info: 6
        case .go: 7
        case .structuredReply: 8
        case .listMetaContext: 9
        case .setMetaContext: 10
        case .extendedHeaders: 11
        case .unknown(let value): value
        }
    }
}

/// Option reply types (doc/proto.md, "Option reply types"); errors have bit 31 set.
public enum NBDOptionReplyType: UInt32, Sendable {
    case ack = 1
    case server = 2
    case info = 3
    case metaContext = 4
    case errUnsupported = 0x8000_0001
    case errPolicy = 0x8000_0002
    case errInvalid = 0x8000_0003
    case errPlatform = 0x8000_0004
    case errTLSRequired = 0x8000_0005
    case errUnknown = 0x8000_0006
    case errShutdown = 0x8000_0007
    case errBlockSizeRequired = 0x8000_0008
    case errTooBig = 0x8000_0009
    case errExtendedHeaderRequired = 0x8000_000a
}

/// Information types requested by NBD_OPT_INFO / NBD_OPT_GO and sent in NBD_REP_INFO.
public enum NBDInfoType: UInt16, Sendable {
    case export = 0
    case name = 1
    case description = 2
    case blockSize = 3
}

/// Command types (doc/proto.md, "Request types").
public enum NBDCommand: Equatable, Hashable, Sendable {
    case read
    case write
    case disconnect
    case flush
    case trim
    case cache
    case writeZeroes
    case blockStatus
    case resize
    /// A command number this server does not know.
    case unknown(UInt16)

    public init(rawValue: UInt16) {
        switch rawValue {
        case 0: self = .read
        case 1: self = .write
        case 2: self = .disconnect
        case 3: self = .flush
        case 4: self = .trim
        case 5: self = .cache
        case 6: self = .writeZeroes
        case 7: self = .blockStatus
        case 8: self = .resize
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: UInt16 {
        switch self {
        case .read: 0
        case .write: 1
        case .disconnect: 2
        case .flush: 3
        case .trim: 4
        case .cache: 5
        case .writeZeroes: 6
        case .blockStatus: 7
        case .resize: 8
        case .unknown(let value): value
        }
    }
}

/// Command flags (doc/proto.md, "Command flags").
public struct NBDCommandFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Force unit access: the write is durable when acknowledged.
    public static let fua = NBDCommandFlags(rawValue: 1 << 0)
    /// WRITE_ZEROES must not punch a hole.
    public static let noHole = NBDCommandFlags(rawValue: 1 << 1)
    /// READ must not be fragmented into several chunks.
    public static let dontFragment = NBDCommandFlags(rawValue: 1 << 2)
    /// BLOCK_STATUS wants one extent only.
    public static let reqOne = NBDCommandFlags(rawValue: 1 << 3)
    /// WRITE_ZEROES must fail fast rather than be slower than a write.
    public static let fastZero = NBDCommandFlags(rawValue: 1 << 4)
    /// The length field is the payload length (extended headers).
    public static let payloadLength = NBDCommandFlags(rawValue: 1 << 5)
}

/// Structured reply chunk types (doc/proto.md, "Structured reply types").
public enum NBDReplyChunkType: UInt16, Sendable {
    case none = 0
    case offsetData = 1
    case offsetHole = 2
    case blockStatus = 5
    case blockStatusExtended = 6
    case error = 0x8001
    case errorOffset = 0x8002
}

/// Flags of a structured reply chunk.
public struct NBDReplyFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// This is the last chunk of the reply.
    public static let done = NBDReplyFlags(rawValue: 1 << 0)
}

/// Error values on the wire (doc/proto.md, "Error values"): Linux errno numbers.
public enum NBDErrno: UInt32, Sendable, Error {
    case ok = 0
    case perm = 1
    case io = 5
    case noMemory = 12
    case invalid = 22
    case noSpace = 28
    case overflow = 75
    case notSupported = 95
    case shutdown = 108
}

/// Flags of a base:allocation block status descriptor.
public struct NBDAllocationFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The range is not allocated.
    public static let hole = NBDAllocationFlags(rawValue: 1 << 0)
    /// The range reads as zeros.
    public static let zero = NBDAllocationFlags(rawValue: 1 << 1)
}

/// Name of the one metadata context this server offers.
public let nbdBaseAllocationContext = "base:allocation"
