import BlockDevice
import NBDServer

/// Exports from a fixed dictionary, for tests.
struct FakeCatalog: NBDExportCatalog {
    var devices: [String: any BlockDevice]
    var defaultExport = "disk"

    func listExports() -> [NBDExportListing] {
        devices.keys.sorted().map {
            NBDExportListing(
                name: $0, description: "test \($0)", size: devices[$0]!.size, capabilities: devices[$0]!.capabilities)
        }
    }

    func describeExport(named name: String) -> Result<NBDExportListing, NBDExportError> {
        let wanted = name.isEmpty ? defaultExport : name
        guard let device = devices[wanted] else {
            return .failure(NBDExportError(.unknown, "no export named '\(name)'"))
        }
        return .success(
            NBDExportListing(
                name: wanted, description: "test \(wanted)", size: device.size, capabilities: device.capabilities))
    }

    func openExport(named name: String) -> Result<NBDExportSession, NBDExportError> {
        describeExport(named: name).map { NBDExportSession(name: $0.name, device: devices[$0.name]!) }
    }
}
