import BlockDevice
import NBDProtocol
import NIOCore

/// Turns request outcomes into reply bytes in the style the session negotiated: simple replies,
/// structured chunks or extended chunks.
struct ReplyEncoder {
    let options: NBDSessionOptions
    let allocator: ByteBufferAllocator

    /// A successful reply without data (everything but READ and BLOCK_STATUS).
    func success(cookie: UInt64, offset: UInt64) -> ByteBuffer {
        var out = allocator.buffer(capacity: NBDWireSize.extendedReplyHeader)
        if options.extendedHeaders {
            NBDReply.writeNone(cookie: cookie, requestOffset: offset, extended: true, into: &out)
        } else {
            NBDReply.writeSimple(cookie: cookie, error: .ok, into: &out)
        }
        return out
    }

    /// A failed reply; chunks carry the message, simple replies only the error number.
    func failure(cookie: UInt64, offset: UInt64, error: NBDErrno, message: String) -> ByteBuffer {
        var out = allocator.buffer(capacity: NBDWireSize.extendedReplyHeader + 6 + message.utf8.count)
        if options.usesChunks {
            NBDReply.writeError(
                cookie: cookie, error: error, message: message, requestOffset: offset,
                extended: options.extendedHeaders, into: &out)
        } else {
            NBDReply.writeSimple(cookie: cookie, error: error, into: &out)
        }
        return out
    }

    /// What goes before the data of a successful READ reply whose `length` bytes are sent as one
    /// piece right after it (a file region).
    func readHeader(cookie: UInt64, offset: UInt64, length: Int) -> ByteBuffer {
        guard options.usesChunks else {
            var header = allocator.buffer(capacity: NBDWireSize.simpleReply)
            NBDReply.writeSimple(cookie: cookie, error: .ok, into: &header)
            return header
        }
        return dataChunkHeader(cookie: cookie, at: offset, requestOffset: offset, length: length, done: true)
    }

    /// The buffers of a successful READ reply, in order.
    /// - Parameter dontFragment: the client set DF: one data chunk, holes as explicit zeros.
    func read(cookie: UInt64, offset: UInt64, length: Int, result: ReadResult, dontFragment: Bool) -> [ByteBuffer] {
        if !options.usesChunks {
            return [readHeader(cookie: cookie, offset: offset, length: length)] + flattened(result)
        }
        if length == 0 {
            return [noneChunk(cookie: cookie, offset: offset)]
        }
        switch result {
        case .data(let data):
            return [readHeader(cookie: cookie, offset: offset, length: length), data]
        case .segments(let segments) where dontFragment:
            return [readHeader(cookie: cookie, offset: offset, length: length)] + flattened(.segments(segments))
        case .segments(let segments):
            var buffers: [ByteBuffer] = []
            buffers.reserveCapacity(segments.count * 2)
            var position = offset
            var index = 0
            while index < segments.count {
                switch segments[index] {
                case .hole(let holeLength):
                    var chunk = allocator.buffer(capacity: NBDWireSize.extendedReplyHeader + 12)
                    NBDReply.writeOffsetHole(
                        cookie: cookie, offset: position, requestOffset: offset, length: UInt32(holeLength),
                        done: index == segments.count - 1, extended: options.extendedHeaders, into: &chunk)
                    buffers.append(chunk)
                    position += UInt64(holeLength)
                    index += 1
                case .data:
                    // Data segments in a row (a range read from several buffers, as a download's
                    // pieces) go as one data chunk.
                    var end = index
                    var runLength = 0
                    while end < segments.count, case .data(let data) = segments[end] {
                        runLength += data.readableBytes
                        end += 1
                    }
                    buffers.append(
                        dataChunkHeader(
                            cookie: cookie, at: position, requestOffset: offset, length: runLength,
                            done: end == segments.count))
                    for case .data(let data) in segments[index..<end] { buffers.append(data) }
                    position += UInt64(runLength)
                    index = end
                }
            }
            return buffers
        }
    }

    /// A successful BLOCK_STATUS reply for base:allocation, clipped to the request.
    func blockStatus(
        cookie: UInt64, offset: UInt64, length: UInt64, extents: [BlockExtent], reqOne: Bool, contextID: UInt32
    ) -> ByteBuffer {
        var wire: [NBDExtent] = []
        var covered: UInt64 = 0
        let maxExtentLength: UInt64 = options.extendedHeaders ? .max : 0xFFFF_F000
        for extent in extents where covered < length && extent.length > 0 {
            let clipped = min(extent.length, length - covered, maxExtentLength)
            var flags: NBDAllocationFlags = []
            if extent.isHole { flags.insert(.hole) }
            if extent.isZero { flags.insert(.zero) }
            if let last = wire.last, last.flags == flags, last.length + clipped <= maxExtentLength {
                wire[wire.count - 1].length += clipped
            } else {
                wire.append(NBDExtent(length: clipped, flags: flags))
            }
            covered += clipped
            if clipped < extent.length { break }
        }
        if reqOne { wire = Array(wire.prefix(1)) }
        var out = allocator.buffer(capacity: NBDWireSize.extendedReplyHeader + 8 + 16 * wire.count)
        NBDReply.writeBlockStatus(
            cookie: cookie, contextID: contextID, extents: wire, requestOffset: offset,
            extended: options.extendedHeaders, into: &out)
        return out
    }

    private func noneChunk(cookie: UInt64, offset: UInt64) -> ByteBuffer {
        var out = allocator.buffer(capacity: NBDWireSize.extendedReplyHeader)
        NBDReply.writeNone(cookie: cookie, requestOffset: offset, extended: options.extendedHeaders, into: &out)
        return out
    }

    private func dataChunkHeader(
        cookie: UInt64, at position: UInt64, requestOffset: UInt64, length: Int, done: Bool
    ) -> ByteBuffer {
        var out = allocator.buffer(capacity: NBDWireSize.extendedReplyHeader + 8)
        NBDReply.writeOffsetDataHeader(
            cookie: cookie, offset: position, requestOffset: requestOffset, dataLength: length, done: done,
            extended: options.extendedHeaders, into: &out)
        return out
    }

    /// The data of a read with holes turned into zero bytes.
    private func flattened(_ result: ReadResult) -> [ByteBuffer] {
        switch result {
        case .data(let data): return [data]
        case .segments(let segments):
            return segments.map { segment in
                switch segment {
                case .data(let data): return data
                case .hole(let length):
                    var zeros = allocator.buffer(capacity: length)
                    zeros.writeRepeatingByte(0, count: length)
                    return zeros
                }
            }
        }
    }
}
