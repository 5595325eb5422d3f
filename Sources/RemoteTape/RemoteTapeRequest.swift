import NIOCore

/// One request of the remote magnetic tape protocol (rmt), as a client writes it: a letter,
/// its arguments each ending in a newline, and for a write the bytes after them.
/// See docs/rmt.md.
public enum RemoteTapeRequest: Sendable, Equatable {
    /// `O device\n flags\n`: open a device; a device already open is closed first.
    case open(device: String, access: Access)
    /// `C device\n`: close the device (the name is ignored).
    case close
    /// `L offset\n whence\n`: lseek.
    case seek(offset: Int64, whence: Int)
    /// `R count\n`: read up to `count` bytes.
    case read(count: Int)
    /// `W count\n` and `count` bytes: write them.
    case write(ByteBuffer)
    /// `I op\n count\n`: an MTIOCTOP operation, numbered as the client's protocol version says.
    case operation(code: Int, count: Int)
    /// `i op\n count\n`: an extended operation (numbered as in the GNU/dump rmt).
    case extendedOperation(code: Int, count: Int)
    /// `S`: the binary MTIOCGET status.
    case status
    /// `s` and a letter: one field of the status, in decimal.
    case statusField(UInt8)

    /// How the device is opened.
    public enum Access: Sendable, Equatable {
        case readOnly, writeOnly, readWrite

        public var writes: Bool { self != .readOnly }
    }
}

/// Why the client's bytes are not the rmt protocol; the connection ends (as rmt exits).
public struct RemoteTapeProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Takes requests off the bytes a client sent, as they complete.
public struct RemoteTapeRequestParser: Sendable {
    /// The largest write taken; rmt clients write one record at a time.
    public static let maximumWrite = 16 << 20
    /// The longest argument line.
    static let maximumLine = 4096

    public init() {}

    /// The next whole request in `buffer`, consuming it; nil (consuming nothing) until one is there.
    /// - Throws: `RemoteTapeProtocolError` for an unknown letter, a bad number or an oversized request.
    public func next(from buffer: inout ByteBuffer) throws -> RemoteTapeRequest? {
        var view = buffer
        // Whitespace between requests is skipped (some clients end `S` with a newline).
        while let byte = view.getInteger(at: view.readerIndex, as: UInt8.self),
            byte == UInt8(ascii: "\n") || byte == UInt8(ascii: " ")
        {
            view.moveReaderIndex(forwardBy: 1)
        }
        guard let letter = view.readInteger(as: UInt8.self) else {
            buffer = view
            return nil
        }
        let request: RemoteTapeRequest
        switch letter {
        case UInt8(ascii: "O"):
            guard let device = try line(&view), let flags = try line(&view) else { return nil }
            request = .open(device: device, access: try Self.access(flags))
        case UInt8(ascii: "C"):
            guard try line(&view) != nil else { return nil }
            request = .close
        case UInt8(ascii: "L"):
            guard let offset = try line(&view), let whence = try line(&view) else { return nil }
            request = .seek(offset: try Self.number(offset), whence: Int(try Self.number(whence)))
        case UInt8(ascii: "R"):
            guard let count = try line(&view) else { return nil }
            request = .read(count: try Self.count(count))
        case UInt8(ascii: "W"):
            guard let line = try line(&view) else { return nil }
            let count = try Self.count(line)
            guard count <= Self.maximumWrite else {
                throw RemoteTapeProtocolError("a write of \(count) bytes is larger than \(Self.maximumWrite)")
            }
            guard let data = view.readSlice(length: count) else { return nil }
            request = .write(data)
        case UInt8(ascii: "I"), UInt8(ascii: "i"):
            guard let code = try line(&view), let count = try line(&view) else { return nil }
            let (op, n) = (Int(try Self.number(code)), Int(try Self.number(count)))
            request =
                letter == UInt8(ascii: "I") ? .operation(code: op, count: n) : .extendedOperation(code: op, count: n)
        case UInt8(ascii: "S"):
            request = .status
        case UInt8(ascii: "s"):
            guard let field = view.readInteger(as: UInt8.self) else { return nil }
            request = .statusField(field)
        default:
            throw RemoteTapeProtocolError("unknown request letter \(letter)")
        }
        buffer = view
        return request
    }

    /// The text up to the next newline, consumed with it; nil when no newline came yet.
    private func line(_ view: inout ByteBuffer) throws -> String? {
        guard let newline = view.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            guard view.readableBytes <= Self.maximumLine else {
                throw RemoteTapeProtocolError("an argument longer than \(Self.maximumLine) bytes")
            }
            return nil
        }
        let text = view.readString(length: newline - view.readerIndex)!
        view.moveReaderIndex(forwardBy: 1)
        return text
    }

    private static func number(_ text: String) throws -> Int64 {
        let words = text.split(separator: " ")
        guard words.count == 1, let value = Int64(words[0]) else {
            throw RemoteTapeProtocolError("'\(text)' is not a number")
        }
        return value
    }

    private static func count(_ text: String) throws -> Int {
        let value = try number(text)
        guard value >= 0, value <= Int32.max else { throw RemoteTapeProtocolError("'\(text)' is not a byte count") }
        return Int(value)
    }

    /// Open flags: a decimal number, symbolic O_ names joined by `|` (the O_ may be left out),
    /// or a number followed by its symbolic form (which wins). Only the access mode matters here.
    static func access(_ text: String) throws -> RemoteTapeRequest.Access {
        let words = text.split(separator: " ", omittingEmptySubsequences: true)
        guard let first = words.first else { throw RemoteTapeProtocolError("open flags are missing") }
        if let symbolic = words.dropFirst().first ?? (Int(first) == nil ? first : nil) {
            let names = symbolic.split(separator: "|").map { $0.hasPrefix("O_") ? $0.dropFirst(2) : $0[...] }
            if names.contains("RDWR") { return .readWrite }
            if names.contains("WRONLY") { return .writeOnly }
            guard names.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0 == "_" } }) else {
                throw RemoteTapeProtocolError("'\(text)' are not open flags")
            }
            return .readOnly
        }
        switch Int(first)! & 3 {
        case 0: return .readOnly
        case 1: return .writeOnly
        default: return .readWrite
        }
    }
}
