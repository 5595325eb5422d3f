import BlockDevice
import NIOCore

/// A device served read-only: reads, cache hints and block status go through; the read-only
/// capability makes the server refuse writes, trims and zeroing with EPERM before they get here.
final class ReadOnlyDevice: BlockDevice {
    private let device: any BlockDevice

    init(_ device: any BlockDevice) {
        self.device = device
    }

    /// `capabilities` with writing taken away.
    static func restrict(_ capabilities: BlockDeviceCapabilities) -> BlockDeviceCapabilities {
        var restricted = capabilities
        restricted.readOnly = true
        restricted.canTrim = false
        restricted.canZero = false
        restricted.canFastZero = false
        return restricted
    }

    var size: UInt64 { device.size }
    var capabilities: BlockDeviceCapabilities { Self.restrict(device.capabilities) }

    func read(offset: UInt64, length: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ReadResult> {
        device.read(offset: offset, length: length, on: eventLoop)
    }

    func readRegion(offset: UInt64, length: Int) -> RegionRead? {
        device.readRegion(offset: offset, length: length)
    }

    func write(offset: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        refused(eventLoop)
    }

    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        device.flush(on: eventLoop)
    }

    func trim(offset: UInt64, length: UInt64, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        refused(eventLoop)
    }

    func writeZeroes(offset: UInt64, length: UInt64, options: ZeroOptions, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        refused(eventLoop)
    }

    func cache(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        device.cache(offset: offset, length: length, on: eventLoop)
    }

    func blockStatus(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<[BlockExtent]> {
        device.blockStatus(offset: offset, length: length, on: eventLoop)
    }

    private func refused(_ eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeFailedFuture(BlockDeviceError(.notPermitted, "the export is read-only"))
    }
}
