import ArgumentParser
import Foundation
import Gateway

/// The one executable: the daemon (`serve`) and the admin commands that talk to it.
struct Blockgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blockgate",
        abstract: "A storage gateway that serves block storage over NBD.",
        discussion: """
            Start the daemon with `blockgate serve`, then manage it with the other commands, e.g.
              blockgate volume create vol1 --size 10G
              nbd-client -N vol1 -u ./var/nbd.sock /dev/nbd0
            Exit codes: 0 success, 1 error, 2 usage error, 3 daemon unreachable.
            """,
        subcommands: [
            Serve.self, StatusCommand.self, ReloadCommand.self, VolumeCommand.self, CacheCommand.self, TapeCommand.self,
            LibraryCommand.self, DriveCommand.self, MtxCommand.self, RemoteTapeCommand.self, KeyCommand.self,
            ObjectStoreCommand.self,
        ])
}

@main
enum Main {
    static func main() async {
        // Run under another name (a symlink), the executable is that program.
        switch URL(fileURLWithPath: CommandLine.arguments[0]).lastPathComponent {
        case "mtx":
            exit(Mtx().run(Array(CommandLine.arguments.dropFirst())))
        case "blockgate-rsh":
            do {
                try RemoteTapeCommand.relay(socketPath: try AdminOptions.parse([]).socketPath())
                exit(0)
            } catch {
                FileHandle.standardError.write(Data("blockgate-rsh: \(error)\n".utf8))
                exit(1)
            }
        default:
            break
        }
        do {
            var command = try Blockgate.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let unreachable as AdminClient.Unreachable {
            FileHandle.standardError.write(Data("blockgate: \(unreachable.description)\n".utf8))
            exit(3)
        } catch let error as GatewayError {
            FileHandle.standardError.write(Data("blockgate: \(error.message)\n".utf8))
            exit(error.kind == .invalid ? 2 : 1)
        } catch {
            let code = Blockgate.exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((Blockgate.fullMessage(for: error) + "\n").utf8))
                exit(2)
            }
            Blockgate.exit(withError: error)
        }
    }
}
