/// Where a tape is: a storage slot, a drive (remembering the slot it came from), the
/// import/export station, or the shelf (the archive in the object store). Stored as text:
/// "slot 3", "drive 0 from slot 3", "drive 0", "station", "shelf".
public enum TapeLocation: Sendable, Hashable, CustomStringConvertible {
    case slot(Int)
    case drive(String, home: Int?)
    case station
    case shelf

    public init?(stored: String) {
        let words = stored.split(separator: " ").map(String.init)
        switch (words.first, words.count) {
        case ("slot", 2):
            guard let slot = Int(words[1]) else { return nil }
            self = .slot(slot)
        case ("drive", 2): self = .drive(words[1], home: nil)
        case ("drive", 5) where words[2] == "from" && words[3] == "slot":
            guard let home = Int(words[4]) else { return nil }
            self = .drive(words[1], home: home)
        case ("station", 1): self = .station
        case ("shelf", 1): self = .shelf
        default: return nil
        }
    }

    /// The text kept in the database.
    public var stored: String {
        switch self {
        case .drive(let drive, .some(let home)): "drive \(drive) from slot \(home)"
        default: description
        }
    }

    public var description: String {
        switch self {
        case .slot(let slot): "slot \(slot)"
        case .drive(let drive, _): "drive \(drive)"
        case .station: "station"
        case .shelf: "shelf"
        }
    }

    /// The slot the tape is in, if it is in one.
    public var slot: Int? {
        if case .slot(let slot) = self { return slot }
        return nil
    }

    /// The drive the tape is in, if it is in one.
    public var drive: String? {
        if case .drive(let drive, _) = self { return drive }
        return nil
    }
}

/// Barcodes: 5 to 16 characters of A-Z and 0-9.
public enum Barcode {
    /// - Throws: `TapeLibraryError.invalid` saying what a barcode must be.
    public static func validate(_ barcode: String) throws(TapeLibraryError) {
        guard (5...16).contains(barcode.count),
            barcode.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) || ("0"..."9").contains($0) })
        else {
            throw TapeLibraryError(
                .invalid, "'\(barcode)' is not a valid barcode; use 5-16 characters of A-Z and 0-9, e.g. TAPE0001")
        }
    }
}

/// Why a library operation was refused or failed; the message says what to do.
public struct TapeLibraryError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case invalid, notFound, conflict, failed
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
