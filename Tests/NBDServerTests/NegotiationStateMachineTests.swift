import BlockDevice
import NBDProtocol
import NIOCore
import Testing

@testable import NBDServer

/// The negotiation phase as a plain value: options in, actions out.
@Suite struct NegotiationStateMachineTests {
    let catalog = FakeCatalog(devices: [
        "disk": MemoryDevice(size: 1 << 20),
        "other": MemoryDevice(size: 4096, capabilities: BlockDeviceCapabilities(readOnly: true)),
    ])

    private func negotiating(tls: NBDTLSMode = .off) -> NegotiationStateMachine {
        var machine = NegotiationStateMachine(catalog: catalog, tls: tls)
        #expect(machine.receivedClientFlags([.fixedNewstyle, .noZeroes]) == nil)
        return machine
    }

    private func option(_ code: NBDOptionCode, _ write: ((inout ByteBuffer) -> Void)? = nil) -> NBDOptionRequest {
        var payload = ByteBuffer()
        write?(&payload)
        return NBDOptionRequest(code: code, payload: payload)
    }

    /// The reply types in a sent buffer.
    private func replyTypes(_ action: NegotiationStateMachine.Action) throws -> [UInt32] {
        let bytes: ByteBuffer
        switch action {
        case .send(let out), .sendAndClose(let out), .startTransmission(let out, _, _), .startTLS(let out): bytes = out
        case .close: return []
        }
        var buffer = bytes
        var types: [UInt32] = []
        while let reply = try NBDOptionReplyHeader.decode(from: &buffer) { types.append(reply.type) }
        return types
    }

    @Test func unknownClientFlagsClose() {
        var machine = NegotiationStateMachine(catalog: catalog)
        guard case .close = machine.receivedClientFlags(NBDClientFlags(rawValue: 0x80)) else {
            Issue.record("unknown client flags must close the connection")
            return
        }
    }

    @Test func listAnswersEveryExportThenAck() throws {
        var machine = negotiating()
        #expect(try replyTypes(machine.receivedOption(option(.list))) == [2, 2, 1])
    }

    @Test func unknownOptionsAndStartTLSAreUnsupported() throws {
        var machine = negotiating()
        #expect(
            try replyTypes(machine.receivedOption(option(.unknown(99)))) == [NBDOptionReplyType.errUnsupported.rawValue]
        )
        #expect(
            try replyTypes(machine.receivedOption(option(.startTLS))) == [NBDOptionReplyType.errUnsupported.rawValue])
        #expect(machine.isNegotiating)
    }

    @Test func requiredTLSRefusesEveryOptionButStartTLSAndAbortUntilItIsOn() throws {
        var machine = negotiating(tls: .required)
        let refused = NBDOptionReplyType.errTLSRequired.rawValue
        #expect(try replyTypes(machine.receivedOption(option(.list))) == [refused])
        #expect(try replyTypes(machine.receivedOption(option(.structuredReply))) == [refused])
        let go = option(.go) { NBDInfoRequest(exportName: "disk", requests: []).write(into: &$0) }
        #expect(try replyTypes(machine.receivedOption(go)) == [refused])
        guard case .startTLS = machine.receivedOption(option(.startTLS)) else {
            Issue.record("STARTTLS must start TLS")
            return
        }
        #expect(try replyTypes(machine.receivedOption(option(.list))) == [2, 2, 1])
        #expect(
            try replyTypes(machine.receivedOption(option(.startTLS))) == [NBDOptionReplyType.errInvalid.rawValue])
        guard case .startTransmission = machine.receivedOption(go) else {
            Issue.record("GO inside TLS must start transmission")
            return
        }
    }

    @Test func exportNameBeforeRequiredTLSClosesTheConnection() {
        var machine = negotiating(tls: .required)
        guard case .close = machine.receivedOption(option(.exportName) { $0.writeString("disk") }) else {
            Issue.record("EXPORT_NAME cannot be refused with a reply: the connection must close")
            return
        }
        var aborting = negotiating(tls: .required)
        guard case .sendAndClose = aborting.receivedOption(option(.abort)) else {
            Issue.record("ABORT is allowed before TLS")
            return
        }
    }

    @Test func optionalTLSServesPlaintextAndForgetsWhatWasAgreedBeforeStartTLS() throws {
        var machine = negotiating(tls: .optional)
        #expect(try replyTypes(machine.receivedOption(option(.list))) == [2, 2, 1])
        #expect(try replyTypes(machine.receivedOption(option(.structuredReply))) == [1])
        guard case .startTLS = machine.receivedOption(option(.startTLS)) else {
            Issue.record("STARTTLS must start TLS")
            return
        }
        let go = option(.go) { NBDInfoRequest(exportName: "disk", requests: []).write(into: &$0) }
        guard case .startTransmission(_, _, let options) = machine.receivedOption(go) else {
            Issue.record("GO must start transmission")
            return
        }
        #expect(!options.structuredReplies)
    }

    @Test func goToAnUnknownExportSaysSoAndKeepsNegotiating() throws {
        var machine = negotiating()
        let action = machine.receivedOption(
            option(.go) { NBDInfoRequest(exportName: "nope", requests: []).write(into: &$0) })
        guard case .send(var out) = action, let reply = try NBDOptionReplyHeader.decode(from: &out) else {
            Issue.record("expected an error reply")
            return
        }
        #expect(reply.type == NBDOptionReplyType.errUnknown.rawValue)
        #expect(String(buffer: reply.payload).contains("nope"))
        #expect(machine.isNegotiating)
    }

    @Test func infoDescribesWithoutEnteringTransmission() throws {
        var machine = negotiating()
        let action = machine.receivedOption(
            option(.info) { NBDInfoRequest(exportName: "", requests: [1, 2, 3]).write(into: &$0) })
        #expect(try replyTypes(action) == [3, 3, 3, 3, 1])
        #expect(machine.isNegotiating)
    }

    @Test func malformedGoIsInvalid() throws {
        var machine = negotiating()
        let action = machine.receivedOption(option(.go) { $0.writeMultipleIntegers(UInt32(50), UInt16(0)) })
        #expect(try replyTypes(action) == [NBDOptionReplyType.errInvalid.rawValue])
    }

    @Test func metaContextNeedsStructuredReplies() throws {
        var machine = negotiating()
        let set = option(.setMetaContext) {
            NBDMetaContextRequest(exportName: "disk", queries: ["base:allocation"]).write(into: &$0)
        }
        #expect(try replyTypes(machine.receivedOption(set)) == [NBDOptionReplyType.errInvalid.rawValue])
        #expect(try replyTypes(machine.receivedOption(option(.structuredReply))) == [1])
        #expect(try replyTypes(machine.receivedOption(set)) == [4, 1])
    }

    @Test func selectedContextAppliesOnlyToTheSameExport() throws {
        for (goExport, expectContext) in [("disk", true), ("other", false)] {
            var machine = negotiating()
            _ = machine.receivedOption(option(.structuredReply))
            _ = machine.receivedOption(
                option(.setMetaContext) {
                    NBDMetaContextRequest(exportName: "disk", queries: ["base:allocation", "qemu:other"]).write(
                        into: &$0)
                })
            let action = machine.receivedOption(
                option(.go) { NBDInfoRequest(exportName: goExport, requests: []).write(into: &$0) })
            guard case .startTransmission(_, let session, let options) = action else {
                Issue.record("GO should start transmission")
                return
            }
            #expect(session.name == goExport)
            #expect(options.structuredReplies)
            #expect((options.allocationContextID != nil) == expectContext)
        }
    }

    @Test func listMetaContextWithoutQueriesListsAllocation() throws {
        var machine = negotiating()
        _ = machine.receivedOption(option(.structuredReply))
        let action = machine.receivedOption(
            option(.listMetaContext) { NBDMetaContextRequest(exportName: "disk", queries: []).write(into: &$0) })
        #expect(try replyTypes(action) == [4, 1])
    }

    @Test func structuredRepliesCannotFollowExtendedHeaders() throws {
        var machine = negotiating()
        #expect(try replyTypes(machine.receivedOption(option(.extendedHeaders))) == [1])
        #expect(
            try replyTypes(machine.receivedOption(option(.structuredReply)))
                == [NBDOptionReplyType.errExtendedHeaderRequired.rawValue])
        let action = machine.receivedOption(
            option(.go) { NBDInfoRequest(exportName: "disk", requests: []).write(into: &$0) })
        guard case .startTransmission(_, _, let options) = action else {
            Issue.record("GO should start transmission")
            return
        }
        #expect(options.extendedHeaders)
    }

    @Test func exportNameRepliesWithoutPaddingAfterNoZeroes() throws {
        var machine = negotiating()
        var name = ByteBuffer()
        name.writeString("disk")
        guard
            case .startTransmission(let out, let session, _) = machine.receivedOption(
                NBDOptionRequest(code: .exportName, payload: name))
        else {
            Issue.record("EXPORT_NAME should start transmission")
            return
        }
        #expect(out.readableBytes == 10)
        #expect(session.device.size == 1 << 20)
    }

    @Test func exportNameOfAnUnknownExportCloses() {
        var machine = negotiating()
        var name = ByteBuffer()
        name.writeString("missing")
        guard case .close = machine.receivedOption(NBDOptionRequest(code: .exportName, payload: name)) else {
            Issue.record("EXPORT_NAME of an unknown export must close")
            return
        }
    }

    @Test func abortAcknowledgesThenCloses() throws {
        var machine = negotiating()
        let action = machine.receivedOption(option(.abort))
        guard case .sendAndClose = action else {
            Issue.record("ABORT should acknowledge and close")
            return
        }
        #expect(try replyTypes(action) == [1])
    }

    @Test func flagsFollowCapabilities() {
        let readOnly = NBDTransmissionFlags(
            capabilities: BlockDeviceCapabilities(readOnly: true), structuredReplies: false)
        #expect(readOnly.contains(.readOnly))
        #expect(!readOnly.contains(.sendTrim) && !readOnly.contains(.sendWriteZeroes) && !readOnly.contains(.sendFUA))
        let full = NBDTransmissionFlags(capabilities: BlockDeviceCapabilities(), structuredReplies: true)
        #expect(
            full.isSuperset(of: [
                .hasFlags, .sendFlush, .sendFUA, .sendTrim, .sendWriteZeroes, .sendFastZero, .canMultiConn, .sendCache,
                .sendDF,
            ]))
        let noMultiConn = NBDTransmissionFlags(
            capabilities: BlockDeviceCapabilities(canFastZero: false, canMultiConn: false), structuredReplies: false)
        #expect(
            !noMultiConn.contains(.canMultiConn) && !noMultiConn.contains(.sendFastZero)
                && !noMultiConn.contains(.sendDF))
    }
}
