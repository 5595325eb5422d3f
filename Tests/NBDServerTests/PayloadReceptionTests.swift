import NIOCore
import Testing

@testable import NBDServer

/// The hand-over of a parked write payload between the connection handler and the receive
/// allocator (pure logic; the socket path is in TransmissionTests).
@Suite struct PayloadReceptionTests {
    private func parkedPayload(length: Int, filled: Int) -> ByteBuffer {
        var payload = ByteBuffer.payload(length: length, allocator: ByteBufferAllocator())
        payload.writeRepeatingByte(7, count: filled)
        return payload
    }

    @Test(arguments: [4096, 100_000, 128 << 10, 300_000, 1 << 20])
    func aPayloadBufferHasRoomForExactlyItsLength(_ length: Int) {
        let payload = ByteBuffer.payload(length: length, allocator: ByteBufferAllocator())
        #expect(payload.readableBytes == 0)
        #expect(payload.writableBytes == length)
        // A large one starts where direct I/O can take it.
        let start = payload.withVeryUnsafeBytes { Int(bitPattern: $0.baseAddress) } + payload.readerIndex
        if length >= ByteBuffer.alignedPayload { #expect(start % 4096 == 0) }
    }

    @Test func theAllocatorHandsOutTheParkedPayloadAndThenItsOwnBuffers() {
        let reception = PayloadReception()
        var allocator = PayloadReceivingAllocator(reception: reception)
        #expect(allocator.nextBufferSize() != nil)
        reception.park(parkedPayload(length: 100_000, filled: 1000))
        // No size while parked, so that NIO asks for the buffer rather than reusing its own.
        #expect(allocator.nextBufferSize() == nil)
        var handedOut = allocator.buffer(allocator: ByteBufferAllocator())
        #expect(handedOut.readableBytes == 1000)
        #expect(handedOut.writableBytes == 99_000)
        // Still none until the read comes back.
        #expect(allocator.nextBufferSize() == nil)
        handedOut.writeRepeatingByte(8, count: 99_000)
        let mayGrow = allocator.record(actualReadBytes: 99_000)
        #expect(mayGrow)
        guard case .readInto = reception.reclaim(handedOut) else {
            Issue.record("the read into the payload was not recognised")
            return
        }
        let next = allocator.buffer(allocator: ByteBufferAllocator())
        #expect(next.readableBytes == 0)
        #expect(next.capacity <= PayloadReceivingAllocator.maximum)
        #expect(allocator.nextBufferSize() != nil)
    }

    @Test func aPayloadNoReadTookComesBackToBeAppendedTo() {
        let reception = PayloadReception()
        reception.park(parkedPayload(length: 4096, filled: 10))
        guard case .untouched(let payload) = reception.reclaim(ByteBuffer(bytes: [1])) else {
            Issue.record("the untouched payload was not given back")
            return
        }
        #expect(payload.readableBytes == 10)
        #expect(payload.writableBytes == 4086)
        #expect(!reception.holdsPayload)
    }

    @Test func aReadThatTookThePayloadAndDeliveredNothingLosesIt() {
        let reception = PayloadReception()
        let allocator = PayloadReceivingAllocator(reception: reception)
        reception.park(parkedPayload(length: 4096, filled: 10))
        _ = allocator.buffer(allocator: ByteBufferAllocator())
        // The next read asks again without the first having delivered anything.
        let fresh = allocator.buffer(allocator: ByteBufferAllocator())
        #expect(fresh.readableBytes == 0)
        guard case .lost = reception.reclaim(fresh) else {
            Issue.record("a lost payload was not reported")
            return
        }
    }

    @Test func dataThatIsNotTheMemoryHandedOutIsNeverTakenForThePayload() {
        let reception = PayloadReception()
        let allocator = PayloadReceivingAllocator(reception: reception)
        reception.park(parkedPayload(length: 4096, filled: 10))
        let handedOut = allocator.buffer(allocator: ByteBufferAllocator())
        // Data read into some other buffer (as if NIO had reused one of its own).
        guard case .lost = reception.reclaim(ByteBuffer(repeating: 0, count: 4086)) else {
            Issue.record("other memory was taken for the payload")
            return
        }
        withExtendedLifetime(handedOut) {}
    }

    /// Pins what the reception relies on in NIO's pool of receive buffers (capacity 1, as one
    /// read per wake-up makes it): after the connection's first read, the next read goes into
    /// the parked payload itself, written in place, and the pool keeps no reference to it.
    @Test func nioReadsIntoTheParkedPayloadItselfAndKeepsNoReferenceToIt() {
        let reception = PayloadReception()
        var pool = NIOPooledRecvBufferAllocator(
            capacity: 1, recvAllocator: PayloadReceivingAllocator(reception: reception))
        let allocator = ByteBufferAllocator()
        // The connection's first read (the client's flags) goes into a buffer of the pool's own.
        _ = pool.buffer(allocator: allocator) { $0.writeBytes([0, 0, 0, 3]) }
        pool.record(actualReadBytes: 4)
        var payload = parkedPayload(length: 100_000, filled: 1000)
        let address = payload.address
        reception.park(payload)
        payload = ByteBuffer()  // the handler keeps no reference
        let (read, addressWritten) = pool.buffer(allocator: allocator) { buffer -> UInt in
            // As the socket read does: a copy-on-write here would move the bytes.
            buffer.writeRepeatingByte(8, count: 50_000)
            return buffer.address
        }
        pool.record(actualReadBytes: 50_000)
        #expect(addressWritten == address, "the read went into other memory")
        #expect(read.readableBytes == 51_000)
        #expect(pool.count == 1)
        guard case .readInto = reception.reclaim(read) else {
            Issue.record("the read into the payload was not recognised")
            return
        }
        // Once the payload is whole, reads go into the pool's buffers again.
        let next = pool.buffer(allocator: allocator) { $0.writableBytes }
        #expect(next.0.readableBytes == 0)
        #expect(next.1 <= PayloadReceivingAllocator.maximum)
    }
}
