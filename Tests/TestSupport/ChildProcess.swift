import Glibc

/// A child process started with `posix_spawn`, for tests. Foundation's `Process.run()` on Linux
/// reads past the end of a buffer while it lists /proc/self/fd, and now and then crashes the
/// test runner with it (swift-corelibs-foundation PR #5472); this starts the child without that
/// listing: descriptors from 3 up are closed in the child (`addclosefrom_np`), standard input is
/// /dev/null, and standard output and error go to the descriptors the caller names.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private var status: Int32?

    /// Starts `executable` with `arguments` (argv[0] is the executable) in `environment`.
    public init(
        executable: String, arguments: [String], environment: [String: String], output: Int32, errors: Int32
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, errors, 2)
        guard Self.closeFrom(&actions, 3) == 0 else { throw Failure("cannot close descriptors for \(executable)") }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, nil, argv, envp)
        guard result == 0 else { throw Failure("cannot start \(executable): \(String(cString: strerror(result)))") }
        pid = child
    }

    /// Sends a signal (nothing once the child was waited for).
    public func signal(_ signal: Int32) {
        guard status == nil else { return }
        kill(pid, signal)
    }

    /// Whether the child has not ended yet (reaps it if it has).
    public var isRunning: Bool {
        guard status == nil else { return false }
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return true }
        status = Self.decode(raw)
        return false
    }

    /// Waits for the child to end; its exit code, or the number of the signal that ended it.
    @discardableResult
    public func wait() -> Int32 {
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        status = Self.decode(raw)
        return status!
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 on), which Swift's Glibc module
    /// does not import.
    private static let closeFrom: @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32 =
        unsafeBitCast(
            dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")!,
            to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)

    private static func decode(_ raw: Int32) -> Int32 {
        raw & 0x7f == 0 ? (raw >> 8) & 0xff : raw & 0x7f
    }

    /// A child, or what a test needs around one, could not be set up.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }
}
