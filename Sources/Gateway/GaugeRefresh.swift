import Metrics
import TapeLibrary

/// Sets the gauges a scrape shows from the daemon's current state: the cache, each volume, and
/// each tape drive.
struct GaugeRefresh: Sendable {
    let volumes: VolumeManager
    let library: Library

    func callAsFunction() {
        let cache = volumes.cache.status()
        Gauge(label: "blockgate_cache_capacity_bytes").record(cache.capacity)
        Gauge(label: "blockgate_cache_used_bytes").record(cache.used)
        Gauge(label: "blockgate_cache_dirty_bytes").record(cache.dirtyBytes)
        Gauge(label: "blockgate_cache_upload_backlog_chunks").record(cache.uploadBacklog)
        Gauge(label: "blockgate_cache_hits").record(cache.hits)
        Gauge(label: "blockgate_cache_misses").record(cache.misses)
        for volume in volumes.list() {
            let dimensions = [("volume", volume.name)]
            Gauge(label: "blockgate_volume_allocated_bytes", dimensions: dimensions).record(volume.allocatedBytes)
            Gauge(label: "blockgate_volume_clients", dimensions: dimensions).record(volume.clients)
            if let dirty = volume.dirtyBytes {
                Gauge(label: "blockgate_volume_dirty_bytes", dimensions: dimensions).record(dirty)
            }
            if let held = volume.heldWrites {
                Gauge(label: "blockgate_volume_held_writes", dimensions: dimensions).record(held)
            }
        }
        for drive in library.status().drives {
            let dimensions = [("drive", drive.drive)]
            Gauge(label: "blockgate_tape_drive_loaded", dimensions: dimensions).record(drive.barcode == nil ? 0 : 1)
            Gauge(label: "blockgate_tape_drive_attached", dimensions: dimensions).record(drive.attached ? 1 : 0)
            Gauge(label: "blockgate_tape_drive_file", dimensions: dimensions).record(drive.file ?? 0)
        }
    }
}
