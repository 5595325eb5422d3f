import Foundation
import NIOConcurrencyHelpers

/// What the emulator keeps about objects beyond their bytes: storage class, Object Lock
/// retention and restore state, and which buckets have Object Lock. Kept in a JSON file beside
/// the buckets (`.attributes.json`, a name no bucket can have), so that a restarted emulator
/// still enforces its locks.
final class ObjectAttributes: Sendable {
    struct Attributes: Codable, Equatable {
        /// nil: STANDARD.
        var storageClass: String?
        /// Compliance-mode retention: neither deleted nor overwritten before this.
        var retainUntil: Date?
        /// Restored from a cold storage class.
        var restored = false

        func locked(at now: Date) -> Bool { retainUntil.map { $0 > now } ?? false }
    }

    struct Bucket: Codable {
        var objectLock = false
        var objects: [String: Attributes] = [:]
    }

    private let path: String
    private let buckets: NIOLockedValueBox<[String: Bucket]>

    init(directory: String) {
        path = directory + "/.attributes.json"
        let saved = (try? Data(contentsOf: URL(fileURLWithPath: path))).flatMap {
            try? JSONDecoder().decode([String: Bucket].self, from: $0)
        }
        buckets = NIOLockedValueBox(saved ?? [:])
    }

    func hasObjectLock(_ bucket: String) -> Bool { buckets.withLockedValue { $0[bucket]?.objectLock ?? false } }

    func enableObjectLock(_ bucket: String) {
        update { $0[bucket, default: Bucket()].objectLock = true }
    }

    func attributes(_ bucket: String, _ key: String) -> Attributes {
        buckets.withLockedValue { $0[bucket]?.objects[key] } ?? Attributes()
    }

    /// Records an object's attributes (the default ones are not kept).
    func set(_ bucket: String, _ key: String, _ attributes: Attributes) {
        update { $0[bucket, default: Bucket()].objects[key] = attributes == Attributes() ? nil : attributes }
    }

    private func update(_ change: (inout [String: Bucket]) -> Void) {
        buckets.withLockedValue { buckets in
            change(&buckets)
            if let data = try? JSONEncoder().encode(buckets) {
                try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
            }
        }
    }
}
