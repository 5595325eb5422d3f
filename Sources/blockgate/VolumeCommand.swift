import ArgumentParser
import Codecs
import Foundation
import Gateway

/// Options every admin command shares.
struct AdminOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Admin socket of the daemon (default: $BLOCKGATE_ADMIN_SOCKET, else the one --config names, "
                + "else ./var/admin.sock).",
            valueName: "path"))
    var adminSocket: String?
    @Option(help: ArgumentHelp("The daemon's config file, to find its admin socket.", valueName: "file"))
    var config: String?
    @Flag(help: "Print JSON for scripts.")
    var json = false

    /// The admin socket: the flag, the environment, the config file, or the embedded default.
    func socketPath() throws -> String {
        if let adminSocket { return adminSocket }
        if let path = ProcessInfo.processInfo.environment["BLOCKGATE_ADMIN_SOCKET"] { return path }
        if let config {
            guard let contents = try? String(contentsOfFile: config, encoding: .utf8) else {
                throw GatewayError(.invalid, "cannot read config file \(config)")
            }
            return try GatewayConfig.load(path: config, contents: contents).resolvedAdminSocket
        }
        return GatewayConfig().resolvedAdminSocket
    }

    /// Sends a request; a failure becomes the command's error.
    func send(_ request: AdminRequest) throws -> AdminResponse {
        let response = try AdminClient(socketPath: try socketPath()).send(request)
        if let error = response.error { throw error }
        return response
    }

    func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}

/// `blockgate volume …`: thin volumes, each an NBD export of the same name.
struct VolumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume", abstract: "Create, list, inspect and delete volumes.",
        subcommands: [Create.self, List.self, Info.self, Flush.self, Recover.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a volume; it becomes an NBD export of the same name.",
            discussion: """
                Examples: blockgate volume create vol1 --size 10G --chunk-size 1M
                          blockgate volume create vol2 --size 100G --kind cached --compression zstd
                """)
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Volume name: 1-64 letters, digits, '.', '_' or '-'.") var name: String
        @Option(help: "Size, e.g. 10G, 1T, 512M (a multiple of 4K).") var size: String
        @Option(help: "Chunk size: a power of two from 64K to 64M (default 1M).") var chunkSize: String?
        @Option(help: "thin (local disk) or cached (object store, with a local cache).") var kind = "thin"
        @Option(help: "Cached volumes: compression of what is stored: off, lz4, zstd or zstd:LEVEL (1-19).")
        var compression: String?
        @Option(
            help:
                "Cached volumes: encryption of what is stored: off, aes-256-gcm or chacha20-poly1305 (default: aes-256-gcm when blockgate has a master key)."
        )
        var encryption: String?

        func validate() throws {
            guard ["thin", "cached"].contains(kind) else { throw ValidationError("--kind must be thin or cached") }
            if let compression, Compression(parsing: compression) == nil {
                throw ValidationError("--compression must be off, lz4, zstd or zstd:LEVEL with a level from 1 to 19")
            }
            if let encryption, Cipher(parsing: encryption) == nil {
                throw ValidationError("--encryption must be off, aes-256-gcm or chacha20-poly1305")
            }
            if kind == "thin", compression != nil || encryption != nil {
                throw ValidationError("--compression and --encryption apply to cached volumes: add --kind cached")
            }
        }

        func run() throws {
            let request = AdminRequest(
                op: .volumeCreate, name: name, size: try ByteSize.parse(size),
                chunkSize: try chunkSize.map { s throws(GatewayError) in try ByteSize.parse(s) }, kind: kind,
                compression: compression, encryption: encryption)
            let volume = try admin.send(request).volume!
            if admin.json {
                try admin.printJSON(volume)
            } else {
                print(
                    "created \(volume.kind) volume \(volume.name): \(ByteSize.format(volume.size)), chunks of \(ByteSize.format(volume.chunkSize))"
                )
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the volumes.", discussion: "Example: blockgate volume list --json")
        @OptionGroup var admin: AdminOptions

        func run() throws {
            let volumes = try admin.send(AdminRequest(op: .volumeList)).volumes ?? []
            if admin.json { return try admin.printJSON(volumes) }
            let rows =
                [["NAME", "KIND", "SIZE", "ALLOCATED", "CHUNKS", "CLIENTS"]]
                + volumes.map {
                    [
                        $0.name, $0.kind, ByteSize.format($0.size), ByteSize.format($0.allocatedBytes),
                        "\($0.allocatedChunks)",
                        "\($0.clients)",
                    ]
                }
            printTable(rows)
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one volume.", discussion: "Example: blockgate volume info vol1 --json")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Volume name.") var name: String

        func run() throws {
            let volume = try admin.send(AdminRequest(op: .volumeInfo, name: name)).volume!
            if admin.json { return try admin.printJSON(volume) }
            printTable(
                [
                    ["name", volume.name], ["kind", volume.kind], ["uuid", volume.uuid],
                    ["size", "\(ByteSize.format(volume.size)) (\(volume.size) bytes)"],
                    ["chunk size", ByteSize.format(volume.chunkSize)],
                    ["allocated chunks", "\(volume.allocatedChunks)"],
                    ["allocated", "\(ByteSize.format(volume.allocatedBytes)) (\(volume.allocatedBytes) bytes)"],
                    ["on disk", ByteSize.format(volume.diskBytes)], ["clients", "\(volume.clients)"],
                ]
                    + (volume.cachedBytes.map { [["cached", ByteSize.format($0)]] } ?? [])
                    + (volume.dirtyBytes.map { [["not uploaded", ByteSize.format($0)]] } ?? [])
                    + (volume.objects.map { [["objects", "\($0)"]] } ?? [])
                    + (volume.compression.map { [["compression", $0]] } ?? [])
                    + (volume.encryption.map { [["encryption", $0]] } ?? [])
                    + VolumeCommand.storedRows(volume)
                    + (volume.degraded == true
                        ? [["DEGRADED", "\(volume.integrityFailures ?? 0) read(s) failed verification (see the log)"]]
                        : [])
                    + (volume.pendingDeletes.map { [["objects to delete", "\($0)"]] } ?? [])
                    + (volume.settlingDeletes.map { [["objects to delete later", "\($0) (uploads settling)"]] } ?? [])
                    + (volume.heldWrites.map { [["writes held back", "\($0) (waiting for uploads)"]] } ?? [])
                    + (volume.fenced.map { [["FENCED", $0]] } ?? []))
        }
    }

    /// Logical and stored bytes, and the ratio, when the daemon measured them.
    static func storedRows(_ volume: VolumeInfo) -> [[String]] {
        guard let logical = volume.logicalBytes, let stored = volume.storedBytes else { return [] }
        let ratio = stored > 0 ? String(format: "%.2f", Double(logical) / Double(stored)) : "-"
        return [
            ["data in objects", "\(ByteSize.format(logical)) (\(logical) bytes)"],
            ["stored", "\(ByteSize.format(stored)) (\(stored) bytes), ratio \(ratio)"],
        ]
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Make a volume's completed writes durable; with --wait-upload, also wait until every chunk is uploaded.",
            discussion: "Example: blockgate volume flush vol1 --wait-upload")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Volume name.") var name: String
        @Flag(help: "Wait until a cached volume has no dirty data, showing progress.") var waitUpload = false

        func run() throws {
            var volume = try admin.send(AdminRequest(op: .volumeFlush, name: name)).volume!
            if waitUpload, let first = volume.dirtyBytes, first > 0 || volume.pendingDeletes ?? 0 > 0 {
                let bar = ProgressBar(title: "uploading \(name)", total: first, quiet: admin.json)
                while let dirty = volume.dirtyBytes, dirty > 0 || volume.pendingDeletes ?? 0 > 0 {
                    bar.update(done: first - min(dirty, first))
                    // Each look is a flush, which also keeps the uploader catching up; the daemon
                    // answers when the uploads end, or after a moment for the progress bar.
                    volume = try admin.send(AdminRequest(op: .volumeFlush, name: name, uploadWait: 0.2)).volume!
                }
                bar.finish()
            }
            if admin.json {
                try admin.printJSON(volume)
            } else {
                print(
                    "flushed volume \(name)"
                        + (volume.dirtyBytes.map { ", \(ByteSize.format($0)) not yet uploaded" } ?? ""))
            }
        }
    }

    struct Recover: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild a cached volume from the object store alone (after losing the data directory).",
            discussion: "Example: blockgate volume recover vol1")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Volume name.") var name: String

        func run() throws {
            let volume = try admin.send(AdminRequest(op: .volumeRecover, name: name)).volume!
            if admin.json {
                try admin.printJSON(volume)
            } else {
                print(
                    "recovered volume \(name): \(ByteSize.format(volume.size)), \(volume.objects ?? 0) chunk object(s)")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a volume and its data.", discussion: "Example: blockgate volume delete vol1")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Volume name.") var name: String
        @Flag(help: "Disconnect attached clients instead of refusing.") var force = false

        func run() throws {
            _ = try admin.send(AdminRequest(op: .volumeDelete, name: name, force: force))
            if admin.json { try admin.printJSON(["deleted": name]) } else { print("deleted volume \(name)") }
        }
    }
}

/// Prints rows as left-aligned columns.
func printTable(_ rows: [[String]]) {
    guard let columns = rows.map(\.count).max() else { return }
    let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
    for row in rows {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}
