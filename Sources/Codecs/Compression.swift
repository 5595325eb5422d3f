import CLZ4
import CZstd

/// How the frames of an object are compressed: not at all, with LZ4 (block format), or with
/// Zstandard at a level. Parsed from and shown as `off`, `lz4`, `zstd` or `zstd:LEVEL`.
public enum Compression: Sendable, Hashable, CustomStringConvertible {
    case off
    case lz4
    case zstd(level: Int32)

    /// The level `zstd` alone means.
    public static let defaultZstdLevel: Int32 = 3

    /// The id stored in an object's header (docs/object-format.md).
    public var id: UInt8 {
        switch self {
        case .off: 0
        case .lz4: 1
        case .zstd: 2
        }
    }

    /// Parses `off`, `lz4`, `zstd` or `zstd:LEVEL` (1-19); nil for anything else.
    public init?(parsing text: String) {
        switch text {
        case "off", "none": self = .off
        case "lz4": self = .lz4
        case "zstd": self = .zstd(level: Self.defaultZstdLevel)
        default:
            guard text.hasPrefix("zstd:"), let level = Int32(text.dropFirst(5)), (1...19).contains(level) else {
                return nil
            }
            self = .zstd(level: level)
        }
    }

    public var description: String {
        switch self {
        case .off: "off"
        case .lz4: "lz4"
        case .zstd(let level): level == Self.defaultZstdLevel ? "zstd" : "zstd:\(level)"
        }
    }

    /// Compresses `input`; nil when the result would not be smaller (the frame is stored raw).
    func compress(_ input: UnsafeRawBufferPointer, with context: CompressionContext) -> [UInt8]? {
        switch self {
        case .off:
            return nil
        case .lz4:
            let bound = Int(LZ4_compressBound(Int32(input.count)))
            var output = [UInt8](repeating: 0, count: bound)
            let written = output.withUnsafeMutableBytes { out in
                LZ4_compress_default(
                    input.baseAddress!.assumingMemoryBound(to: CChar.self),
                    out.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(input.count), Int32(bound))
            }
            guard written > 0, Int(written) < input.count else { return nil }
            output.removeLast(bound - Int(written))
            return output
        case .zstd(let level):
            let bound = ZSTD_compressBound(input.count)
            var output = [UInt8](repeating: 0, count: bound)
            let written = output.withUnsafeMutableBytes { out in
                ZSTD_compressCCtx(context.zstd(), out.baseAddress, bound, input.baseAddress, input.count, level)
            }
            guard ZSTD_isError(written) == 0, written < input.count else { return nil }
            output.removeLast(bound - written)
            return output
        }
    }

    /// Decompresses `input` into exactly `output.count` bytes; false when the input is damaged
    /// or does not decode to that many bytes.
    func decompress(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, with context: CompressionContext
    ) -> Bool {
        switch self {
        case .off:
            return false
        case .lz4:
            guard input.count > 0 else { return false }
            let read = LZ4_decompress_safe(
                input.baseAddress!.assumingMemoryBound(to: CChar.self),
                output.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(input.count), Int32(output.count))
            return Int(read) == output.count
        case .zstd:
            let read = ZSTD_decompressDCtx(
                context.zstdDecoder(), output.baseAddress, output.count, input.baseAddress, input.count)
            return ZSTD_isError(read) == 0 && read == output.count
        }
    }
}

/// The Zstandard contexts one encode or decode reuses across its frames (creating them per frame
/// would cost an allocation of their work space each time). Owned by one caller at a time.
final class CompressionContext {
    private var encoder: OpaquePointer?
    private var decoder: OpaquePointer?

    init() {}

    func zstd() -> OpaquePointer? {
        if encoder == nil { encoder = ZSTD_createCCtx() }
        return encoder
    }

    func zstdDecoder() -> OpaquePointer? {
        if decoder == nil { decoder = ZSTD_createDCtx() }
        return decoder
    }

    deinit {
        if let encoder { ZSTD_freeCCtx(encoder) }
        if let decoder { ZSTD_freeDCtx(decoder) }
    }
}
