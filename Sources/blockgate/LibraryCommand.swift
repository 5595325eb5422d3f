import ArgumentParser
import Gateway

/// `blockgate library status`: what is where in the tape library.
struct LibraryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "library", abstract: "Inspect the tape library.", subcommands: [Status.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Slots, drives, the import/export station and the shelf: what is where.",
            discussion: "Example: blockgate library status --json")
        @OptionGroup var admin: AdminOptions

        func run() throws {
            let library = try admin.send(AdminRequest(op: .libraryStatus)).library!
            if admin.json { return try admin.printJSON(library) }
            printTable(
                [["WHERE", "TAPE", "STATE"]]
                    + library.drives.map { drive in
                        [
                            "drive \(drive.drive) (export drive/\(drive.drive))", drive.barcode ?? "-",
                            drive.barcode == nil ? "empty" : drive.attached ? "client attached" : "loaded",
                        ]
                    }
                    + library.slots.map { ["slot \($0.slot)", $0.barcode ?? "-", ""] }
                    + [["station", library.station ?? "-", ""]]
                    + [["shelf", library.shelf.isEmpty ? "-" : library.shelf.joined(separator: " "), ""]])
        }
    }
}
