import NBDProtocol
import NIOCore

/// The handshake and option haggling of fixed newstyle negotiation, as a value: each event
/// returns what the connection must do, and the channel handler does it.
struct NegotiationStateMachine {
    /// The id this server gives base:allocation when a client selects it.
    static let allocationContextID: UInt32 = 1

    private enum State {
        /// The greeting is out; the client's 32-bit flags are next.
        case awaitingClientFlags
        /// Options are being exchanged.
        case negotiating
        /// Negotiation ended (transmission started, or the connection is closing).
        case finished
    }

    /// What the connection must do after an event.
    enum Action {
        /// Send these bytes and keep negotiating.
        case send(ByteBuffer)
        /// Send these bytes, then close (NBD_OPT_ABORT).
        case sendAndClose(ByteBuffer)
        /// Close without a reply; the reason is for the log.
        case close(String)
        /// Send these bytes and switch to transmission with this export.
        case startTransmission(ByteBuffer, NBDExportSession, NBDSessionOptions)
        /// Send these bytes in the clear, then start TLS; negotiation goes on inside it.
        case startTLS(ByteBuffer)
    }

    private var state = State.awaitingClientFlags
    private var noZeroes = false
    private var structuredReplies = false
    private var extendedHeaders = false
    /// The canonical export name of the last successful SET_META_CONTEXT that selected base:allocation.
    private var allocationContextExport: String?
    private let catalog: any NBDExportCatalog
    private let tls: NBDTLSMode
    /// The server's bounds, which cap what an export's listing advertises.
    private let limits: NBDServerLimits
    /// NBD_OPT_STARTTLS was answered: what follows is inside TLS.
    private var tlsStarted = false

    init(catalog: any NBDExportCatalog, tls: NBDTLSMode = .off, limits: NBDServerLimits = NBDServerLimits()) {
        self.catalog = catalog
        self.tls = tls
        self.limits = limits
    }

    /// Whether client flags or options are still expected.
    var isNegotiating: Bool {
        switch state {
        case .awaitingClientFlags, .negotiating: true
        case .finished: false
        }
    }

    /// Whether the next bytes are the client flags.
    var awaitsClientFlags: Bool {
        if case .awaitingClientFlags = state { return true }
        return false
    }

    /// The client answered the greeting with its flags.
    mutating func receivedClientFlags(_ flags: NBDClientFlags) -> Action? {
        precondition(awaitsClientFlags, "client flags arrive once")
        let known: NBDClientFlags = [.fixedNewstyle, .noZeroes]
        guard flags.isSubset(of: known) else {
            state = .finished
            return .close("unknown client flags 0x\(String(flags.rawValue, radix: 16))")
        }
        noZeroes = flags.contains(.noZeroes)
        state = .negotiating
        return nil
    }

    /// The client sent an option.
    mutating func receivedOption(_ request: NBDOptionRequest) -> Action {
        precondition(isNegotiating && !awaitsClientFlags, "options arrive after the client flags")
        if tls == .required, !tlsStarted {
            switch request.code {
            case .abort, .startTLS: break
            case .exportName:
                state = .finished
                return .close("NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS, and TLS is required")
            default:
                return .send(
                    error(request.code, .errTLSRequired, "this server requires TLS: send NBD_OPT_STARTTLS first"))
            }
        }
        switch request.code {
        case .exportName: return handleOptionExportName(request)
        case .abort:
            state = .finished
            return .sendAndClose(reply(request.code, .ack))
        case .list: return handleOptionList(request)
        case .info, .go: return handleOptionInfoOrGo(request)
        case .structuredReply: return handleOptionStructuredReply(request)
        case .extendedHeaders: return handleOptionExtendedHeaders(request)
        case .listMetaContext, .setMetaContext: return handleOptionMetaContext(request)
        case .startTLS: return handleOptionStartTLS(request)
        case .peekExport, .unknown:
            return .send(error(request.code, .errUnsupported, "option \(request.code.rawValue) is not supported"))
        }
    }

    // MARK: - Options

    private mutating func handleOptionStartTLS(_ request: NBDOptionRequest) -> Action {
        guard tls != .off else {
            return .send(error(request.code, .errUnsupported, "this server does not offer TLS"))
        }
        guard !tlsStarted else { return .send(error(request.code, .errInvalid, "TLS is already on")) }
        guard request.payload.readableBytes == 0 else {
            return .send(error(request.code, .errInvalid, "NBD_OPT_STARTTLS takes no data"))
        }
        // What was agreed in the clear does not carry over into TLS (doc/proto.md, "TLS support").
        tlsStarted = true
        structuredReplies = false
        extendedHeaders = false
        allocationContextExport = nil
        return .startTLS(reply(request.code, .ack))
    }

    private mutating func handleOptionExportName(_ request: NBDOptionRequest) -> Action {
        state = .finished
        guard !extendedHeaders else {
            return .close("NBD_OPT_EXPORT_NAME after extended headers were negotiated")
        }
        let name = String(buffer: request.payload)
        switch catalog.openExport(named: name) {
        case .failure(let failure):
            return .close("export '\(name)' refused: \(failure.message)")
        case .success(let session):
            let capabilities = session.device.capabilities
            var out = ByteBuffer()
            NBDOptionReply.writeExportNameReply(
                size: session.device.size,
                flags: NBDTransmissionFlags(capabilities: capabilities, structuredReplies: structuredReplies),
                noZeroes: noZeroes, into: &out)
            return .startTransmission(out, session, sessionOptions(forExport: session.name))
        }
    }

    private func handleOptionList(_ request: NBDOptionRequest) -> Action {
        guard request.payload.readableBytes == 0 else {
            return .send(error(request.code, .errInvalid, "NBD_OPT_LIST takes no data"))
        }
        var out = ByteBuffer()
        for export in catalog.listExports() {
            NBDOptionReply.writeServer(name: export.name, description: export.description, into: &out)
        }
        NBDOptionReply.write(option: .list, type: .ack, into: &out)
        return .send(out)
    }

    private mutating func handleOptionInfoOrGo(_ request: NBDOptionRequest) -> Action {
        let info: NBDInfoRequest
        do {
            info = try NBDInfoRequest(payload: request.payload)
        } catch let malformed as NBDMalformedOption {
            return .send(error(request.code, .errInvalid, malformed.reason))
        } catch {
            preconditionFailure("NBDInfoRequest throws NBDMalformedOption only")
        }
        let listing: NBDExportListing
        switch catalog.describeExport(named: info.exportName) {
        case .failure(let failure): return .send(exportError(request.code, failure))
        case .success(let described): listing = described
        }
        var session: NBDExportSession?
        if request.code == .go {
            switch catalog.openExport(named: info.exportName) {
            case .failure(let failure): return .send(exportError(request.code, failure))
            case .success(let opened): session = opened
            }
        }
        var out = ByteBuffer()
        let flags = NBDTransmissionFlags(
            capabilities: listing.capabilities, structuredReplies: structuredReplies || extendedHeaders)
        NBDOptionReply.writeInfoExport(option: request.code, size: listing.size, flags: flags, into: &out)
        for requested in Set(info.requests) {
            switch NBDInfoType(rawValue: requested) {
            case .name: NBDOptionReply.writeInfoName(option: request.code, name: listing.name, into: &out)
            case .description where !listing.description.isEmpty:
                NBDOptionReply.writeInfoDescription(
                    option: request.code, description: listing.description, into: &out)
            default: break
            }
        }
        let capabilities = limits.served(listing.capabilities)
        NBDOptionReply.writeInfoBlockSize(
            option: request.code, minimum: capabilities.minimumBlockSize,
            preferred: capabilities.preferredBlockSize, maximum: capabilities.maximumRequest, into: &out)
        NBDOptionReply.write(option: request.code, type: .ack, into: &out)
        guard let session else { return .send(out) }
        state = .finished
        return .startTransmission(out, session, sessionOptions(forExport: session.name))
    }

    private mutating func handleOptionStructuredReply(_ request: NBDOptionRequest) -> Action {
        guard request.payload.readableBytes == 0 else {
            return .send(error(request.code, .errInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data"))
        }
        guard !extendedHeaders else {
            return .send(
                error(request.code, .errExtendedHeaderRequired, "extended headers are already negotiated"))
        }
        structuredReplies = true
        return .send(reply(request.code, .ack))
    }

    private mutating func handleOptionExtendedHeaders(_ request: NBDOptionRequest) -> Action {
        guard request.payload.readableBytes == 0 else {
            return .send(error(request.code, .errInvalid, "NBD_OPT_EXTENDED_HEADERS takes no data"))
        }
        extendedHeaders = true
        return .send(reply(request.code, .ack))
    }

    private mutating func handleOptionMetaContext(_ request: NBDOptionRequest) -> Action {
        let isSet = request.code == .setMetaContext
        if isSet { allocationContextExport = nil }
        guard structuredReplies || extendedHeaders else {
            return .send(
                error(request.code, .errInvalid, "meta contexts need structured replies or extended headers"))
        }
        let query: NBDMetaContextRequest
        do {
            query = try NBDMetaContextRequest(payload: request.payload)
        } catch let malformed as NBDMalformedOption {
            return .send(error(request.code, .errInvalid, malformed.reason))
        } catch {
            preconditionFailure("NBDMetaContextRequest throws NBDMalformedOption only")
        }
        let listing: NBDExportListing
        switch catalog.describeExport(named: query.exportName) {
        case .failure(let failure): return .send(exportError(request.code, failure))
        case .success(let described): listing = described
        }
        let matches: Bool
        if isSet {
            matches = query.queries.contains(nbdBaseAllocationContext)
        } else {
            matches =
                query.queries.isEmpty
                || query.queries.contains { $0 == "base:" || $0 == nbdBaseAllocationContext }
        }
        var out = ByteBuffer()
        if matches {
            NBDOptionReply.writeMetaContext(
                option: request.code, id: isSet ? Self.allocationContextID : 0, name: nbdBaseAllocationContext,
                into: &out)
            if isSet { allocationContextExport = listing.name }
        }
        NBDOptionReply.write(option: request.code, type: .ack, into: &out)
        return .send(out)
    }

    // MARK: - Helpers

    private func sessionOptions(forExport name: String) -> NBDSessionOptions {
        NBDSessionOptions(
            structuredReplies: structuredReplies, extendedHeaders: extendedHeaders,
            allocationContextID: allocationContextExport == name ? Self.allocationContextID : nil)
    }

    private func reply(_ option: NBDOptionCode, _ type: NBDOptionReplyType) -> ByteBuffer {
        var out = ByteBuffer()
        NBDOptionReply.write(option: option, type: type, into: &out)
        return out
    }

    private func error(_ option: NBDOptionCode, _ type: NBDOptionReplyType, _ message: String) -> ByteBuffer {
        var out = ByteBuffer()
        NBDOptionReply.writeError(option: option, type: type, message: message, into: &out)
        return out
    }

    private func exportError(_ option: NBDOptionCode, _ failure: NBDExportError) -> ByteBuffer {
        let type: NBDOptionReplyType =
            switch failure.kind {
            case .unknown: .errUnknown
            case .unavailable: .errPolicy
            case .shutdown: .errShutdown
            }
        return error(option, type, failure.message)
    }
}
