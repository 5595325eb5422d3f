import Foundation

/// What a store may do for objects kept in an archive (the tape shelf): move them to a colder
/// storage class, lock them against deletion until a date (S3 Object Lock, compliance mode),
/// and bring them back from a class that must be restored before it is read. S3 stores have it;
/// the file store does not.
public protocol ObjectArchiving: Sendable {
    /// Puts an object in `storageClass` (nil: leaves its class) and, with `retainUntil`, makes the
    /// store refuse to delete or overwrite it before then.
    func archive(_ key: ObjectKey, storageClass: String?, retainUntil: Date?) async throws
    /// Asks the store to make an object of a cold class readable for `days` days.
    func restore(_ key: ObjectKey, days: Int) async throws -> RestoreState
}

/// Where an object's restore from a cold storage class is.
public enum RestoreState: Sendable, Equatable {
    /// The object can be read now.
    case readable
    /// The store is restoring it.
    case inProgress
}

/// Storage classes whose objects must be restored before they are read (S3's Glacier
/// Flexible Retrieval and Deep Archive), and what a retrieval from them takes by default.
public enum ColdStorageClass {
    public static func needsRestore(_ storageClass: String) -> Bool {
        ["GLACIER", "DEEP_ARCHIVE"].contains(storageClass)
    }

    /// The time a standard retrieval from a class takes at AWS, in words (nil: at once).
    public static func typicalRetrieval(_ storageClass: String) -> String? {
        switch storageClass {
        case "GLACIER": "3-5 hours"
        case "DEEP_ARCHIVE": "up to 12 hours"
        default: nil
        }
    }
}
