import NIOConcurrencyHelpers
import NIOCore

/// The faults the emulator injects, switchable while it runs: added latency, a share of requests
/// failing with 503 SlowDown or 500 InternalError, a full outage (every request fails), and rules
/// that fail the next N requests of one operation on keys under a prefix (so that a test fails
/// exactly the request it means to).
public final class FaultPlan: Sendable {
    /// Fails the next `count` requests of `operation` whose key (for LIST, whose listing prefix)
    /// starts with `prefix`, with 503 ServiceUnavailable.
    public struct Rule: Sendable, Equatable {
        /// What a request does.
        public enum Operation: String, Sendable, CaseIterable {
            case get = "GET"
            case put = "PUT"
            case delete = "DELETE"
            case head = "HEAD"
            case list = "LIST"
        }

        public var operation: Operation
        public var prefix: String
        public var count: Int

        public init(_ operation: Operation, prefix: String, count: Int) {
            self.operation = operation
            self.prefix = prefix
            self.count = count
        }

        var summary: String { "\(operation.rawValue):\(prefix):\(count)" }
    }

    /// A snapshot of the settings.
    public struct Settings: Sendable, Equatable {
        public var latency: TimeAmount = .zero
        public var errorRate: Double = 0
        public var outage = false
        /// Targeted failures, tried in order; a rule is dropped once it has failed its count.
        public var rules: [Rule] = []

        public init(latency: TimeAmount = .zero, errorRate: Double = 0, outage: Bool = false, rules: [Rule] = []) {
            self.latency = latency
            self.errorRate = errorRate
            self.outage = outage
            self.rules = rules
        }

        /// A line for logs and for the control endpoint's answer.
        public var summary: String {
            "latency_ms=\(latency.nanoseconds / 1_000_000) error_rate=\(errorRate) outage=\(outage ? "on" : "off")"
                + " rules=\(rules.isEmpty ? "none" : rules.map(\.summary).joined(separator: ","))"
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

    /// Decides the fate of a request of `operation` on `key` (for LIST, the listing's prefix).
    func verdict(_ operation: Rule.Operation, key: String) -> Verdict {
        let ruled = state.withLockedValue { settings in
            guard
                let index = settings.rules.firstIndex(where: { $0.operation == operation && key.hasPrefix($0.prefix) })
            else { return false }
            settings.rules[index].count -= 1
            if settings.rules[index].count == 0 { settings.rules.remove(at: index) }
            return true
        }
        let settings = self.settings
        let verdict: Verdict
        if ruled {
            verdict = .fail(status: 503, code: "ServiceUnavailable")
        } else if settings.outage {
            verdict = .fail(status: 503, code: "ServiceUnavailable")
        } else if settings.errorRate > 0, Double.random(in: 0..<1) < settings.errorRate {
            verdict = Bool.random() ? .fail(status: 503, code: "SlowDown") : .fail(status: 500, code: "InternalError")
        } else {
            verdict = .serve
        }
        if verdict != .serve { failures.withLockedValue { $0 += 1 } }
        return verdict
    }

    /// Applies `name=value` parameters of the control endpoint: latency_ms, error_rate,
    /// outage=on|off, fail=OPERATION with prefix= and count= (adds a rule), clear_rules=1.
    /// - Returns: an error message for a bad parameter, or nil.
    func apply(_ parameters: [(String, String)]) -> String? {
        var updated = settings
        let value = { (name: String) in parameters.first { $0.0 == name }?.1 }
        for (name, value) in parameters {
            switch name {
            case "fail", "prefix", "count":
                continue
            case "clear_rules":
                updated.rules = []
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
                return
                    "unknown parameter \(name); use latency_ms, error_rate, outage, fail (with prefix, count) or clear_rules"
            }
        }
        if let operation = value("fail") {
            guard let parsed = Rule.Operation(rawValue: operation.uppercased()) else {
                return "fail must be one of \(Rule.Operation.allCases.map(\.rawValue).joined(separator: ", "))"
            }
            guard let count = Int(value("count") ?? "1"), count > 0 else { return "count must be a whole number > 0" }
            updated.rules.append(Rule(parsed, prefix: value("prefix") ?? "", count: count))
        } else if value("prefix") != nil || value("count") != nil {
            return "prefix and count go with fail=OPERATION"
        }
        settings = updated
        return nil
    }
}
