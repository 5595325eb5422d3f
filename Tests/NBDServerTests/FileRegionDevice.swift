import BlockDevice
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// A device whose reads of at least `regionMinimum` bytes are file regions of a temporary file
/// holding `bytes` (the others are copied): for tests of how the server sends regions. It keeps
/// every region it handed out, to check that the server closed each one's descriptor and said
/// it was sent.
final class FileRegionDevice: BlockDevice, Sendable {
    let size: UInt64
    let capabilities = BlockDeviceCapabilities()
    let path: String
    private let bytes: [UInt8]
    private let regions = NIOLockedValueBox<[FileRegion]>([])
    private let sentCount = NIOLockedValueBox(0)
    static let regionMinimum = 64 << 10

    init(bytes: [UInt8]) throws {
        self.size = UInt64(bytes.count)
        self.bytes = bytes
        self.path = NSTemporaryDirectory() + "regions-\(UUID().uuidString.prefix(8)).img"
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw CocoaError(.fileWriteUnknown)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Regions handed out so far.
    var regionsGiven: [FileRegion] { regions.withLockedValue { $0 } }
    /// Regions the server said it sent or dropped.
    var regionsSent: Int { sentCount.withLockedValue { $0 } }

    func readRegion(offset: UInt64, length: Int) -> RegionRead? {
        guard length >= Self.regionMinimum else { return nil }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        let region = FileRegion(
            fileHandle: NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor), readerIndex: Int(offset),
            endIndex: Int(offset) + length)
        regions.withLockedValue { $0.append(region) }
        return RegionRead(region: region) { [sentCount] in sentCount.withLockedValue { $0 += 1 } }
    }

    func read(offset: UInt64, length: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ReadResult> {
        eventLoop.makeSucceededFuture(.data(ByteBuffer(bytes: bytes[Int(offset)..<(Int(offset) + length)])))
    }

    func write(offset: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeFailedFuture(BlockDeviceError(.notPermitted, "read-only"))
    }

    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { eventLoop.makeSucceededVoidFuture() }

    func trim(offset: UInt64, length: UInt64, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeSucceededVoidFuture()
    }

    func writeZeroes(offset: UInt64, length: UInt64, options: ZeroOptions, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        eventLoop.makeFailedFuture(BlockDeviceError(.notPermitted, "read-only"))
    }

    func cache(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeSucceededVoidFuture()
    }

    func blockStatus(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<[BlockExtent]> {
        eventLoop.makeSucceededFuture([BlockExtent(length: length, isHole: false, isZero: false)])
    }
}
