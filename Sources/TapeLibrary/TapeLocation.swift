/// Where a tape is: a storage slot, a drive, the import/export station, or the shelf (the
/// archive in the object store). Stored as text: "slot 3", "drive 0", "station", "shelf".
public enum TapeLocation: Sendable, Hashable, CustomStringConvertible {
    case slot(Int)
    case drive(String)
    case station
    case shelf

    public init?(stored: String) {
        let words = stored.split(separator: " ", maxSplits: 1).map(String.init)
        switch (words.first, words.count) {
        case ("slot", 2):
            guard let slot = Int(words[1]) else { return nil }
            self = .slot(slot)
        case ("drive", 2): self = .drive(words[1])
        case ("station", 1): self = .station
        case ("shelf", 1): self = .shelf
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .slot(let slot): "slot \(slot)"
        case .drive(let drive): "drive \(drive)"
        case .station: "station"
        case .shelf: "shelf"
        }
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
