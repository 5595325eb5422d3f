import BlockDevice
import Logging
import NBDServer
import NIOCore
import NIOEmbedded

/// The program's entry (SwiftPM names an executable's main `<module>_main`): hands over to
/// libFuzzer's driver, which parses its flags and calls `fuzz` with each input.
@_cdecl("NBDWireFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var count = argc
    var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzz)
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// One input is everything a client sends on one connection. The server must answer or close,
/// never crash, whatever the bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let channel = EmbeddedChannel()
    let handler = NBDServer.connectionHandler(catalog: FuzzCatalog.shared, logger: FuzzCatalog.logger)
    try! channel.pipeline.syncOperations.addHandler(handler)
    channel.pipeline.fireChannelActive()
    var input = channel.allocator.buffer(capacity: size)
    input.writeBytes(UnsafeRawBufferPointer(start: data, count: size))
    // Feed the bytes in two pieces, so that messages split across reads are covered too.
    let split = size > 0 ? Int(data[0]) % (size + 1) : 0
    for piece in [input.getSlice(at: 0, length: split)!, input.getSlice(at: split, length: size - split)!]
    where channel.isActive {
        _ = try? channel.writeInbound(piece)
        channel.embeddedEventLoop.run()
    }
    while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
    _ = try? channel.finish(acceptAlreadyClosed: true)
    return 0
}

/// One small export, "disk", held in memory; and a logger that discards.
enum FuzzCatalog {
    static let shared = Catalog()
    static let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

    final class Catalog: NBDExportCatalog {
        let device = MemoryDevice(size: 1 << 20)

        func listExports() -> [NBDExportListing] {
            [NBDExportListing(name: "disk", description: "fuzz", size: device.size, capabilities: device.capabilities)]
        }

        func describeExport(named name: String) -> Result<NBDExportListing, NBDExportError> {
            name == "disk" || name.isEmpty
                ? .success(listExports()[0]) : .failure(NBDExportError(.unknown, "no export \(name)"))
        }

        func openExport(named name: String) -> Result<NBDExportSession, NBDExportError> {
            describeExport(named: name).map { _ in NBDExportSession(name: "disk", device: device) }
        }
    }
}

/// A 1 MiB device in memory, every operation completing at once.
final class MemoryDevice: BlockDevice, @unchecked Sendable {
    let size: UInt64
    let capabilities = BlockDeviceCapabilities(maximumRequest: 1 << 20)
    private var bytes: [UInt8]

    init(size: UInt64) {
        self.size = size
        self.bytes = [UInt8](repeating: 0, count: Int(size))
    }

    func read(offset: UInt64, length: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ReadResult> {
        let range = Int(offset)..<(Int(offset) + length)
        return eventLoop.makeSucceededFuture(.data(ByteBuffer(bytes: bytes[range])))
    }

    func write(offset: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        bytes.replaceSubrange(Int(offset)..<(Int(offset) + data.readableBytes), with: data.readableBytesView)
        return eventLoop.makeSucceededVoidFuture()
    }

    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void> { eventLoop.makeSucceededVoidFuture() }

    func trim(offset: UInt64, length: UInt64, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeSucceededVoidFuture()
    }

    func writeZeroes(offset: UInt64, length: UInt64, options: ZeroOptions, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        bytes.replaceSubrange(
            Int(offset)..<(Int(offset) + Int(length)), with: repeatElement(0, count: Int(length)))
        return eventLoop.makeSucceededVoidFuture()
    }

    func cache(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.makeSucceededVoidFuture()
    }

    func blockStatus(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<[BlockExtent]> {
        eventLoop.makeSucceededFuture([BlockExtent(length: length, isHole: false, isZero: false)])
    }
}
