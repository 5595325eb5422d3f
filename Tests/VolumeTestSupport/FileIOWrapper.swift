import LocalIO
import NIOCore

/// Real file I/O seen through a test's wrapper: every operation the wrapper does not change goes
/// to `base` as it is, so a wrapper states only what it changes.
public protocol FileIOWrapper: FileIO {
    var base: any FileIO { get }
}

extension FileIOWrapper {
    public var backendName: String { base.backendName }

    public func read(
        _ file: LocalFile, offset: UInt64, length: Int, on eventLoop: any EventLoop,
        completion: @escaping @Sendable (Result<ByteBuffer, any Error>) -> Void
    ) {
        base.read(file, offset: offset, length: length, on: eventLoop, completion: completion)
    }

    public func write(_ file: LocalFile, offset: UInt64, data: ByteBuffer, dsync: Bool, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        base.write(file, offset: offset, data: data, dsync: dsync, on: eventLoop)
    }

    public func syncData(_ file: LocalFile, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        base.syncData(file, on: eventLoop)
    }

    public func allocate(
        _ file: LocalFile, mode: FileAllocation, offset: UInt64, length: UInt64, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        base.allocate(file, mode: mode, offset: offset, length: length, on: eventLoop)
    }

    public func shutdown() async { await base.shutdown() }
}
