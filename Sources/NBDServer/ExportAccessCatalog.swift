import NIOCore

/// The exports one TCP client may see and open: every export without a rule in
/// `NBDServerLimits.exportNetworks`, and those whose networks hold the client's address. The
/// others are left out of NBD_OPT_LIST and refused with NBD_REP_ERR_POLICY, before they are
/// opened (no drive claimed, no client counted).
struct ExportAccessCatalog: NBDExportCatalog {
    let base: any NBDExportCatalog
    let client: SocketAddress
    let rules: [String: [IPNetwork]]

    /// The catalog a connection from `client` negotiates with: `base` itself for a unix socket
    /// client (governed by the socket's mode) or when no export has a rule.
    static func forClient(
        _ client: SocketAddress?, of base: any NBDExportCatalog, rules: [String: [IPNetwork]]
    ) -> any NBDExportCatalog {
        guard let client, client.protocol != .unix, !rules.isEmpty else { return base }
        return ExportAccessCatalog(base: base, client: client, rules: rules)
    }

    private func allows(_ name: String) -> Bool {
        rules[name].map { networks in networks.contains { $0.contains(client) } } ?? true
    }

    private func refusal(_ name: String) -> NBDExportError {
        NBDExportError(.unavailable, "export '\(name)' is not open to clients at \(client.ipAddress ?? "this address")")
    }

    func listExports() -> [NBDExportListing] {
        base.listExports().filter { allows($0.name) }
    }

    func describeExport(named name: String) -> Result<NBDExportListing, NBDExportError> {
        base.describeExport(named: name).flatMap { allows($0.name) ? .success($0) : .failure(refusal($0.name)) }
    }

    func openExport(named name: String) -> Result<NBDExportSession, NBDExportError> {
        describeExport(named: name).flatMap { listing in
            base.openExport(named: listing.name).flatMap { session in
                // The default export may have been switched since it was described.
                guard allows(session.name) else {
                    session.onClose()
                    return .failure(refusal(session.name))
                }
                return .success(session)
            }
        }
    }
}
