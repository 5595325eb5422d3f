import ArgumentParser
import Codecs
import Foundation
import Gateway

/// `blockgate key`: the master key that wraps the data keys of encrypted cached volumes.
struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Make and rotate the master key of encrypted cached volumes.",
        subcommands: [Generate.self, Rotate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new random master key to a file (readable by its owner only).",
            discussion: """
                Keep a copy somewhere safe: without it, encrypted volumes cannot be read.
                Example: blockgate key generate /etc/blockgate/master.key
                """)
        @Argument(help: "The key file to create; an existing file is never overwritten.") var file: String

        func run() throws {
            guard !FileManager.default.fileExists(atPath: file) else {
                throw ValidationError("\(file) exists; choose another path (a key file is never overwritten)")
            }
            let created = FileManager.default.createFile(
                atPath: file, contents: Data(MasterKey.generateKeyFile().utf8), attributes: [.posixPermissions: 0o600])
            guard created else { throw ValidationError("cannot create \(file); check the directory and permissions") }
            let key = try MasterKey(keyFile: Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            print(
                "wrote master key id \(String(key.id, radix: 16)) to \(file); start blockgate with --key-file \(file)")
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-wrap every volume's data key with a new master key, without rewriting any data.",
            discussion: """
                The daemon reads the new key file; from then on start it with that file (--key-file or
                objects.key_file). Keep the old key until the rotation has succeeded.
                Example: blockgate key generate new.key && blockgate key rotate --new-key-file new.key
                """)
        @OptionGroup var admin: AdminOptions
        @Option(help: "The file holding the new master key (as `key generate` writes it).") var newKeyFile: String

        func run() throws {
            let path = URL(fileURLWithPath: newKeyFile).standardizedFileURL.path
            let message = try admin.send(AdminRequest(op: .keyRotate, keyFile: path)).message ?? ""
            if admin.json { return try admin.printJSON(["message": message]) }
            print(message)
        }
    }
}
