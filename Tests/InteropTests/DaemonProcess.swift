import Foundation
import Glibc

/// The built `blockgate serve` as a child process on a scratch data directory, stopped with
/// SIGKILL, or SIGTERM for a graceful stop (the daemon unblocks it: see SWIFT-NOTES, a child of
/// a test thread inherits its blocked signals).
final class DaemonProcess: @unchecked Sendable {
    let directory: String
    let arguments: [String]
    let environment: [String: String]
    private var process: Process?

    init(directory: String, arguments: [String] = [], environment: [String: String] = [:]) {
        self.directory = directory
        self.arguments = arguments
        self.environment = environment
    }

    var uri: String { uri(export: "demo") }
    func uri(export: String) -> String { "nbd+unix:///\(export)?socket=\(directory)/nbd.sock" }
    var adminSocketPath: String { directory + "/admin.sock" }
    var logPath: String { directory + "/daemon.log" }

    /// Starts the daemon and waits for its NBD and admin sockets (the admin socket comes last).
    func start() throws {
        unlink(directory + "/nbd.sock")
        unlink(adminSocketPath)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        log.seekToEndOfFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tool.blockgate)
        process.arguments = ["serve", "--data-dir", directory, "--listen", ""] + arguments
        process.standardOutput = log
        process.standardError = log
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        try process.run()
        self.process = process
        for _ in 0..<600 where access(directory + "/nbd.sock", F_OK) != 0 || access(adminSocketPath, F_OK) != 0 {
            usleep(50_000)
        }
    }

    deinit { kill9() }

    /// Sends SIGTERM (the daemon unblocks it, whatever mask it inherited).
    func terminate() { send(SIGTERM) }

    /// Sends a signal the daemon handles (SIGTERM, SIGHUP).
    func send(_ signal: Int32) {
        guard let process else { return }
        kill(process.processIdentifier, signal)
    }

    /// Waits for the daemon to end; its exit status.
    func waitForExit() -> Int32 {
        guard let process else { return -1 }
        process.waitUntilExit()
        self.process = nil
        return process.terminationStatus
    }

    func kill9() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }
}
