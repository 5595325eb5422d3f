import Codecs

/// Appends little-endian integers and raw bytes: the writing half of the tape format codecs.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func append<Integer: FixedWidthInteger>(_ value: Integer) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }

    /// Appends the CRC-32C of everything written so far.
    mutating func appendChecksum() { append(CRC32C.checksum(bytes)) }
}

/// Reads little-endian integers and raw bytes in order, failing past the end: the reading half
/// of the tape format codecs.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func read<Integer: FixedWidthInteger>(_: Integer.Type) throws(TapeFormatError) -> Integer {
        let size = MemoryLayout<Integer>.size
        guard position + size <= bytes.count else { throw TapeFormatError("truncated at byte \(position)") }
        var value = Integer.zero
        for index in 0..<size { value |= Integer(bytes[position + index]) << (8 * index) }
        position += size
        return value
    }

    mutating func read(count: Int) throws(TapeFormatError) -> [UInt8] {
        guard position + count <= bytes.count else { throw TapeFormatError("truncated at byte \(position)") }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    /// Reads a CRC-32C and checks it against everything before it.
    mutating func readChecksum(of what: String) throws(TapeFormatError) {
        let expected = CRC32C.checksum(bytes[0..<position])
        guard try read(UInt32.self) == expected else { throw TapeFormatError("\(what) fails its CRC check") }
    }
}

/// Bytes that are not a valid tape header or group header.
public struct TapeFormatError: Error, Equatable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
