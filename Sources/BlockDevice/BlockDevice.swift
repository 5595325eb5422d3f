import NIOCore

/// The one seam between a protocol front end and storage: every export (thin volume, cached
/// volume, tape drive) implements this.
///
/// Contract for implementations:
/// - Ranges are already validated by the caller: `offset + length <= size`, lengths are non-zero
///   and at most `capabilities.maximumRequest`, and only operations the capabilities offer arrive.
/// - Any operation may run concurrently with any other, from any thread; overlapping concurrent
///   writes may land in either order (as on a disk).
/// - A write whose future has succeeded is visible to every later read. `flush` makes every write
///   that completed before it was called durable; a write with `fua` is durable when it completes.
/// - Futures complete on the event loop passed in.
public protocol BlockDevice: AnyObject, Sendable {
    /// Size of the device in bytes.
    var size: UInt64 { get }
    /// What the device can do.
    var capabilities: BlockDeviceCapabilities { get }

    /// Reads `length` bytes at `offset`; ranges that are holes may come back as `.hole` segments.
    func read(offset: UInt64, length: Int, on eventLoop: any EventLoop) -> EventLoopFuture<ReadResult>
    /// Writes `data` at `offset`; with `fua` it is durable when the future succeeds.
    func write(offset: UInt64, data: ByteBuffer, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// Makes every completed write durable.
    func flush(on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// Discards a range: it may read back as zeros or as the old data until overwritten.
    func trim(offset: UInt64, length: UInt64, fua: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// Makes a range read as zeros.
    func writeZeroes(offset: UInt64, length: UInt64, options: ZeroOptions, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    /// Hints that a range will be read soon.
    func cache(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// Describes allocation from `offset` on: extents in order, starting at `offset`, covering at
    /// least one byte and at most `length` bytes.
    func blockStatus(offset: UInt64, length: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<[BlockExtent]>
    /// A read served without copying: its bytes as a region of a file to send as they are
    /// (sendfile), when the device has them so, in memory now; nil otherwise (then `read`). The
    /// file is read when the region is sent, so it shows a write or trim made before then, as a
    /// read concurrent with them may; the sender sends it soon, then closes its descriptor and
    /// calls its `sent`.
    func readRegion(offset: UInt64, length: Int) -> RegionRead?
}

extension BlockDevice {
    /// Most devices copy every read.
    public func readRegion(offset: UInt64, length: Int) -> RegionRead? { nil }
}

/// A read answered by a region of a file (`BlockDevice.readRegion`), and what the device needs
/// to hear once the region has been sent or dropped (what it held for the send, it releases).
public struct RegionRead: Sendable {
    public let region: FileRegion
    public let sent: @Sendable () -> Void

    public init(region: FileRegion, sent: @escaping @Sendable () -> Void = {}) {
        self.region = region
        self.sent = sent
    }
}

/// What a device offers; a protocol front end derives what it advertises from this alone.
public struct BlockDeviceCapabilities: Sendable, Equatable {
    /// Writes, trims and zeroing are refused.
    public var readOnly: Bool
    /// `flush` does real work.
    public var canFlush: Bool
    /// Writes honour `fua`.
    public var canFUA: Bool
    /// `trim` frees space.
    public var canTrim: Bool
    /// `writeZeroes` is efficient (no data transfer).
    public var canZero: Bool
    /// `writeZeroes` with `fastZero` fails quickly instead of falling back to slow writes.
    public var canFastZero: Bool
    /// `cache` is supported.
    public var canCache: Bool
    /// A flush covers writes completed through any client connection.
    public var canMultiConn: Bool
    /// The device behaves like a rotating disk (or a tape).
    public var rotational: Bool
    /// Smallest addressable unit; requests need not be aligned to it but are faster when they are.
    public var minimumBlockSize: UInt32
    /// Preferred request alignment and size.
    public var preferredBlockSize: UInt32
    /// Largest request the device accepts, in bytes.
    public var maximumRequest: UInt32

    public init(
        readOnly: Bool = false, canFlush: Bool = true, canFUA: Bool = true, canTrim: Bool = true,
        canZero: Bool = true, canFastZero: Bool = true, canCache: Bool = true, canMultiConn: Bool = true,
        rotational: Bool = false, minimumBlockSize: UInt32 = 1, preferredBlockSize: UInt32 = 4096,
        maximumRequest: UInt32 = 32 * 1024 * 1024
    ) {
        self.readOnly = readOnly
        self.canFlush = canFlush
        self.canFUA = canFUA
        self.canTrim = canTrim
        self.canZero = canZero
        self.canFastZero = canFastZero
        self.canCache = canCache
        self.canMultiConn = canMultiConn
        self.rotational = rotational
        self.minimumBlockSize = minimumBlockSize
        self.preferredBlockSize = preferredBlockSize
        self.maximumRequest = maximumRequest
    }
}

/// Options of `writeZeroes`.
public struct ZeroOptions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Keep the range allocated (write real zeros rather than punch a hole).
    public static let noHole = ZeroOptions(rawValue: 1 << 0)
    /// Fail with `notSupported` rather than do something slower than a write of zeros.
    public static let fastZero = ZeroOptions(rawValue: 1 << 1)
    /// Durable when the future succeeds.
    public static let fua = ZeroOptions(rawValue: 1 << 2)
}

/// The data of a read: one buffer, or segments of data and holes covering the range in order.
public enum ReadResult: Sendable {
    /// The whole range as one buffer.
    case data(ByteBuffer)
    /// The range in order, some of it holes (which read as zeros).
    case segments([ReadSegment])
}

/// One piece of a segmented read.
public enum ReadSegment: Sendable, Equatable {
    /// Bytes read.
    case data(ByteBuffer)
    /// This many bytes that read as zeros.
    case hole(Int)

    /// Bytes covered.
    public var length: Int {
        switch self {
        case .data(let buffer): buffer.readableBytes
        case .hole(let length): length
        }
    }
}

/// An allocation extent reported by `blockStatus`.
public struct BlockExtent: Sendable, Equatable {
    /// Bytes covered.
    public var length: UInt64
    /// The range is not allocated.
    public var isHole: Bool
    /// The range reads as zeros.
    public var isZero: Bool

    public init(length: UInt64, isHole: Bool, isZero: Bool) {
        self.length = length
        self.isHole = isHole
        self.isZero = isZero
    }
}
