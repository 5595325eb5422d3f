import NIOConcurrencyHelpers
import NIOCore

/// The faults the emulator injects, switchable while it runs: added latency, a share of requests
/// failing with 503 SlowDown or 500 InternalError, and a full outage (every request fails).
public final class FaultPlan: Sendable {
    /// A snapshot of the settings.
    public struct Settings: Sendable, Equatable {
        public var latency: TimeAmount = .zero
        public var errorRate: Double = 0
        public var outage = false

        public init(latency: TimeAmount = .zero, errorRate: Double = 0, outage: Bool = false) {
            self.latency = latency
            self.errorRate = errorRate
            self.outage = outage
        }

        /// A line for logs and for the control endpoint's answer.
        public var summary: String {
            "latency_ms=\(latency.nanoseconds / 1_000_000) error_rate=\(errorRate) outage=\(outage ? "on" : "off")"
        }
    }

    /// What the emulator does with one request.
    enum Verdict: Equatable {
        case serve
        case fail(status: Int, code: String)
    }

    private let state: NIOLockedValueBox<Settings>
    private let failures = NIOLockedValueBox(0)

    public init(_ settings: Settings = Settings()) {
        state = NIOLockedValueBox(settings)
    }

    public var settings: Settings {
        get { state.withLockedValue { $0 } }
        set { state.withLockedValue { $0 = newValue } }
    }

    /// Requests failed on purpose so far.
    public var injectedFailures: Int { failures.withLockedValue { $0 } }

    /// Decides the fate of a request.
    func verdict() -> Verdict {
        let settings = self.settings
        let verdict: Verdict
        if settings.outage {
            verdict = .fail(status: 503, code: "ServiceUnavailable")
        } else if settings.errorRate > 0, Double.random(in: 0..<1) < settings.errorRate {
            verdict = Bool.random() ? .fail(status: 503, code: "SlowDown") : .fail(status: 500, code: "InternalError")
        } else {
            verdict = .serve
        }
        if verdict != .serve { failures.withLockedValue { $0 += 1 } }
        return verdict
    }

    /// Applies `name=value` parameters of the control endpoint: latency_ms, error_rate, outage=on|off.
    /// - Returns: an error message for a bad parameter, or nil.
    func apply(_ parameters: [(String, String)]) -> String? {
        var updated = settings
        for (name, value) in parameters {
            switch name {
            case "latency_ms":
                guard let milliseconds = Int64(value), milliseconds >= 0 else { return "latency_ms must be >= 0" }
                updated.latency = .milliseconds(milliseconds)
            case "error_rate":
                guard let rate = Double(value), (0...1).contains(rate) else { return "error_rate must be in 0...1" }
                updated.errorRate = rate
            case "outage":
                guard value == "on" || value == "off" else { return "outage must be on or off" }
                updated.outage = value == "on"
            default:
                return "unknown parameter \(name); use latency_ms, error_rate or outage"
            }
        }
        settings = updated
        return nil
    }
}
