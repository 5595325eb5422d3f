import Foundation
import Gateway

/// An admin request sent from a thread of its own, so that the command can show progress
/// (through other requests) while it runs.
final class BackgroundRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var outcome: Result<AdminResponse, any Error>?

    init(_ admin: AdminOptions, _ request: AdminRequest) {
        Thread.detachNewThread { [self] in
            let result = Result { try admin.send(request) }
            lock.withLock { outcome = result }
        }
    }

    var isDone: Bool { lock.withLock { outcome != nil } }

    /// The response; call once `isDone`.
    func result() throws -> AdminResponse { try lock.withLock { outcome! }.get() }
}
