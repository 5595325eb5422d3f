import Metadata
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The single path by which chunk-map changes reach SQLite: one thread applies them in the
/// order they were submitted, merging whatever queued up while the previous commit ran into one
/// transaction (group commit), so many concurrent writers pay for one fsync.
public final class MetadataJournal: Sendable {
    private struct Pending {
        let changes: [ChunkChange]
        let promise: EventLoopPromise<Void>
    }
    private struct Queue {
        var pending: [Pending] = []
        var draining = false
    }

    private let store: MetadataStore
    private let queue = NIOLockedValueBox(Queue())
    private let pool = NIOThreadPool(numberOfThreads: 1)

    public init(store: MetadataStore) {
        self.store = store
        pool.start()
    }

    /// Stops the writer thread after the queued changes are applied.
    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }

    /// Queues changes; the future succeeds once they are durable.
    public func submit(_ changes: [ChunkChange], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        let startDrain = queue.withLockedValue { queue in
            queue.pending.append(Pending(changes: changes, promise: promise))
            defer { queue.draining = true }
            return !queue.draining
        }
        if startDrain {
            pool.submit { [self] state in
                guard case .active = state else {
                    failAll(MetadataError("the metadata writer has stopped"))
                    return
                }
                drain()
            }
        }
        return promise.futureResult
    }

    private func drain() {
        while true {
            let batch = queue.withLockedValue { queue in
                defer { queue.pending.removeAll(keepingCapacity: true) }
                if queue.pending.isEmpty { queue.draining = false }
                return queue.pending
            }
            if batch.isEmpty { return }
            do {
                try store.apply(batch.flatMap(\.changes))
                for item in batch { item.promise.succeed(()) }
            } catch {
                for item in batch { item.promise.fail(error) }
            }
        }
    }

    private func failAll(_ error: MetadataError) {
        let batch = queue.withLockedValue { queue in
            defer {
                queue.pending.removeAll()
                queue.draining = false
            }
            return queue.pending
        }
        for item in batch { item.promise.fail(error) }
    }
}
