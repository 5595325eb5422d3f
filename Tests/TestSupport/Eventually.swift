/// Waits until `condition` holds, checking every 100 ms, for at most `seconds`; returns whether
/// it held (a test expects it, so that a condition that never comes fails instead of hanging).
public func eventually(within seconds: Int, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}
