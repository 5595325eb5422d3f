import Logging
import Synchronization

/// The daemon's log level, changeable while it runs (`blockgate reload`, SIGHUP): every logger
/// made through `handler(label:)` writes to standard error at the level in force.
public enum LogLevelControl {
    private static let current = Mutex(Logger.Level.info)

    /// The level in force.
    public static var level: Logger.Level {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    /// A standard-error handler that follows `level`; pass to `LoggingSystem.bootstrap`.
    public static func handler(label: String) -> any LogHandler {
        var base = StreamLogHandler.standardError(label: label)
        base.logLevel = .trace
        return LevelFollowingHandler(base: base)
    }
}

/// A log handler whose level is `LogLevelControl.level`.
private struct LevelFollowingHandler: LogHandler {
    var base: StreamLogHandler

    var logLevel: Logger.Level {
        get { LogLevelControl.level }
        set {}
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        base.log(event: event)
    }
}
