import ArgumentParser
import Gateway
import TapeLibrary

/// `blockgate drive …`: a tape drive's status and positioning, as `mt` does for a real drive.
/// Positioning is refused while a client is attached to the drive's export.
struct DriveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drive", abstract: "Show and position tape drives.",
        subcommands: [
            Status.self, Rewind.self, EndOfData.self, ForwardFiles.self, BackFiles.self, WriteFilemark.self,
            Erase.self,
        ])

    /// The drive argument and the request every drive verb sends.
    struct DriveArguments: ParsableArguments {
        @OptionGroup var admin: AdminOptions
        @Argument(help: "Drive name, e.g. 0.") var drive: String

        func run(_ op: AdminRequest.Operation, count: Int? = nil, done: String) throws {
            let status = try admin.send(AdminRequest(op: op, drive: drive, count: count)).drive!
            if admin.json { return try admin.printJSON(status) }
            print("drive \(drive): \(done); \(describe(status))")
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Barcode, file and block number, and BOT/EOD/EOT flags.",
            discussion: "Example: blockgate drive status 0 --json")
        @OptionGroup var arguments: DriveArguments

        func run() throws {
            let status = try arguments.admin.send(AdminRequest(op: .driveStatus, drive: arguments.drive)).drive!
            if arguments.admin.json { return try arguments.admin.printJSON(status) }
            print("drive \(status.drive): \(describe(status))")
        }
    }

    struct Rewind: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move the head to the beginning of the tape.", discussion: "Example: blockgate drive rewind 0")
        @OptionGroup var arguments: DriveArguments
        func run() throws { try arguments.run(.driveRewind, done: "rewound") }
    }

    struct EndOfData: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "eod", abstract: "Move the head to end of data, where a write appends a file.",
            discussion: "Example: blockgate drive eod 0")
        @OptionGroup var arguments: DriveArguments
        func run() throws { try arguments.run(.driveEndOfData, done: "at end of data") }
    }

    struct ForwardFiles: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fsf", abstract: "Move the head forward over N filemarks, to the start of a later file.",
            discussion: "Example: blockgate drive fsf 0 2")
        @OptionGroup var arguments: DriveArguments
        @Argument(help: "Filemarks to pass (default 1).") var count = 1
        func run() throws { try arguments.run(.driveForwardFiles, count: count, done: "forward \(count) file(s)") }
    }

    struct BackFiles: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bsf", abstract: "Move the head back N files, to the start of an earlier file.",
            discussion: "Example: blockgate drive bsf 0 1")
        @OptionGroup var arguments: DriveArguments
        @Argument(help: "Files to go back (default 1).") var count = 1
        func run() throws { try arguments.run(.driveBackFiles, count: count, done: "back \(count) file(s)") }
    }

    struct WriteFilemark: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "weof", abstract: "Write a filemark at end of data (ends the open file, even an empty one).",
            discussion: "Example: blockgate drive weof 0")
        @OptionGroup var arguments: DriveArguments
        func run() throws { try arguments.run(.driveWriteFilemark, done: "filemark written") }
    }

    struct Erase: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase the tape from the head to its end (refused for WORM tapes).",
            discussion: "Example: blockgate drive rewind 0 && blockgate drive erase 0")
        @OptionGroup var arguments: DriveArguments
        func run() throws { try arguments.run(.driveErase, done: "erased from the head on") }
    }
}

/// One line saying what a drive holds and where its head is.
private func describe(_ status: DriveStatus) -> String {
    guard let barcode = status.barcode else { return "empty" }
    let flags = [status.bot == true ? "BOT" : nil, status.eod == true ? "EOD" : nil, status.eot == true ? "EOT" : nil]
        .compactMap { $0 }
    return "tape \(barcode), file \(status.file ?? 0), block \(status.block ?? 0)"
        + (flags.isEmpty ? "" : " [\(flags.joined(separator: " "))]")
        + (status.readOnly == true ? ", read-only" : "") + (status.attached ? ", client attached" : "")
}
