import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import ChunkEngine

/// The gate knows whether its one shared holder has had it alone all along: what a write of a
/// whole chunk needs to know before it leaves its bytes for the upload (`WrittenChunks`).
@Suite struct ChunkGateTests {
    private func acquire(_ gate: inout ChunkGate, exclusive: Bool) -> Bool { gate.tryAcquire(exclusive: exclusive) }

    @Test func aSharedHolderIsAloneUntilAnotherJoinsEvenAfterThatOneLeaves() {
        var gate = ChunkGate()
        #expect(!gate.isHeldAlone)
        #expect(acquire(&gate, exclusive: false))
        #expect(gate.isHeldAlone)
        #expect(acquire(&gate, exclusive: false))
        #expect(!gate.isHeldAlone)
        // The second leaves: the first had company, and still counts so.
        _ = gate.release(exclusive: false)
        #expect(!gate.isHeldAlone)
        _ = gate.release(exclusive: false)
        #expect(gate.isIdle && !gate.isHeldAlone)
        // A new holder starts alone again.
        #expect(acquire(&gate, exclusive: false))
        #expect(gate.isHeldAlone)
        _ = gate.release(exclusive: false)
        // An exclusive holder is no shared holder alone.
        #expect(acquire(&gate, exclusive: true))
        #expect(!gate.isHeldAlone)
    }

    @Test func waitersGrantedTogetherShareTheGateAndOneGrantedByItselfHasItAlone() {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        var gate = ChunkGate()
        #expect(acquire(&gate, exclusive: true))
        let first = loop.makePromise(of: Void.self)
        let second = loop.makePromise(of: Void.self)
        gate.wait(exclusive: false, promise: first)
        gate.wait(exclusive: false, promise: second)
        let granted = gate.release(exclusive: true)
        #expect(granted.count == 2 && !gate.isHeldAlone)
        for promise in granted { promise.succeed(()) }
        _ = gate.release(exclusive: false)
        _ = gate.release(exclusive: false)
        // One shared waiter behind an exclusive holder: granted, it has the gate alone.
        #expect(acquire(&gate, exclusive: true))
        let third = loop.makePromise(of: Void.self)
        gate.wait(exclusive: false, promise: third)
        let alone = gate.release(exclusive: true)
        #expect(alone.count == 1 && gate.isHeldAlone)
        for promise in alone { promise.succeed(()) }
    }
}

/// `allDone` waits for every future before it fails: a gate released at the first failure
/// would let the next holder's write race a punch still running.
@Suite struct AllDoneTests {
    struct Failure: Error {}

    @Test func aFailureIsReportedOnlyOnceEveryFutureIsDone() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let slow = loop.makePromise(of: Void.self)
        let done = EventLoopFuture.allDone([loop.makeFailedFuture(Failure()), slow.futureResult], on: loop)
        let finished = NIOLockedValueBox(false)
        done.whenComplete { _ in finished.withLockedValue { $0 = true } }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!finished.withLockedValue { $0 }, "it failed before every future was done")
        slow.succeed(())
        await #expect(throws: Failure.self) { try await done.get() }
        try await EventLoopFuture.allDone([loop.makeSucceededVoidFuture()], on: loop).get()
        try await EventLoopFuture.allDone([], on: loop).get()
    }
}
