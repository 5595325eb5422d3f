import BlockDevice
import NIOConcurrencyHelpers
import NIOCore

/// An in-memory device for protocol tests: 4 KiB blocks never written are holes. A fake for
/// pure protocol logic; the real storage is tested through the gateway.
final class MemoryDevice: BlockDevice, Sendable {
    let size: UInt64
    let capabilities: BlockDeviceCapabilities
    private let state: NIOLockedValueBox<(bytes: [UInt8], written: Set<Int>)>
    /// Read completions are delayed by this much per request index, to force out-of-order replies.
    let readDelay: @Sendable (UInt64) -> TimeAmount
    private let reads = NIOLockedValueBox(0)

    private let writeStorage = NIOLockedValueBox<[Int]>([])

    /// Reads received so far.
    var readCount: Int { reads.withLockedValue { $0 } }
    /// For each write so far, the bytes its payload keeps allocated (its storage's capacity).
    var writePayloadStorage: [Int] { writeStorage.withLockedValue { $0 } }

    init(
        size: UInt64, capabilities: BlockDeviceCapabilities = BlockDeviceCapabilities(),
        readDelay: @escaping @Sendable (UInt64) -> TimeAmount = { _ in .zero }
    ) {
        self.size = size
        self.capabilities = capabilities
        self.state = NIOLockedValueBox(([UInt8](repeating: 0, count: Int(size)), []))
        self.readDelay = readDelay
    }

    func read(offset: UInt64, length: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ReadResult> {
        reads.withLockedValue { $0 += 1 }
        let result: ReadResult = state.withLockedValue { state in
            var segments: [ReadSegment] = []
            var position = Int(offset)
            let end = Int(offset) + length
            while position < end {
                let blockEnd = min((position / 4096 + 1) * 4096, end)
                let segment: ReadSegment =
                    state.written.contains(position / 4096)
                    ? .data(ByteBuffer(bytes: state.bytes[position..<blockEnd])) : .hole(blockEnd - position)
                // Holes in a row are one; data is a segment per block, as a device that reads
                // a range from several buffers answers.
                switch (segments.last, segment) {
                case (.hole(let last)?, .hole(let next)):
                    segments[segments.count - 1] = .hole(last + next)
                default:
                    segments.append(segment)
                }
                position = blockEnd
            }
            return .segments(segments)
        }
        let delay = readDelay(offset)
        if delay == .zero { return eventLoop.makeSucceededFuture(result) }
        return eventLoop.scheduleTask(in: delay) { result }.futureResult
    }

    func write(offset: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        writeStorage.withLockedValue { $0.append(data.storageCapacity) }
        state.withLockedValue { state in
            state.bytes.replaceSubrange(Int(offset)..<(Int(offset) + data.readableBytes), with: data.readableBytesView)
            for block in Int(offset) / 4096...(Int(offset) + data.readableBytes - 1) / 4096 {
                state.written.insert(block)
            }
        }
        return eventLoop.makeSucceededVoidFuture()
    }

    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { eventLoop.makeSucceededVoidFuture() }

    func trim(offset: UInt64, length: UInt64, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeSucceededVoidFuture()
    }

    func writeZeroes(offset: UInt64, length: UInt64, options: ZeroOptions, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        state.withLockedValue { state in
            for index in Int(offset)..<Int(offset + length) { state.bytes[index] = 0 }
        }
        return eventLoop.makeSucceededVoidFuture()
    }

    func cache(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeSucceededVoidFuture()
    }

    func blockStatus(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<[BlockExtent]> {
        let extents: [BlockExtent] = state.withLockedValue { state in
            var extents: [BlockExtent] = []
            var position = offset
            while position < min(offset + length, size) {
                let blockEnd = min((position / 4096 + 1) * 4096, size)
                let hole = !state.written.contains(Int(position / 4096))
                if let last = extents.last, last.isHole == hole {
                    extents[extents.count - 1].length += blockEnd - position
                } else {
                    extents.append(BlockExtent(length: blockEnd - position, isHole: hole, isZero: hole))
                }
                position = blockEnd
            }
            return extents
        }
        return eventLoop.makeSucceededFuture(extents)
    }
}
