import Glibc
import LocalIO
import NIOConcurrencyHelpers
import NIOCore

/// Real file I/O whose writes can be held back, as a slow disk would keep them: while held, a
/// write waits, not yet issued, until `release` issues every waiting write or fails them with EIO.
public final class HeldWritesFileIO: FileIOWrapper, @unchecked Sendable {
    public let base: any FileIO
    private let state = NIOLockedValueBox((holding: false, waiting: [EventLoopPromise<Bool>]()))

    public init(wrapping base: any FileIO) {
        self.base = base
    }

    /// Holds the writes from now on.
    public func hold() { state.withLockedValue { $0.holding = true } }

    /// Writes waiting now.
    public var heldWrites: Int { state.withLockedValue { $0.waiting.count } }

    /// Stops holding writes; issues those waiting, or fails them with EIO.
    public func release(failing: Bool) {
        let waiting = state.withLockedValue { state in
            defer { state = (false, []) }
            return state.waiting
        }
        for write in waiting { write.succeed(failing) }
    }

    public func write(_ file: LocalFile, offset: UInt64, data: ByteBuffer, dsync: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let held = state.withLockedValue { state -> EventLoopFuture<Bool>? in
            guard state.holding else { return nil }
            let promise = eventLoop.makePromise(of: Bool.self)
            state.waiting.append(promise)
            return promise.futureResult
        }
        guard let held else { return base.write(file, offset: offset, data: data, dsync: dsync, on: eventLoop) }
        return held.flatMap { failing in
            guard !failing else {
                return eventLoop.makeFailedFuture(LocalIOError(errno: EIO, operation: "pwrite \(file.path)"))
            }
            return self.base.write(file, offset: offset, data: data, dsync: dsync, on: eventLoop)
        }
    }
}
