import NIOConcurrencyHelpers
import NIOCore

/// The connections in transmission, by export: lets the composition root count clients of an
/// export and close them (e.g. when the export is deleted).
public final class ConnectionRegistry: Sendable {
    private struct Entry {
        let export: String
        let channel: any Channel
    }
    private let entries = NIOLockedValueBox([UInt64: Entry]())
    private let nextID = NIOLockedValueBox(UInt64(1))

    public init() {}

    func makeConnectionID() -> UInt64 {
        nextID.withLockedValue { id in
            defer { id += 1 }
            return id
        }
    }

    func attach(_ id: UInt64, export: String, channel: any Channel) {
        entries.withLockedValue { $0[id] = Entry(export: export, channel: channel) }
    }

    func detach(_ id: UInt64) {
        _ = entries.withLockedValue { $0.removeValue(forKey: id) }
    }

    /// Number of connections in transmission with `export`.
    public func clientCount(export: String) -> Int {
        entries.withLockedValue { $0.values.filter { $0.export == export }.count }
    }

    /// Closes every connection to `export`; requests in flight still finish first.
    public func closeConnections(export: String) {
        let channels = entries.withLockedValue { $0.values.filter { $0.export == export }.map(\.channel) }
        for channel in channels { channel.close(promise: nil) }
    }

    /// What `drainAll` sends down each connection.
    struct Drain {}

    /// Ends every connection as a DISC would: no new requests; those in flight are answered and
    /// their replies written before it closes. Connections still open after `timeout` are closed.
    /// - Returns: how many had to be closed at the timeout.
    public func drainAll(timeout: TimeAmount) async -> Int {
        let channels = entries.withLockedValue { $0.values.map(\.channel) }
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(Drain()) }
        let deadline = NIODeadline.now() + timeout
        var forced = 0
        for channel in channels {
            let timer = channel.eventLoop.scheduleTask(deadline: deadline) { channel.close(promise: nil) }
            try? await channel.closeFuture.get()
            timer.cancel()
            if (try? await timer.futureResult.get()) != nil { forced += 1 }
        }
        return forced
    }
}
