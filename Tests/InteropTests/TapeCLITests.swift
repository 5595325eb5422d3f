import Foundation
import Testing

/// The tape, library and drive verbs of the CLI against a real gateway: what they print, their
/// JSON, and the errors that say what to do.
@Suite struct TapeCLITests {
    @Test func tapesAreCreatedListedMovedAndDeletedWithClearRefusals() async throws {
        let fixture = try await GatewayFixture()
        let admin = ["--admin-socket", fixture.adminSocketPath]
        func run(_ arguments: String...) async throws -> Tool.Result {
            try await Tool.run([Tool.blockgate] + arguments + admin)
        }

        let badBarcode = try await run("tape", "create", "tape-1", "--size", "16M")
        #expect(badBarcode.status == 2 && badBarcode.errors.contains("A-Z and 0-9"), "\(badBarcode.errors)")
        let noBarcode = try await run("tape", "create", "--size", "16M")
        #expect(noBarcode.status == 2 && noBarcode.errors.contains("--prefix"), "\(noBarcode.errors)")
        #expect(try await run("tape", "create", "ONCE0001", "--size", "16M").status == 0)
        let again = try await run("tape", "create", "ONCE0001", "--size", "16M")
        #expect(again.status == 1 && again.errors.contains("exists"), "\(again.errors)")
        #expect(try await run("tape", "delete", "ONCE0001").status == 0)
        let reused = try await run("tape", "create", "ONCE0001", "--size", "16M")
        #expect(reused.status == 1 && reused.errors.contains("never reused"), "\(reused.errors)")

        let many = try await run(
            "tape", "create", "--prefix", "WK", "--count", "3", "--size", "16M", "--worm", "--json")
        let created = try JSONSerialization.jsonObject(with: Data(many.output.utf8)) as? [[String: Any]]
        #expect(created?.compactMap { $0["barcode"] as? String } == ["WK0001", "WK0002", "WK0003"], "\(many.errors)")
        #expect(created?.allSatisfy { $0["worm"] as? Bool == true } == true)
        let list = try await run("tape", "list")
        #expect(list.output.contains("WK0003") && list.output.contains("slot 2"), "\(list.output)")
        let status =
            try JSONSerialization.jsonObject(
                with: Data(try await run("library", "status", "--json").output.utf8)) as? [String: Any]
        let slots = status?["slots"] as? [[String: Any]]
        #expect(slots?.count == 20 && slots?[0]["barcode"] as? String == "WK0001")

        let noDrive = try await run("tape", "load", "WK0001", "--drive", "9")
        #expect(noDrive.status == 1 && noDrive.errors.contains("drives 0, 1"), "\(noDrive.errors)")
        let worm = try await run("tape", "delete", "WK0002", "--force")
        #expect(worm.status == 1 && worm.errors.contains("WORM"), "\(worm.errors)")
        #expect(try await run("drive", "status", "1").output.contains("empty"))
        let emptyDrive = try await run("drive", "fsf", "1")
        #expect(emptyDrive.status == 1 && emptyDrive.errors.contains("tape load"), "\(emptyDrive.errors)")

        #expect(try await run("tape", "create", "DATA0001", "--size", "16M").status == 0)
        #expect(try await run("tape", "load", "DATA0001", "--drive", "0").status == 0)
        let client = try await LibNBD.connect(fixture.uri("drive/0"))
        try await client.write(0, [UInt8](repeating: 0x5A, count: 20_000))
        try await client.shutdown()
        let status0 = try await run("drive", "eod", "0")
        #expect(status0.output.contains("file 1") && status0.output.contains("EOD"), "\(status0.output)")
        let info = try await run("tape", "info", "DATA0001")
        #expect(info.output.contains("20000 bytes") && info.output.contains("crc"), "\(info.output)")
        #expect(try await run("drive", "weof", "0").output.contains("file 2"))
        #expect(try await run("drive", "bsf", "0", "1").output.contains("file 1"))
        #expect(try await run("drive", "erase", "0").status == 0)
        let erased =
            try JSONSerialization.jsonObject(
                with: Data(try await run("tape", "info", "DATA0001", "--json").output.utf8)) as? [String: Any]
        #expect(erased?["files"] as? [Int] == [20_000])

        #expect(try await run("tape", "load", "WK0002", "--drive", "1").status == 0)
        #expect(try await run("library", "status").output.contains("drive 1 (export drive/1)  WK0002"))
        #expect(try await run("tape", "eject", "1").status == 0)
        let home =
            try JSONSerialization.jsonObject(
                with: Data(try await run("tape", "info", "WK0002", "--json").output.utf8)) as? [String: Any]
        #expect(home?["location"] as? String == "slot 1")
        let loaded = try await run("tape", "delete", "DATA0001")
        #expect(loaded.status == 1 && loaded.errors.contains("tape eject 0"), "\(loaded.errors)")
        #expect(try await run("tape", "eject", "0").status == 0)
        let holdsData = try await run("tape", "delete", "DATA0001")
        #expect(holdsData.status == 1 && holdsData.errors.contains("--force"), "\(holdsData.errors)")
        #expect(try await run("tape", "delete", "DATA0001", "--force").status == 0)
        await fixture.stop()
    }
}
