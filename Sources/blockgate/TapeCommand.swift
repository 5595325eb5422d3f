import ArgumentParser
import Foundation
import Gateway
import TapeLibrary

/// `blockgate tape …`: virtual tapes in the library and on the shelf.
struct TapeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tape", abstract: "Create, move, archive and inspect virtual tapes.",
        subcommands: [
            Create.self, List.self, Info.self, Load.self, Eject.self, Move.self, Export.self, Retrieve.self,
            Delete.self,
        ])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create blank tapes in free slots.",
            discussion: """
                Examples:
                  blockgate tape create TAPE0001 --size 100G
                  blockgate tape create --prefix WEEK --count 4 --size 50G --worm
                """)
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Barcode: 5-16 characters of A-Z and 0-9.") var barcode: String?
        @Option(help: "Capacity, e.g. 100G.") var size: String
        @Flag(help: "Write once, read many: sealed files can never be erased.") var worm = false
        @Option(help: "Pool (shelf) the tape belongs to.") var pool: String?
        @Option(help: "Create --count tapes named PREFIX0001, PREFIX0002, … (never-used numbers).") var prefix: String?
        @Option(help: "How many tapes to create with --prefix.") var count: Int?

        func validate() throws {
            switch (barcode, prefix, count) {
            case (.some, nil, nil): break
            case (nil, .some, .some(let count)) where count >= 1: break
            default: throw ValidationError("give a BARCODE, or --prefix P with --count N (N at least 1)")
            }
        }

        func run() throws {
            let response = try admin.send(
                AdminRequest(
                    op: .tapeCreate, size: try ByteSize.parse(size), barcode: barcode ?? prefix, count: count,
                    worm: worm, pool: pool))
            let tapes = response.tapes ?? []
            if admin.json { return try admin.printJSON(tapes) }
            for tape in tapes {
                print(
                    "created tape \(tape.barcode): \(ByteSize.format(tape.capacity))\(tape.worm ? ", WORM" : ""), in \(tape.location)"
                )
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the tapes in the library (or, with --shelf, on the shelf).",
            discussion: "Example: blockgate tape list --shelf --json")
        @OptionGroup var admin: AdminOptions
        @Flag(help: "List the tapes on the shelf.") var shelf = false

        func run() throws {
            let tapes = try admin.send(AdminRequest(op: .tapeList, shelf: shelf)).tapes ?? []
            if admin.json { return try admin.printJSON(tapes) }
            printTable(
                [["BARCODE", "CAPACITY", "USED", "FILES", "LOCATION", "STATE", "POOL"]]
                    + tapes.map {
                        [
                            $0.barcode, ByteSize.format($0.capacity), $0.bytesUsed.map(ByteSize.format) ?? "-",
                            $0.files.map { "\($0.count)" } ?? "-", $0.location, $0.state + ($0.worm ? ", WORM" : ""),
                            $0.pool,
                        ]
                    })
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one tape: files, records, bytes used, state and CRC status.",
            discussion: "Example: blockgate tape info TAPE0001 --json")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Barcode.") var barcode: String

        func run() throws {
            let tape = try admin.send(AdminRequest(op: .tapeInfo, barcode: barcode)).tape!
            if admin.json { return try admin.printJSON(tape) }
            let crc =
                switch tape.badRecords {
                case nil: "not read"
                case .some(let bad) where bad.isEmpty: "ok"
                case .some(let bad):
                    "\(bad.count) record(s) failed their CRC check: \(bad.prefix(10).map(String.init).joined(separator: ", "))"
                }
            let kept: String = tape.retainUntil.map { PoolPolicy.describe(retainUntil: $0) } ?? "-"
            let storageClass: String = tape.storageClass ?? "-"
            let rows: [[String]] = [
                ["barcode", tape.barcode], ["capacity", ByteSize.format(tape.capacity)], ["pool", tape.pool],
                ["worm", tape.worm ? "yes" : "no"], ["location", tape.location], ["state", tape.state],
                ["files", tape.files.map { "\($0.count)" } ?? "-"],
                ["records", tape.records.map(String.init) ?? "-"],
                ["bytes used", tape.bytesUsed.map { "\(ByteSize.format($0)) (\($0) bytes)" } ?? "-"],
                ["open file", tape.openBytes.map { "\($0) bytes" } ?? "-"], ["crc", crc],
                ["kept", kept], ["storage class", storageClass],
            ]
            printTable(rows + (tape.files ?? []).enumerated().map { ["file \($0.offset)", "\($0.element) bytes"] })
        }
    }

    struct Load: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a tape into an empty drive; the drive's export becomes usable.",
            discussion: "Example: blockgate tape load TAPE0001 --drive 0")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Barcode.") var barcode: String
        @Option(help: "Drive name, e.g. 0.") var drive: String

        func run() throws {
            let status = try admin.send(AdminRequest(op: .tapeLoad, barcode: barcode, drive: drive)).drive!
            if admin.json { return try admin.printJSON(status) }
            print("loaded tape \(barcode) into drive \(drive): export drive/\(drive), head at file \(status.file ?? 0)")
        }
    }

    /// Where a tape goes inside the library: a slot or the station.
    struct Destination: ParsableArguments {
        @Option(help: "Slot to put the tape in.") var slot: Int?
        @Flag(help: "Put the tape in the import/export station.") var station = false

        func validate() throws {
            if slot != nil && station { throw ValidationError("give --slot N or --station, not both") }
            if let slot, slot < 0 { throw ValidationError("slots are numbered from 0") }
        }

        var location: String? { station ? "station" : slot.map { "slot \($0)" } }
    }

    struct Eject: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Return a drive's tape to the slot it came from (or to --slot N / --station).",
            discussion: "Examples: blockgate tape eject 0\n          blockgate tape eject 0 --slot 7")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Drive name.") var drive: String
        @OptionGroup var destination: Destination

        func run() throws {
            let status = try admin.send(AdminRequest(op: .tapeEject, drive: drive, location: destination.location))
                .drive!
            if admin.json { return try admin.printJSON(status) }
            print("ejected drive \(drive)")
        }
    }

    struct Move: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a tape between slots and the import/export station.",
            discussion:
                "Examples: blockgate tape move TAPE0001 --slot 7\n          blockgate tape move TAPE0001 --station")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Barcode.") var barcode: String
        @OptionGroup var destination: Destination

        func validate() throws {
            if destination.location == nil { throw ValidationError("say where: --slot N or --station") }
        }

        func run() throws {
            let tape = try admin.send(
                AdminRequest(op: .tapeMove, barcode: barcode, location: destination.location)
            ).tape!
            if admin.json { return try admin.printJSON(tape) }
            print("moved tape \(barcode) to \(tape.location)")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a tape to the shelf: its data kept only in the object store, the local cache dropped.",
            discussion: "Example: blockgate tape export TAPE0001")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Barcode.") var barcode: String

        func run() throws {
            let pending = try admin.send(AdminRequest(op: .tapeInfo, barcode: barcode)).tape!.uploadPending
            let export = BackgroundRequest(admin, AdminRequest(op: .tapeExport, barcode: barcode))
            let bar = ProgressBar(title: "exporting \(barcode)", total: pending, quiet: admin.json || pending == 0)
            while !export.isDone {
                if let left = try? admin.send(AdminRequest(op: .tapeInfo, barcode: barcode)).tape?.uploadPending {
                    bar.update(done: pending - min(left, pending))
                }
                usleep(200_000)
            }
            let tape = try export.result().tape!
            bar.finish()
            if admin.json { return try admin.printJSON(tape) }
            print("tape \(barcode) is on the shelf")
        }
    }

    struct Retrieve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring a tape back from the shelf into a slot, read-only.",
            discussion: "Example: blockgate tape retrieve TAPE0001")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Barcode.") var barcode: String

        func run() throws {
            let response = try admin.send(AdminRequest(op: .tapeRetrieve, barcode: barcode))
            if admin.json { return try admin.printJSON(response.tape!) }
            print("tape \(barcode) is in \(response.tape!.location), read-only")
            if let note = response.message { print("note: \(note)") }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a tape (its barcode is never used again).",
            discussion:
                "Refused for WORM tapes, and for tapes holding files unless --force.\nExample: blockgate tape delete TAPE0001"
        )
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Barcode.") var barcode: String
        @Flag(help: "Delete a tape that holds files.") var force = false

        func run() throws {
            _ = try admin.send(AdminRequest(op: .tapeDelete, force: force, barcode: barcode))
            if !admin.json { print("deleted tape \(barcode)") }
        }
    }
}
