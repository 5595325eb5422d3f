import Metrics
import NBDProtocol

/// One connection's request metrics: requests, bytes and latency per command, and errors per
/// errno, all labelled with the export. Metric handles are made once per command and reused.
/// Used from the connection's event loop only.
final class RequestMetrics {
    private struct Handles {
        let requests: Counter
        let bytes: Counter
        let latency: Timer
    }

    private let export: String
    private var handles: [NBDCommand: Handles] = [:]
    private var errors: [NBDErrno: Counter] = [:]

    init(export: String) {
        self.export = export
    }

    /// Records a request answered `duration` after it arrived, failed with `error` unless nil.
    func record(_ command: NBDCommand, bytes: Int, duration: Duration, error: NBDErrno?) {
        let handles =
            self.handles[command]
            ?? {
                let dimensions = [("export", export), ("command", "\(command)")]
                let made = Handles(
                    requests: Counter(label: "blockgate_nbd_requests_total", dimensions: dimensions),
                    bytes: Counter(label: "blockgate_nbd_bytes_total", dimensions: dimensions),
                    latency: Timer(label: "blockgate_nbd_request_duration_seconds", dimensions: dimensions))
                self.handles[command] = made
                return made
            }()
        handles.requests.increment()
        if error == nil, command == .read || command == .write { handles.bytes.increment(by: bytes) }
        handles.latency.record(duration: duration)
        if let error {
            let counter =
                errors[error]
                ?? Counter(
                    label: "blockgate_nbd_errors_total", dimensions: [("export", export), ("errno", "\(error)")])
            errors[error] = counter
            counter.increment()
        }
    }
}
