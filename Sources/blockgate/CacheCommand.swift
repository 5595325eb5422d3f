import ArgumentParser
import Gateway

/// `blockgate cache status`: the local cache of cached volumes.
struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache", abstract: "Inspect the local cache of cached volumes.", subcommands: [Status.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Capacity, use, dirty data, upload backlog, hits and misses, read-ahead.",
            discussion: "Example: blockgate cache status --json")
        @OptionGroup var admin: AdminOptions

        func run() throws {
            let status = try admin.send(AdminRequest(op: .cacheStatus)).cache!
            if admin.json { return try admin.printJSON(status) }
            printTable([
                ["capacity", ByteSize.format(status.capacity)], ["used", ByteSize.format(status.used)],
                ["dirty", ByteSize.format(status.dirtyBytes)], ["upload backlog", "\(status.uploadBacklog) chunk(s)"],
                ["hits", "\(status.hits)"], ["misses", "\(status.misses)"],
                ["read-ahead", ByteSize.format(status.readAheadBytes)],
                ["read-ahead hits", "\(status.readAheadHits)"],
                ["read-ahead wasted", ByteSize.format(status.readAheadWastedBytes)],
            ])
        }
    }
}
