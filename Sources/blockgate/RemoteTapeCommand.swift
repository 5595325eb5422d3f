import ArgumentParser
import Foundation
import Gateway

/// `blockgate rmt`, and the same when run as `blockgate-rsh` (a symlink given to archive
/// programs as their remote shell): the remote magnetic tape protocol on stdin and stdout, as
/// /etc/rmt speaks it, for the drives of the daemon at the admin socket. The daemon speaks
/// the protocol (docs/rmt.md); this process relays the bytes both ways.
struct RemoteTapeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rmt", abstract: "Speak the rmt remote tape protocol on stdin/stdout for the library's drives.",
        discussion: """
            Archive programs reach a drive (named drive/0, drive/1, ...) through their remote shell
            option; blockgate-rsh (installed beside blockgate) ignores the host and runs this:
              tar --rsh-command=/usr/local/bin/blockgate-rsh -cf localhost:drive/0 DIR
              mt --rsh-command=/usr/local/bin/blockgate-rsh -f localhost:drive/0 status
            The admin socket comes from $BLOCKGATE_ADMIN_SOCKET there.
            """)

    @OptionGroup var admin: AdminOptions
    /// What a remote shell is given (the host, `-l USER`, the rmt command): ignored.
    @Argument(parsing: .captureForPassthrough, help: .hidden) var ignored: [String] = []

    func run() throws {
        // What a remote shell passes is ignored, so help is looked for by hand.
        if ignored.contains("--help") || ignored.contains("-h") { return print(Self.helpMessage()) }
        try Self.relay(socketPath: try admin.socketPath())
    }

    /// Connects to the daemon, starts an rmt session and relays stdin to it and its answers to
    /// stdout until the daemon closes the session (after stdin ends).
    static func relay(socketPath: String) throws {
        let connection = try AdminClient(socketPath: socketPath).openRemoteTape()
        defer { close(connection) }
        var descriptors = [
            pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0),
            pollfd(fd: connection, events: Int16(POLLIN), revents: 0),
        ]
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            guard poll(&descriptors, 2, -1) >= 0 || errno == EINTR else { throw relayError("poll") }
            if descriptors[0].revents != 0 {
                let count = read(STDIN_FILENO, &buffer, buffer.count)
                if count > 0 {
                    try writeAll(buffer, count: count, to: connection)
                } else if count == 0 || errno != EINTR {
                    shutdown(connection, Int32(SHUT_WR))
                    descriptors[0].fd = -1
                }
            }
            if descriptors[1].revents != 0 {
                let count = read(connection, &buffer, buffer.count)
                if count > 0 {
                    try writeAll(buffer, count: count, to: STDOUT_FILENO)
                } else if count == 0 || errno != EINTR {
                    return
                }
            }
        }
    }

    private static func writeAll(_ buffer: [UInt8], count: Int, to descriptor: Int32) throws {
        var sent = 0
        while sent < count {
            let result = buffer.withUnsafeBytes { write(descriptor, $0.baseAddress! + sent, count - sent) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw relayError("write") }
            sent += result
        }
    }

    private static func relayError(_ what: String) -> GatewayError {
        GatewayError(.failed, "rmt relay: \(what) failed: \(String(cString: strerror(errno)))")
    }
}
