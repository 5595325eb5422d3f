import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The local cache shared by all cached volumes: keeps their cached bytes under a capacity by
/// evicting the least recently used clean chunks (dirty chunks never leave before they are
/// uploaded), gives each volume's read-ahead its share, lets sequential streams past it once it
/// is full, and counts hits and misses.
public final class CacheManager: Sendable {
    /// What `cache status` reports.
    public struct Status: Sendable, Equatable, Codable {
        public var capacity: UInt64
        public var used: UInt64
        public var dirtyBytes: UInt64
        public var uploadBacklog: Int
        public var hits: UInt64
        public var misses: UInt64
        /// Bytes downloaded ahead of sequential readers, reads that found them, and bytes of
        /// them evicted before any read.
        public var readAheadBytes: UInt64
        public var readAheadHits: UInt64
        public var readAheadWastedBytes: UInt64

        enum CodingKeys: String, CodingKey {
            case capacity, used, hits, misses
            case dirtyBytes = "dirty_bytes"
            case uploadBacklog = "upload_backlog"
            case readAheadBytes = "read_ahead_bytes"
            case readAheadHits = "read_ahead_hits"
            case readAheadWastedBytes = "read_ahead_wasted_bytes"
        }
    }

    /// Bytes the cached volumes may keep locally.
    private let capacityBox: NIOLockedValueBox<UInt64>
    /// Bytes the cached volumes may keep locally; a smaller value evicts down to it.
    public var capacity: UInt64 {
        get { capacityBox.withLockedValue { $0 } }
        set {
            capacityBox.withLockedValue { $0 = newValue }
            for volume in volumes.withLockedValue({ Array($0.values) }) { volume.limitReadAhead(to: readAheadShare) }
        }
    }
    private let volumes = NIOLockedValueBox([ObjectIdentifier: Volume]())
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let logger: Logger

    public init(capacity: UInt64, logger: Logger) {
        self.capacityBox = NIOLockedValueBox(capacity)
        self.logger = logger
    }

    /// What one read-ahead window may hold: an eighth of the cache, so that a few streams at
    /// once stay well within it and what they download is not evicted before it is read.
    private var readAheadShare: UInt64 { capacity / 8 }

    /// Starts managing a cached volume (and its uploader and read-ahead).
    public func add(_ volume: Volume) {
        guard volume.kind == .cached else { return }
        volumes.withLockedValue { $0[ObjectIdentifier(volume)] = volume }
        volume.limitReadAhead(to: readAheadShare)
        volume.startReadAhead()
        volume.startUploader()
    }

    /// Stops managing a volume (and its uploader and read-ahead).
    public func remove(_ volume: Volume) async {
        _ = volumes.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(volume)) }
        await volume.stopReadAhead()
        await volume.stopUploader()
    }

    /// Starts the evictor.
    public func start() {
        task.withLockedValue { task in
            guard task == nil else { return }
            task = Task { await self.evictLoop() }
        }
    }

    /// Stops the evictor, every uploader and every read-ahead.
    public func stop() async {
        let running = task.withLockedValue { task in
            defer { task = nil }
            return task
        }
        running?.cancel()
        await running?.value
        for volume in volumes.withLockedValue({ Array($0.values) }) {
            await volume.stopReadAhead()
            await volume.stopUploader()
        }
    }

    /// The cache's state across volumes.
    public func status() -> Status {
        var status = Status(
            capacity: capacity, used: 0, dirtyBytes: 0, uploadBacklog: 0, hits: 0, misses: 0, readAheadBytes: 0,
            readAheadHits: 0, readAheadWastedBytes: 0)
        for volume in volumes.withLockedValue({ Array($0.values) }) {
            let usage = volume.cacheUsage
            status.used += usage.cachedBytes
            status.uploadBacklog += usage.dirtyChunks
            status.dirtyBytes += UInt64(usage.dirtyChunks) * UInt64(volume.geometry.chunkSize)
            let counts = volume.cacheCounts
            status.hits += counts.hits
            status.misses += counts.misses
            let readAhead = volume.readAheadCounts
            status.readAheadBytes += readAhead.bytes
            status.readAheadHits += readAhead.hits
            status.readAheadWastedBytes += readAhead.wastedBytes
        }
        return status
    }

    /// Evicts while the cache is over capacity; looks again every 50 ms once it is not (or
    /// nothing can be evicted).
    private func evictLoop() async {
        while !Task.isCancelled {
            if await evictExcess() == 0 { try? await Task.sleep(for: .milliseconds(50)) }
        }
    }

    /// Evicts the oldest chunks across volumes that bring the cache back under its capacity (one
    /// commit per volume); returns how many were evicted. Tells the volumes first whether their
    /// sequential streams go past the cache: when it has no room for another read-ahead window,
    /// the chunks in use stay, rather than make way for chunks read once.
    private func evictExcess() async -> Int {
        let managed = volumes.withLockedValue { Array($0.values) }
        let used = managed.reduce(UInt64(0)) { $0 + $1.cacheUsage.cachedBytes }
        let full = used + readAheadShare > capacity
        for volume in managed { volume.streamPastCache(full) }
        guard used > capacity else { return 0 }
        let oldest = managed.flatMap { volume in
            volume.evictionCandidates(limit: Volume.evictionBatch).map { (volume, $0) }
        }.sorted { $0.1.lastUse < $1.1.lastUse }
        var excess = used - capacity
        var batches: [ObjectIdentifier: (volume: Volume, indexes: [Int])] = [:]
        for (volume, candidate) in oldest where excess > 0 {
            batches[ObjectIdentifier(volume), default: (volume, [])].indexes.append(candidate.index)
            excess -= min(excess, candidate.bytes)
        }
        var evicted = 0
        for batch in batches.values { evicted += await batch.volume.evict(batch.indexes) }
        return evicted
    }
}
