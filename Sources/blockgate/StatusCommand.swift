import ArgumentParser
import ChunkEngine
import Gateway
import TapeLibrary

/// `blockgate status`: one screen on the whole daemon: exports and their clients, the cache and
/// uploads, the tape library.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Summarise exports, clients, cache, uploads and the tape library.",
        discussion: "Example: blockgate status --json")
    @OptionGroup var admin: AdminOptions

    /// What `status --json` prints.
    struct Summary: Encodable {
        let volumes: [VolumeInfo]
        let cache: CacheManager.Status
        let library: LibraryStatus
    }

    func run() throws {
        let summary = Summary(
            volumes: try admin.send(AdminRequest(op: .volumeList)).volumes ?? [],
            cache: try admin.send(AdminRequest(op: .cacheStatus)).cache!,
            library: try admin.send(AdminRequest(op: .libraryStatus)).library!)
        if admin.json { return try admin.printJSON(summary) }
        let clients = summary.volumes.reduce(0) { $0 + $1.clients }
        print("volumes: \(summary.volumes.count), clients attached: \(clients)")
        printTable(
            summary.volumes.map {
                [
                    "  \($0.name)", $0.kind, ByteSize.format($0.size),
                    "\(ByteSize.format($0.allocatedBytes)) allocated",
                    "\($0.clients) client(s)" + ($0.dirtyBytes.map { ", \(ByteSize.format($0)) to upload" } ?? "")
                        + ($0.heldWrites.flatMap { $0 > 0 ? ", \($0) write(s) held back until uploads drain" : nil }
                            ?? "") + ($0.fenced == nil ? "" : ", FENCED: a sync failed, flushes fail until a restart")
                        + ($0.degraded == true ? ", DEGRADED: damaged data in the object store (see the log)" : ""),
                ]
            })
        let cache = summary.cache
        print(
            "cache: \(ByteSize.format(cache.used)) of \(ByteSize.format(cache.capacity)) used, "
                + "\(ByteSize.format(cache.dirtyBytes)) dirty, \(cache.uploadBacklog) chunk(s) to upload, "
                + "\(cache.hits) hits, \(cache.misses) misses")
        let library = summary.library
        let tapesInSlots = library.slots.filter { $0.barcode != nil }.count
        print(
            "library: \(tapesInSlots) of \(library.slots.count) slots full, station \(library.station ?? "empty"), "
                + "\(library.shelf.count) tape(s) on the shelf")
        printTable(
            library.drives.map { drive in
                [
                    "  drive/\(drive.drive)", drive.barcode ?? "empty",
                    drive.barcode == nil ? "" : "file \(drive.file ?? 0)" + (drive.attached ? ", client attached" : ""),
                ]
            })
    }
}
