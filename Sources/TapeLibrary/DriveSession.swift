import BlockDevice
import NIOConcurrencyHelpers
import NIOCore

/// One client's use of a tape drive, as a block device: offset 0 is the start of the file at the
/// head, the size is the capacity left from there, reads past the end of the file are zeros,
/// and writes go to the open file only. Remembers whether it wrote, so that closing can seal.
/// Requests first wait for the seal of the previous client's file, when one is in progress.
public final class DriveSession: BlockDevice {
    public let tape: Tape
    public let file: Int
    public let size: UInt64
    public let capabilities: BlockDeviceCapabilities
    private let wrote = NIOLockedValueBox(false)
    private let previousSeal: Task<Bool, Never>?

    init(tape: Tape, position: Tape.Position, readOnly: Bool, after previousSeal: Task<Bool, Never>?) {
        self.tape = tape
        self.previousSeal = previousSeal
        self.file = position.headFile
        self.size = position.spaceFromHead
        self.capabilities = Self.capabilities(readOnly: readOnly)
    }

    /// What a drive export offers: no discard or zeroing, one client (no multi-conn).
    public static func capabilities(readOnly: Bool) -> BlockDeviceCapabilities {
        BlockDeviceCapabilities(
            readOnly: readOnly, canFlush: true, canFUA: true, canTrim: false, canZero: false, canFastZero: false,
            canCache: false, canMultiConn: false, rotational: true)
    }

    /// The client wrote to the tape.
    public var hasWritten: Bool { wrote.withLockedValue { $0 } }

    /// Waits for the previous client's file to be sealed.
    private func ready() async throws {
        guard let previousSeal else { return }
        guard await previousSeal.value else {
            throw BlockDeviceError(.io, "the file the drive's previous client wrote could not be sealed; see the log")
        }
    }

    public func read(offset: UInt64, length: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ReadResult> {
        eventLoop.makeFutureWithTask { [tape, file] in
            try await self.ready()
            return .data(ByteBuffer(bytes: try await tape.read(file: file, offset: offset, length: length)))
        }
    }

    public func write(offset: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        eventLoop.makeFutureWithTask { [tape, wrote] in
            try await self.ready()
            wrote.withLockedValue { $0 = true }
            try await tape.write(offset: offset, data: data)
            if fua { try await tape.flush() }
        }
    }

    public func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeFutureWithTask { [tape] in
            try await self.ready()
            try await tape.flush()
        }
    }

    public func trim(offset: UInt64, length: UInt64, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeFailedFuture(BlockDeviceError(.notSupported, "a tape drive does not discard"))
    }

    public func writeZeroes(offset: UInt64, length: UInt64, options: ZeroOptions, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        eventLoop.makeFailedFuture(BlockDeviceError(.notSupported, "a tape drive does not zero ranges"))
    }

    public func cache(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeSucceededVoidFuture()
    }

    public func blockStatus(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<
        [BlockExtent]
    > {
        eventLoop.makeSucceededFuture([BlockExtent(length: length, isHole: false, isZero: false)])
    }
}
