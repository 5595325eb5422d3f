import BlockDevice
import NIOConcurrencyHelpers
import NIOCore

/// A real block device whose writes from an offset on can be held back (never completing, as
/// when a crash comes first), and whose flushes can be made to fail after a number of them: the
/// two moments of a crash a tape's commit must survive.
final class HeldWritesDevice: BlockDevice, @unchecked Sendable {
    private let base: any BlockDevice
    private let state = NIOLockedValueBox(
        (holdFrom: UInt64.max, held: [EventLoopPromise<Void>](), flushesLeft: Int.max))

    init(wrapping base: any BlockDevice) {
        self.base = base
    }

    /// Writes at `offset` or later stay in flight from now on.
    func holdWrites(from offset: UInt64) { state.withLockedValue { $0.holdFrom = offset } }

    /// Writes held so far.
    var heldCount: Int { state.withLockedValue { $0.held.count } }

    /// After `count` more successful flushes, every flush fails with EIO.
    func failFlushes(after count: Int) { state.withLockedValue { $0.flushesLeft = count } }

    var size: UInt64 { base.size }
    var capabilities: BlockDeviceCapabilities { base.capabilities }

    func read(offset: UInt64, length: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ReadResult> {
        base.read(offset: offset, length: length, on: eventLoop)
    }

    func write(offset: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let held: EventLoopPromise<Void>? = state.withLockedValue { state in
            guard offset >= state.holdFrom else { return nil }
            let promise = eventLoop.makePromise(of: Void.self)
            state.held.append(promise)
            return promise
        }
        return held?.futureResult ?? base.write(offset: offset, data: data, fua: fua, on: eventLoop)
    }

    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let fail = state.withLockedValue { state in
            guard state.flushesLeft > 0 else { return true }
            if state.flushesLeft != Int.max { state.flushesLeft -= 1 }
            return false
        }
        if fail { return eventLoop.makeFailedFuture(BlockDeviceError(.io, "flush failed (injected)")) }
        return base.flush(on: eventLoop)
    }

    func trim(offset: UInt64, length: UInt64, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        base.trim(offset: offset, length: length, fua: fua, on: eventLoop)
    }

    func writeZeroes(offset: UInt64, length: UInt64, options: ZeroOptions, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        base.writeZeroes(offset: offset, length: length, options: options, on: eventLoop)
    }

    func cache(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        base.cache(offset: offset, length: length, on: eventLoop)
    }

    func blockStatus(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<[BlockExtent]> {
        base.blockStatus(offset: offset, length: length, on: eventLoop)
    }
}
