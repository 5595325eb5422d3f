import NIOCore

extension EventLoopFuture where Value == Void {
    /// Succeeds once every future has succeeded, or fails with the first failure once every
    /// future is done, never before: I/O on a chunk must be over before its gate is released
    /// (a punch that lands after the next holder's write would undo it). NIO's `andAllSucceed`
    /// fails at the first failure, with the rest still running.
    static func allDone(_ futures: [EventLoopFuture<Void>], on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        EventLoopFuture.whenAllComplete(futures, on: eventLoop).flatMapThrowing { results in
            for result in results { try result.get() }
        }
    }
}
