import Foundation

/// What a tape pool asks of its tapes once they go to the shelf: how long the library keeps an
/// exported tape (refusing to delete it before then), and whether the pool is WORM (its tapes
/// are created WORM and kept for ever once exported).
public struct PoolPolicy: Sendable, Equatable {
    /// Days an exported tape is kept from its export; nil: not kept.
    public var retentionDays: Int?
    public var worm: Bool

    public init(retentionDays: Int? = nil, worm: Bool = false) {
        self.retentionDays = retentionDays
        self.worm = worm
    }

    /// Until when (unix seconds) a tape exported at `now` is kept: `Int64.max` for ever, nil not at all.
    public func retainUntil(exportedAt now: Date) -> Int64? {
        if worm { return .max }
        return retentionDays.map { Int64(now.timeIntervalSince1970) + Int64($0) * 86400 }
    }

    /// How a retention ending at `until` reads: "for ever", or a UTC date and time.
    public static func describe(retainUntil until: Int64) -> String {
        guard until != .max else { return "for ever" }
        let formatter = ISO8601DateFormatter()
        return "until " + formatter.string(from: Date(timeIntervalSince1970: TimeInterval(until)))
    }
}
