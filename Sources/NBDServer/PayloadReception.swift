import Glibc
import NIOConcurrencyHelpers
@_spi(CustomByteBufferAllocator) import NIOCore

/// Lets the socket read the rest of a write payload straight into the payload's own buffer, so
/// that its bytes are not read into a receive buffer and then copied (for 1 MiB writes that copy
/// was about a seventh of the server's processor time).
///
/// The connection handler parks an incomplete payload here; the connection's receive allocator
/// (`PayloadReceivingAllocator`) hands it out as the buffer of the next socket read, which comes
/// back to the handler as that read's data. The payload is never referenced twice while the
/// socket writes into it (a second reference would make the write copy the whole buffer).
/// Invariant: a parked payload is handed out to one read (`parked → handedOut`); the read's data
/// is taken for it only when it is the very memory handed out (`handedOut → empty`, then
/// `parked` again while bytes are missing). When the read that took it delivered nothing, the
/// slot empties: the bytes it held are gone, the next data is found not to be it, and the
/// handler ends the connection (no write of it was answered). A payload no read took goes back
/// to the handler (`parked → empty`). Used from the connection's event loop.
final class PayloadReception: Sendable {
    private enum Slot {
        case empty
        case parked(ByteBuffer)
        /// Handed out to a read; the address of its memory, to know it when it comes back.
        case handedOut(UInt)
    }

    /// What became of a parked payload by the time the next data arrived.
    enum Outcome {
        /// The socket read into it: the data that arrived is the payload, grown.
        case readInto
        /// No read took it (the data came from elsewhere): here it is, to be appended to.
        case untouched(ByteBuffer)
        /// A read took it and delivered nothing, the data is not its memory, or none was parked.
        case lost
    }

    private let slot = NIOLockedValueBox(Slot.empty)

    /// Gives `channel` the receive allocator that reads into the payloads parked in a new
    /// reception, and one read per wake-up; nil when the channel takes no options synchronously.
    static func install(on channel: any Channel) throws -> PayloadReception? {
        guard let options = channel.syncOptions else { return nil }
        let reception = PayloadReception()
        try options.setOption(.maxMessagesPerRead, value: 1)
        try options.setOption(.recvAllocator, value: PayloadReceivingAllocator(reception: reception))
        return reception
    }

    /// Gives `channel` back NIO's way of reading (once TLS starts, the socket's bytes are not the
    /// payloads'): up to four reads per wake-up, of up to 1 MiB each.
    static func uninstall(from channel: any Channel) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(.maxMessagesPerRead, value: 4)
        try options.setOption(
            .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 1 << 20))
    }

    /// Parks `payload` (which must have room for exactly its missing bytes) for the next read.
    func park(_ payload: ByteBuffer) {
        slot.withLockedValue { $0 = .parked(payload) }
    }

    /// Whether a payload waits for a read, or went to one that has not come back.
    var holdsPayload: Bool {
        slot.withLockedValue {
            switch $0 {
            case .parked, .handedOut: true
            case .empty: false
            }
        }
    }

    /// The receive allocator takes the parked payload as the buffer of the next read, if any.
    func handOut() -> ByteBuffer? {
        slot.withLockedValue { slot in
            switch slot {
            case .parked(let payload):
                slot = .handedOut(payload.address)
                return payload
            case .handedOut:
                // The read it went to delivered nothing (NIO drops such a buffer).
                slot = .empty
                return nil
            case .empty:
                return nil
            }
        }
    }

    /// The handler, given `data` while a payload is parked, learns what became of it.
    func reclaim(_ data: ByteBuffer) -> Outcome {
        slot.withLockedValue { slot in
            switch slot {
            case .parked(let payload):
                slot = .empty
                return .untouched(payload)
            case .handedOut(let address):
                slot = .empty
                return data.address == address ? .readInto : .lost
            case .empty:
                return .lost
            }
        }
    }

    /// Drops a parked payload (the connection ends).
    func clear() {
        slot.withLockedValue { $0 = .empty }
    }
}

extension ByteBuffer {
    /// Where the buffer's memory starts (its reader index may move; this does not).
    var address: UInt {
        withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
    }

    /// An empty buffer with room for exactly `length` bytes (not the power of two an allocation
    /// rounds up to), so that a socket read into it takes no byte past a payload. A payload of
    /// `alignedPayload` bytes or more starts at a multiple of 4 KiB of its memory
    /// (`pageAlignedAllocator`), so that the device under it can write it to disk with direct
    /// I/O as it is.
    static func payload(length: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var whole = (length >= alignedPayload ? pageAlignedAllocator : allocator).buffer(capacity: length)
        whole.moveWriterIndex(forwardBy: length)
        var bounded = whole.getSlice(at: whole.readerIndex, length: length)!
        bounded.moveWriterIndex(to: bounded.readerIndex)
        return bounded
    }

    /// Payloads from this size up (a whole chunk of the smallest size) are aligned for direct I/O.
    static let alignedPayload = 64 << 10

    /// Allocates memory that starts at a multiple of 4 KiB (a page: more than direct I/O asks of
    /// any device), with no more bytes than asked.
    static let pageAlignedAllocator = ByteBufferAllocator(
        allocate: { size in
            var memory: UnsafeMutableRawPointer?
            return posix_memalign(&memory, 4096, max(size, 1)) == 0 ? memory : nil
        },
        reallocate: { memory, _, size in realloc(memory, size) },
        deallocate: { free($0) },
        copy: { destination, source, count in destination.copyMemory(from: source, byteCount: count) })
}

/// The receive allocator of an NBD connection: the parked payload of `reception` when there is
/// one, else a buffer sized to what arrives, up to `maximum` (small enough that a read holding a
/// request header takes little of the payload behind it: the rest goes straight into the
/// payload's buffer). The channel must read one message per wake-up (`maxMessagesPerRead` 1, as
/// `PayloadReception.install` sets), so that NIO's buffer pool keeps no reference to a payload it
/// reads into.
struct PayloadReceivingAllocator: RecvByteBufferAllocator {
    let reception: PayloadReception
    private var sizes: AdaptiveRecvByteBufferAllocator

    static let maximum = 128 << 10

    init(reception: PayloadReception) {
        self.reception = reception
        self.sizes = AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: Self.maximum)
    }

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        reception.handOut() ?? sizes.buffer(allocator: allocator)
    }

    /// No size while the reception holds a payload: NIO then asks `buffer(allocator:)` (which
    /// hands the payload out, or finds that its read delivered nothing) rather than reusing a
    /// pooled buffer. (Before the connection's first read NIO would reuse its pooled buffer
    /// without a size; nothing can be parked before that read.)
    func nextBufferSize() -> Int? {
        reception.holdsPayload ? nil : sizes.nextBufferSize()
    }

    /// Always "may grow", so that NIO never reuses its pooled buffer without asking for a size.
    mutating func record(actualReadBytes: Int) -> Bool {
        _ = sizes.record(actualReadBytes: actualReadBytes)
        return true
    }
}
