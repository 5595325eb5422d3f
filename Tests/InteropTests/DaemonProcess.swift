import Foundation
import Glibc
import TestSupport

/// The built `blockgate serve` as a child process on a scratch data directory, stopped with
/// SIGKILL, or SIGTERM for a graceful stop (the daemon unblocks it: see SWIFT-NOTES, a child of
/// a test thread inherits its blocked signals).
final class DaemonProcess: @unchecked Sendable {
    let directory: String
    let arguments: [String]
    let environment: [String: String]
    private var process: ChildProcess?

    init(directory: String, arguments: [String] = [], environment: [String: String] = [:]) {
        self.directory = directory
        self.arguments = arguments
        self.environment = environment
    }

    var uri: String { uri(export: "demo") }
    func uri(export: String) -> String { "nbd+unix:///\(export)?socket=\(directory)/nbd.sock" }
    var adminSocketPath: String { directory + "/admin.sock" }
    var logPath: String { directory + "/daemon.log" }

    /// Starts the daemon and waits for its NBD and admin sockets (the admin socket comes last),
    /// polling with a task sleep: a test must not block the few threads the tasks of the tests
    /// beside it run on (a daemon starts slowly on a loaded machine).
    func start() async throws {
        unlink(directory + "/nbd.sock")
        unlink(adminSocketPath)
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw ChildProcess.Failure("cannot open \(logPath)") }
        defer { close(log) }
        process = try ChildProcess(
            executable: Tool.blockgate, arguments: ["serve", "--data-dir", directory, "--listen", ""] + arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, output: log, errors: log)
        let deadline = ContinuousClock.now + .seconds(120)
        while access(directory + "/nbd.sock", F_OK) != 0 || access(adminSocketPath, F_OK) != 0 {
            guard process?.isRunning == true else {
                throw ChildProcess.Failure("the daemon ended as it started; its log is \(logPath)")
            }
            guard ContinuousClock.now < deadline else {
                throw ChildProcess.Failure("the daemon's sockets did not appear within 120 s; its log is \(logPath)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    deinit {
        process?.signal(SIGKILL)
        process?.wait()
    }

    /// Sends SIGTERM (the daemon unblocks it, whatever mask it inherited).
    func terminate() { send(SIGTERM) }

    /// Sends a signal the daemon handles (SIGTERM, SIGHUP).
    func send(_ signal: Int32) {
        process?.signal(signal)
    }

    /// Waits for the daemon to end, on a thread of its own; its exit status.
    func waitForExit() async throws -> Int32 {
        guard let process else { return -1 }
        self.process = nil
        return try await Blocking.run { process.wait() }
    }

    /// Kills the daemon with SIGKILL and waits for it to end (it may first finish a system call
    /// that a loaded disk holds up, so the wait runs on a thread of its own).
    func kill9() async throws {
        guard let process else { return }
        self.process = nil
        process.signal(SIGKILL)
        _ = try await Blocking.run { process.wait() }
    }
}
