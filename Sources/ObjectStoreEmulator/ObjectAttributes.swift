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
        update { buckets in
            guard buckets[bucket]?.objectLock != true else { return false }
            buckets[bucket, default: Bucket()].objectLock = true
            return true
        }
    }

    func attributes(_ bucket: String, _ key: String) -> Attributes {
        buckets.withLockedValue { $0[bucket]?.objects[key] } ?? Attributes()
    }

    /// Records an object's attributes (the default ones are not kept). Most requests change
    /// none: they cost a lookup, and the file is written only when something changed.
    func set(_ bucket: String, _ key: String, _ attributes: Attributes) {
        let kept = attributes == Attributes() ? nil : attributes
        update { buckets in
            guard buckets[bucket]?.objects[key] != kept else { return false }
            buckets[bucket, default: Bucket()].objects[key] = kept
            return true
        }
    }

    /// Applies `change`; saves the file when it says it changed something.
    private func update(_ change: (inout [String: Bucket]) -> Bool) {
        buckets.withLockedValue { buckets in
            guard change(&buckets), let data = try? JSONEncoder().encode(buckets) else { return }
            try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
        }
    }
}
