import ArgumentParser
import Foundation
import Gateway

/// `blockgate mtx -f LIBRARY COMMAND…`, and the same when run as `mtx` (a symlink): mtx's
/// command line, output and exit codes over the library, so that changer scripts written for
/// mtx (Bacula's mtx-changer, Amanda's chg-robot) drive it. LIBRARY is the daemon's admin socket.
struct MtxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mtx", abstract: "Drive the tape library as mtx drives a SCSI changer.",
        discussion: """
            Commands (several may follow each other): status, inquiry, load SLOT [DRIVE],
            unload [SLOT] [DRIVE], transfer SLOT SLOT, first|next|last [DRIVE], inventory, eepos N.
            Numbering as mtx's: storage element N is slot N-1, the element after the last slot is
            the import/export station; data transfer element N is drive N.
            Example: blockgate mtx -f ./var/admin.sock load 3 0
            Also installed as `mtx` (make install MTX_DIR=DIR): mtx -f /run/blockgate/admin.sock status
            """)

    @Argument(parsing: .captureForPassthrough, help: "[-f LIBRARY] COMMAND [ARGUMENTS]...")
    var words: [String] = []

    func run() throws {
        if words == ["--help"] || words == ["-h"] { return print(Self.helpMessage()) }
        let status = Mtx().run(words)
        if status != 0 { throw ExitCode(status) }
    }
}

/// mtx's commands over the admin API. Each command reads the library's state afresh.
struct Mtx {
    /// Runs mtx's command line; returns the exit code (0, or 1 after a message on stderr).
    func run(_ words: [String]) -> Int32 {
        var device =
            ProcessInfo.processInfo.environment["CHANGER"]
            ?? ProcessInfo.processInfo.environment[
                "BLOCKGATE_ADMIN_SOCKET"]
        var index = 0
        do {
            guard !words.isEmpty else { throw Failure.usage }
            while index < words.count {
                let word = words[index]
                index += 1
                if word == "-f" {
                    guard index < words.count else { throw Failure.usage }
                    device = words[index]
                    index += 1
                    continue
                }
                guard let command = Command(rawValue: word) else { throw Failure.usage }
                var numbers: [Int] = []
                while numbers.count < command.arguments, index < words.count,
                    let number = Int(words[index]), number >= 0
                {
                    numbers.append(number)
                    index += 1
                }
                let changer = Changer(device: device ?? GatewayConfig().resolvedAdminSocket)
                try changer.carryOut(command, numbers)
            }
            return 0
        } catch Failure.usage {
            FileHandle.standardError.write(Data((Self.usage + "\n").utf8))
            return 1
        } catch {
            FileHandle.standardError.write(Data("mtx: \(error)\n".utf8))
            return 1
        }
    }

    static let usage = """
        Usage: mtx [-f LIBRARY] COMMAND [ARGUMENTS] [COMMAND [ARGUMENTS]]...
        LIBRARY is blockgate's admin socket (default: $CHANGER, $BLOCKGATE_ADMIN_SOCKET, ./var/admin.sock).
        Commands: status, inquiry, load <slot> [<drive>], unload [<slot>] [<drive>],
          transfer <slot> <slot>, first [<drive>], next [<drive>], last [<drive>], inventory,
          eepos <0-3>, noattach, invert, nobarcode, altres.
        """

    enum Command: String {
        case status, inquiry, load, unload, transfer, first, next, last, inventory, eepos
        case noattach, invert, nobarcode, altres

        /// Numeric arguments the command may take.
        var arguments: Int {
            switch self {
            case .load, .unload, .transfer: 2
            case .first, .next, .last, .eepos: 1
            default: 0
            }
        }
    }

    enum Failure: Error {
        case usage
    }
}

/// The library behind one admin socket, as mtx's commands see it.
private struct Changer {
    let device: String

    /// A failure mtx reports in these words.
    struct Refusal: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private func send(_ request: AdminRequest) throws -> AdminResponse {
        let response: AdminResponse
        do {
            response = try AdminClient(socketPath: device).send(request)
        } catch let unreachable as AdminClient.Unreachable {
            throw Refusal("cannot open changer \(device): \(unreachable.description)")
        }
        if let error = response.error { throw Refusal(error.message) }
        return response
    }

    private func elements() throws -> ChangerElements {
        ChangerElements(try send(AdminRequest(op: .libraryStatus)).library!)
    }

    func carryOut(_ command: Mtx.Command, _ numbers: [Int]) throws {
        switch command {
        case .status:
            print(try elements().statusReport(device: device))
        case .inquiry:
            print(
                """
                Product Type: Medium Changer
                Vendor ID: 'BLOCKGTE'
                Product ID: 'VIRTUAL LIBRARY '
                Revision: '0001'
                Attached Changer API: No
                """)
        case .load:
            guard let slot = numbers.first, slot >= 1 else { throw Refusal("No source specified") }
            try load(slot: slot, drive: numbers.count > 1 ? numbers[1] : 0, elements: try elements())
        case .unload:
            try unload(slot: numbers.first, drive: numbers.count > 1 ? numbers[1] : 0, elements: try elements())
        case .transfer:
            guard let from = numbers.first, from >= 1 else { throw Refusal("No source specified") }
            guard numbers.count > 1, numbers[1] >= 1 else { throw Refusal("No destination specified") }
            let elements = try elements()
            guard from <= elements.storage.count else { throw Refusal("Invalid source") }
            guard numbers[1] <= elements.storage.count else { throw Refusal("Invalid destination") }
            guard let barcode = elements.storage[from - 1].barcode else {
                throw Refusal("Source Element Address \(from) is Empty")
            }
            let destination = elements.storage[numbers[1] - 1]
            if destination.barcode != nil {
                throw Refusal("Destination Element Address \(destination.number) is Already Full")
            }
            _ = try send(AdminRequest(op: .tapeMove, barcode: barcode, location: destination.location.stored))
        case .first, .last, .next:
            try cycle(command, drive: numbers.first ?? 0)
        case .eepos:
            guard let position = numbers.first, (0...3).contains(position) else {
                throw Refusal("eepos equires argument between 0 and 3.")
            }
        case .inventory, .noattach, .invert, .nobarcode, .altres:
            break
        }
    }

    private func transfer(_ number: Int, in elements: ChangerElements, command: String) throws
        -> ChangerElements.Transfer
    {
        guard elements.transfers.indices.contains(number) else {
            throw Refusal("illegal <drive-number> argument '\(number)' to '\(command)' command")
        }
        return elements.transfers[number]
    }

    private func load(slot: Int, drive number: Int, elements: ChangerElements) throws {
        guard slot <= elements.storage.count else {
            throw Refusal("Invalid <storage-element-number> argument '\(slot)' to 'load' command")
        }
        let drive = try transfer(number, in: elements, command: "load")
        if drive.barcode != nil {
            throw Refusal("Drive \(number) Full (Storage Element \(drive.source ?? 0) loaded)")
        }
        guard let barcode = elements.storage[slot - 1].barcode else {
            throw Refusal("Source Element Address \(slot) is Empty")
        }
        print("Loading media from Storage Element \(slot) into drive \(number)...", terminator: "")
        fflush(nil)
        _ = try send(AdminRequest(op: .tapeLoad, barcode: barcode, drive: drive.drive))
        print("done")
    }

    private func unload(slot: Int?, drive number: Int, elements: ChangerElements) throws {
        let drive = try transfer(number, in: elements, command: "unload")
        guard drive.barcode != nil else { throw Refusal("Data Transfer Element \(number) is Empty") }
        let destination: ChangerElements.Storage
        if let slot {
            guard (1...elements.storage.count).contains(slot) else {
                throw Refusal("illegal <storage-element-number> argument '\(slot)' to 'unload' command")
            }
            destination = elements.storage[slot - 1]
            if destination.barcode != nil { throw Refusal("Storage Element \(slot) is Already Full") }
        } else if let source = drive.source, elements.storage[source - 1].barcode == nil {
            destination = elements.storage[source - 1]
        } else if let free = elements.storage.first(where: { $0.barcode == nil }) {
            destination = free
        } else {
            throw Refusal("Do not know which slot to unload tape into!")
        }
        print("Unloading drive \(number) into Storage Element \(destination.number)...", terminator: "")
        fflush(nil)
        _ = try send(AdminRequest(op: .tapeEject, drive: drive.drive, location: destination.location.stored))
        print("done")
    }

    /// first, next and last: the drive is unloaded if it holds a tape, then loaded from the
    /// first full slot, the next full one after the tape's own, or the last full one.
    private func cycle(_ command: Mtx.Command, drive number: Int) throws {
        var elements = try elements()
        let drive = try transfer(number, in: elements, command: command.rawValue)
        let after = drive.source ?? 0
        if drive.barcode != nil {
            try unload(slot: nil, drive: number, elements: elements)
            elements = try self.elements()
        }
        let full = elements.storage.filter { !$0.importExport && $0.barcode != nil }
        let chosen: ChangerElements.Storage? =
            switch command {
            case .first: full.first
            case .last: full.last
            default: full.first { $0.number > after }
            }
        guard let chosen else { throw Refusal("No More Media") }
        try load(slot: chosen.number, drive: number, elements: elements)
    }
}
