import ArgumentParser
import Gateway

/// `blockgate reload`: the daemon re-reads its config file (as on SIGHUP).
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract:
            "Re-read the daemon's config file and apply what can change live (log level, cache size, default export).",
        discussion: "Settings that need a restart are named. SIGHUP does the same.\nExample: blockgate reload")
    @OptionGroup var admin: AdminOptions

    func run() throws {
        let message = try admin.send(AdminRequest(op: .reload)).message ?? ""
        if admin.json { return try admin.printJSON(["message": message]) }
        print("reloaded: \(message)")
    }
}
