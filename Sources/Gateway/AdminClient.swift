import Foundation
import Glibc

/// Sends one admin request to a running daemon over its unix socket and waits for the answer.
/// Blocking: for the command-line tool.
public struct AdminClient: Sendable {
    /// The admin socket.
    public let socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// Why the daemon (or another service the CLI talks to) could not be asked at all.
    public struct Unreachable: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// Sends `request` and returns the daemon's answer.
    /// - Throws: `Unreachable` when no daemon answers at the socket.
    public func send(_ request: AdminRequest) throws -> AdminResponse {
        let descriptor = try connect()
        defer { close(descriptor) }
        try write(request, to: descriptor)
        var answer = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !answer.contains(UInt8(ascii: "\n")) {
            let count = read(descriptor, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                throw Unreachable(description: "the daemon closed the admin connection without answering")
            }
            answer.append(contentsOf: chunk[0..<count])
        }
        return try JSONDecoder().decode(AdminResponse.self, from: answer)
    }

    /// Opens an rmt session (`drive.rmt`): returns the connected socket, on which the bytes are
    /// the remote tape protocol from now on.
    /// - Throws: `Unreachable`, or the daemon's refusal.
    public func openRemoteTape() throws -> Int32 {
        let descriptor = try connect()
        do {
            try write(AdminRequest(op: .driveRemoteTape), to: descriptor)
            // The answer is read a byte at a time: what follows it is the protocol's.
            var answer = Data()
            var byte: UInt8 = 0
            while byte != UInt8(ascii: "\n") {
                let count = read(descriptor, &byte, 1)
                if count < 0 && errno == EINTR { continue }
                guard count == 1 else {
                    throw Unreachable(description: "the daemon closed the admin connection without answering")
                }
                answer.append(byte)
            }
            if let error = try JSONDecoder().decode(AdminResponse.self, from: answer).error { throw error }
            return descriptor
        } catch {
            close(descriptor)
            throw error
        }
    }

    private func connect() throws -> Int32 {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else {
            throw Unreachable(description: "cannot create a socket: \(String(cString: strerror(errno)))")
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(descriptor)
            throw Unreachable(description: "admin socket path \(socketPath) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw Unreachable(
                description: "no daemon at \(socketPath) (\(reason)): start it with "
                    + "`blockgate serve`, or pass --admin-socket / set BLOCKGATE_ADMIN_SOCKET")
        }
        return descriptor
    }

    private func write(_ request: AdminRequest, to descriptor: Int32) throws {
        var line = try JSONEncoder().encode(request)
        line.append(UInt8(ascii: "\n"))
        try line.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let result = Glibc.write(descriptor, raw.baseAddress! + sent, raw.count - sent)
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { throw Unreachable(description: "the daemon closed the admin connection") }
                sent += result
            }
        }
    }
}
