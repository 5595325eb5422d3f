import NIOConcurrencyHelpers

/// Puts a running volume's recorded events in one order: file writes, punches and syncs (from
/// `PowerLossFileIO`) and mutating object-store requests (from `RecordingObjectStore`) are each
/// recorded under its lock, and the observer a test sets runs under the same lock right after
/// each event. Nothing recorded changes while the observer runs, so a crash state it captures
/// (see `CrashWorld`) is the state of one instant. The observer must not record events itself.
public final class CrashRecorder: @unchecked Sendable {
    /// A point at which a crash state may be captured.
    public enum Event: String, Sendable, CaseIterable {
        /// A write, punch or zeroing of a file completed: a point between two boundaries.
        case fileChanged = "file change"
        /// An fdatasync was called: the boundary before which everything since the last sync
        /// may be lost.
        case syncSent = "sync sent"
        /// An fdatasync completed: the boundary after which what it covered is durable.
        case syncDone = "sync done"
        /// A PUT or DELETE was sent and has not completed: either outcome is possible.
        case storeRequestSent = "store request sent"
        /// A PUT or DELETE completed, and its caller has not yet seen it.
        case storeRequestDone = "store request done"
    }

    private let lock = NIOLock()
    private var observer: (@Sendable (Event) -> Void)?

    public init() {}

    /// Sets (or, with nil, clears) what runs after each event.
    public func observe(_ observer: (@Sendable (Event) -> Void)?) {
        lock.withLock { self.observer = observer }
    }

    /// Records an event: `change` and then the observer run under the lock.
    func record<T>(_ event: Event, _ change: () throws -> T) rethrows -> T {
        try lock.withLock {
            let result = try change()
            observer?(event)
            return result
        }
    }
}
