import Foundation

/// A progress bar on a terminal; plain lines when standard error is not one (or nothing when quiet).
final class ProgressBar {
    private let title: String
    private let total: UInt64
    private let quiet: Bool
    private let terminal = isatty(STDERR_FILENO) != 0
    private var lastPercent = -1

    init(title: String, total: UInt64, quiet: Bool) {
        self.title = title
        self.total = max(total, 1)
        self.quiet = quiet
    }

    func update(done: UInt64) {
        guard !quiet else { return }
        let percent = Int(min(done, total) * 100 / total)
        guard percent != lastPercent else { return }
        lastPercent = percent
        if terminal {
            let width = 30
            let filled = percent * width / 100
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            FileHandle.standardError.write(Data("\r\(title) [\(bar)] \(percent)%".utf8))
        } else if percent % 10 == 0 {
            FileHandle.standardError.write(Data("\(title): \(percent)%\n".utf8))
        }
    }

    func finish() {
        update(done: total)
        if terminal && !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
