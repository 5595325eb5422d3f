import Foundation
import Gateway
import Glibc
import Testing

/// The library driven by the programs archive systems use, all from Debian: mtx's command line
/// (blockgate run as `mtx`), Bacula's mtx-changer script, Amanda's chg-robot, and GNU tar, cpio
/// and mt (`mt-gnu`, Debian's name for GNU mt), and
/// dump/restore over the rmt protocol (through `blockgate-rsh`); the protocol itself, spoken
/// directly; and the drive's NBD export and an rmt session excluding each other.
@Suite(.serialized) struct TapeToolTests {
    /// A directory with `blockgate`, `mtx` and `blockgate-rsh` (symlinks to this build), first
    /// on PATH, and the environment the tools run in.
    struct Tools {
        let directory: String
        let environment: [String: String]
        let fixture: GatewayFixture

        init(_ fixture: GatewayFixture) throws {
            self.fixture = fixture
            directory = fixture.directory + "/tools"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for name in ["blockgate", "mtx", "blockgate-rsh"] {
                try FileManager.default.createSymbolicLink(
                    atPath: directory + "/" + name, withDestinationPath: Tool.blockgate)
            }
            environment = [
                "PATH": "\(directory):/usr/bin:/usr/sbin:/bin:/sbin",
                "BLOCKGATE_ADMIN_SOCKET": fixture.adminSocketPath,
            ]
        }

        var rsh: String { directory + "/blockgate-rsh" }

        func run(_ arguments: String..., in directory: String? = nil) async throws -> Tool.Result {
            try await run(arguments, in: directory)
        }

        func run(_ arguments: [String], in directory: String? = nil) async throws -> Tool.Result {
            guard let directory else { return try await Tool.run(arguments, environment: environment) }
            let quoted = arguments.map { "'\($0)'" }.joined(separator: " ")
            return try await Tool.run(["sh", "-c", "cd '\(directory)' && exec \(quoted)"], environment: environment)
        }

        func mtx(_ arguments: String...) async throws -> Tool.Result {
            try await run([directory + "/mtx", "-f", fixture.adminSocketPath] + arguments)
        }

        func createTapes(_ count: Int) async throws {
            let created = try await run(
                "blockgate", "tape", "create", "--prefix", "TAPE", "--count", "\(count)", "--size", "32M")
            #expect(created.status == 0, "\(created.errors)")
        }

        func location(of barcode: String) async throws -> String? {
            let info = try await run("blockgate", "tape", "info", barcode, "--json")
            return (try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any])?["location"]
                as? String
        }
    }

    @Test func aFreshGatewayStartsWithBlankDemoTapesOnce() async throws {
        let fixture = try await GatewayFixture(configure: { $0.demoTapes = GatewayConfig.DemoTapes() })
        let tools = try Tools(fixture)
        let expected = (1...4).map { "      Storage Element \($0):Full :VolumeTag=DEMO000\($0)" }
        #expect(try await tools.mtx("status").output.contains(expected.joined(separator: "\n")))
        #expect(try await tools.run("blockgate", "tape", "delete", "DEMO0004").status == 0)
        await fixture.stop(keepingData: true)
        let again = try await GatewayFixture(
            configure: { $0.demoTapes = GatewayConfig.DemoTapes() }, directory: fixture.directory)
        let tapes = await again.gateway.library.list(shelf: false).map(\.barcode)
        #expect(tapes == ["DEMO0001", "DEMO0002", "DEMO0003"])
        await again.stop()
    }

    @Test func mtxCommandsAndOutputAreMtxs() async throws {
        let fixture = try await GatewayFixture()
        let tools = try Tools(fixture)
        try await tools.createTapes(4)
        let socket = fixture.adminSocketPath

        let status = try await tools.mtx("status")
        let expected =
            ["  Storage Changer \(socket):2 Drives, 21 Slots ( 1 Import/Export )"]
            + ["Data Transfer Element 0:Empty", "Data Transfer Element 1:Empty"]
            + (1...4).map { "      Storage Element \($0):Full :VolumeTag=TAPE000\($0)" }
            + (5...20).map { "      Storage Element \($0):Empty" }
            + ["      Storage Element 21 IMPORT/EXPORT:Empty"]
        #expect(status.status == 0 && status.output == expected.joined(separator: "\n") + "\n", "\(status.output)")

        let load = try await tools.mtx("load", "2", "1")
        #expect(load.status == 0 && load.output == "Loading media from Storage Element 2 into drive 1...done\n")
        let loaded = try await tools.mtx("status")
        #expect(
            loaded.output.contains("Data Transfer Element 1:Full (Storage Element 2 Loaded):VolumeTag = TAPE0002\n"))
        #expect(loaded.output.contains("      Storage Element 2:Empty\n"))
        let full = try await tools.mtx("load", "3", "1")
        #expect(full.status == 1 && full.errors == "mtx: Drive 1 Full (Storage Element 2 loaded)\n", "\(full.errors)")
        let empty = try await tools.mtx("load", "9", "0")
        #expect(empty.status == 1 && empty.errors.contains("Source Element Address 9 is Empty"), "\(empty.errors)")
        let noDrive = try await tools.mtx("load", "1", "5")
        #expect(noDrive.status == 1 && noDrive.errors.contains("illegal <drive-number> argument '5'"))

        let unload = try await tools.mtx("unload", "7", "1")
        #expect(unload.output == "Unloading drive 1 into Storage Element 7...done\n", "\(unload.errors)")
        #expect(try await tools.location(of: "TAPE0002") == "slot 6")
        #expect(try await tools.mtx("transfer", "7", "21").status == 0)
        #expect(try await tools.location(of: "TAPE0002") == "station")
        let taken = try await tools.mtx("transfer", "1", "3")
        #expect(taken.status == 1 && taken.errors.contains("Already Full"), "\(taken.errors)")

        // From the station, the source is not a storage slot: mtx says so, and an unload
        // without a slot goes to the first empty element.
        #expect(try await tools.mtx("load", "21").status == 0)
        #expect(
            try await tools.mtx("status").output.contains(
                "Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = TAPE0002\n"))
        let away = try await tools.mtx("unload")
        #expect(away.output == "Unloading drive 0 into Storage Element 2...done\n", "\(away.output)")

        let first = try await tools.mtx("first", "0")
        #expect(first.output == "Loading media from Storage Element 1 into drive 0...done\n", "\(first.output)")
        let next = try await tools.mtx("next", "0")
        #expect(
            next.output == "Unloading drive 0 into Storage Element 1...done\n"
                + "Loading media from Storage Element 2 into drive 0...done\n", "\(next.output)")
        let last = try await tools.mtx("last", "0")
        #expect(last.output.hasSuffix("Loading media from Storage Element 4 into drive 0...done\n"), "\(last.output)")
        #expect(try await tools.location(of: "TAPE0004") == "drive 0")

        // Several commands in one invocation, eepos and inventory as no-ops.
        let several = try await tools.mtx("eepos", "0", "inventory", "transfer", "1", "5", "status")
        #expect(several.status == 0 && several.output.contains("Storage Element 5:Full :VolumeTag=TAPE0001"))
        #expect(try await tools.mtx("inquiry").output.contains("Product Type: Medium Changer"))
        let help = try await tools.run("blockgate", "mtx", "--help")
        #expect(help.status == 0 && help.output.contains("storage element N is slot N-1"), "\(help.output)")
        let rmtHelp = try await tools.run("blockgate", "rmt", "--help")
        #expect(rmtHelp.status == 0 && rmtHelp.output.contains("blockgate-rsh"), "\(rmtHelp.output)")
        let bad = try await tools.mtx("spin")
        #expect(bad.status == 1 && bad.errors.hasPrefix("Usage: mtx"), "\(bad.errors)")
        let nowhere = try await tools.run(tools.directory + "/mtx", "-f", "/nonexistent/admin.sock", "status")
        #expect(nowhere.status == 1 && nowhere.errors.hasPrefix("mtx: cannot open changer"), "\(nowhere.errors)")
        await fixture.stop()
    }

    @Test func baculasMtxChangerDrivesTheLibrary() async throws {
        let script = "/etc/bacula/scripts/mtx-changer"
        let debianConf = "/etc/bacula/scripts/mtx-changer.conf"
        let fixture = try await GatewayFixture()
        let tools = try Tools(fixture)
        try await tools.createTapes(3)
        // Debian's script and config, pointed at the test's directory: its mtx (ours), its config
        // (Debian's with debug logging on, then blockgate's lines) and its temporary files.
        let work = fixture.directory + "/bacula"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let conf =
            try String(contentsOfFile: debianConf, encoding: .utf8).replacingOccurrences(
                of: "debug_log=0", with: "debug_log=1")
            + (try String(contentsOfFile: Tool.packageRoot + "/nbd-config/bacula-mtx-changer.conf", encoding: .utf8))
        try conf.write(toFile: work + "/mtx-changer.conf", atomically: true, encoding: .utf8)
        let changer = try String(contentsOfFile: script, encoding: .utf8)
            .replacingOccurrences(of: "MTX=/usr/sbin/mtx", with: "MTX=\(tools.directory)/mtx")
            .replacingOccurrences(of: debianConf, with: work + "/mtx-changer.conf")
            .replacingOccurrences(of: "/var/lib/bacula", with: work)
        try changer.write(toFile: work + "/mtx-changer", atomically: true, encoding: .utf8)
        chmod(work + "/mtx-changer", 0o755)
        let control = fixture.adminSocketPath
        let device = "localhost:drive/0"
        func changerRun(_ arguments: String...) async throws -> Tool.Result {
            try await tools.run([work + "/mtx-changer", control] + arguments)
        }

        #expect(try await changerRun("slots").output == "21\n")
        #expect(try await changerRun("list", "0", device, "0").output == "1:TAPE0001\n2:TAPE0002\n3:TAPE0003\n")
        #expect(try await changerRun("loaded", "0", device, "0").output == "0\n")
        let load = try await changerRun("load", "2", device, "0")
        #expect(load.status == 0, "\(load.output) \(load.errors)")
        #expect(try await changerRun("loaded", "0", device, "0").output == "2\n")
        let all = try await changerRun("listall", "0", device, "0")
        #expect(all.output.hasPrefix("D:0:F:2:TAPE0002\nD:1:E\nS:1:F:TAPE0001\nS:2:E\nS:3:F:TAPE0003\nS:4:E\n"))
        #expect(all.output.hasSuffix("S:20:E\nI:21:E\n"), "\(all.output)")
        #expect(try await changerRun("list", "0", device, "0").output == "1:TAPE0001\n3:TAPE0003\n2:TAPE0002\n")
        #expect(try await changerRun("unload", "2", device, "0").status == 0)
        #expect(try await changerRun("loaded", "0", device, "0").output == "0\n")
        #expect(try await changerRun("transfer", "3", "6").status == 0)
        #expect(try await tools.location(of: "TAPE0003") == "slot 5")
        // The load waited for the drive through mt's status, which said ready at once: the
        // script logs every poll that finds the drive not ready.
        let log = (try? String(contentsOfFile: work + "/mtx.log", encoding: .utf8)) ?? ""
        #expect(log.contains("Doing mtx -f \(control) load slot=2 drv=0"), "\(log)")
        #expect(!log.contains("not ready"), "\(log)")
        await fixture.stop()
    }

    @Test func amandasChgRobotDrivesTheLibraryThroughMtx() async throws {
        guard getuid() == 0 else {
            print("Amanda's chg-robot not run: its configuration lives under /etc/amanda, which needs root")
            return
        }
        let fixture = try await GatewayFixture()
        let tools = try Tools(fixture)
        try await tools.createTapes(3)
        let name = "blockgate-\(UUID().uuidString.prefix(8))"
        let configDirectory = "/etc/amanda/\(name)"
        let work = fixture.directory + "/amanda"
        try FileManager.default.createDirectory(atPath: configDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: configDirectory) }
        // A minimal configuration: the changer is chg-robot on blockgate's mtx. Its drives are
        // Amanda's null device (no kernel tape device here), which it cannot read labels from.
        try """
        org "\(name)"
        dumpuser "root"
        infofile "\(work)/curinfo"
        logdir "\(work)"
        indexdir "\(work)/index"
        define tapetype TEST {
            length 1 G
        }
        tapetype "TEST"
        define changer library {
            tpchanger "chg-robot:\(fixture.adminSocketPath)"
            property "mtx" "\(tools.directory)/mtx"
            property "tape-device" "0=null:" "1=null:"
            changerfile "\(work)/changer-state"
        }
        tpchanger "library"

        """.write(toFile: configDirectory + "/amanda.conf", atomically: true, encoding: .utf8)

        let inventory = try await tools.run("amtape", name, "inventory")
        let listed = inventory.output + inventory.errors
        #expect(listed.contains("slot 1: unknown state barcode TAPE0001"), "\(listed)")
        #expect(listed.contains("slot 3: unknown state barcode TAPE0003") && listed.contains("slot 4: empty"))
        let two = try await tools.run("amtape", name, "slot", "2")
        #expect((two.output + two.errors).contains("changed to slot 2"), "\(two.output) \(two.errors)")
        #expect(try await tools.location(of: "TAPE0002") == "drive 0")
        let three = try await tools.run("amtape", name, "slot", "3")
        #expect((three.output + three.errors).contains("changed to slot 3"), "\(three.output) \(three.errors)")
        // chg-robot takes a free drive when one is, or unloads the least recently used one.
        let third = try await tools.location(of: "TAPE0003")
        #expect(third == "drive 0" || third == "drive 1", "\(String(describing: third))")
        let second = try await tools.location(of: "TAPE0002")
        #expect(second == "slot 1" || (second?.hasPrefix("drive") == true && second != third))
        await fixture.stop()
    }

    @Test func tarCpioMtAndDumpUseTheDrivesOverRmt() async throws {
        let fixture = try await GatewayFixture()
        let tools = try Tools(fixture)
        try await tools.createTapes(1)
        #expect(try await tools.run("blockgate", "tape", "load", "TAPE0001", "--drive", "0").status == 0)
        let work = fixture.directory + "/work"
        let rsh = "--rsh-command=\(tools.rsh)"
        let tape = "localhost:drive/0"
        for (index, name) in ["one", "two", "three"].enumerated() {
            let directory = "\(work)/\(name)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let bytes = (0..<(20_000 + index * 150_000)).map { UInt8(truncatingIfNeeded: $0 &* (index + 3) >> 2) }
            try Data(bytes).write(to: URL(fileURLWithPath: "\(directory)/data-\(name)"))
            let tar = try await tools.run("tar", rsh, "-cf", tape, name, in: work)
            #expect(tar.status == 0, "\(tar.errors)")
        }
        let info = try await tools.run("blockgate", "tape", "info", "TAPE0001", "--json")
        let files =
            (try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any])?["files"] as? [Int]
        #expect(files?.count == 3, "\(info.output)")

        #expect(try await tools.run("mt-gnu", rsh, "-f", tape, "rewind").status == 0)
        #expect(try await tools.run("mt-gnu", rsh, "-f", tape, "fsf", "1").status == 0)
        let list = try await tools.run("tar", rsh, "-tf", tape)
        #expect(list.status == 0 && list.output == "two/\ntwo/data-two\n", "\(list.output) \(list.errors)")
        // The list read up to tar's end-of-archive blocks, inside the file: the head stays there
        // for the next program, which meets the filemark and then the third archive.
        let extract = fixture.directory + "/extract"
        try FileManager.default.createDirectory(atPath: extract, withIntermediateDirectories: true)
        #expect(try await tools.run("mt-gnu", rsh, "-f", tape, "bsfm", "1").status == 0)
        #expect(try await tools.run("tar", rsh, "-xf", tape, in: extract).status == 0)
        #expect(
            FileManager.default.contentsEqual(atPath: "\(extract)/two/data-two", andPath: "\(work)/two/data-two"))
        #expect(try await tools.run("mt-gnu", rsh, "-f", tape, "fsf", "1").status == 0)
        #expect(try await tools.run("tar", rsh, "-xf", tape, in: extract).status == 0)
        #expect(
            FileManager.default.contentsEqual(
                atPath: "\(extract)/three/data-three", andPath: "\(work)/three/data-three"))

        // Writing inside the recorded files is refused; at end of data it appends.
        #expect(try await tools.run("mt-gnu", rsh, "-f", tape, "rewind").status == 0)
        let over = try await tools.run("tar", rsh, "-cf", tape, "one", in: work)
        #expect(over.status != 0 && over.errors.contains("Operation not permitted"), "\(over.errors)")
        #expect(try await tools.run("mt-gnu", rsh, "-f", tape, "eom").status == 0)
        let cpioOut = try await tools.run("sh", "-c", "cd '\(work)/three' && ls | cpio -o \(rsh) -F \(tape)")
        #expect(cpioOut.status == 0, "\(cpioOut.errors)")
        // Back over the filemarks after and before the cpio archive, forward over the latter.
        #expect(try await tools.run("mt-gnu", rsh, "-f", tape, "bsfm", "2").status == 0)
        let cpioDirectory = fixture.directory + "/cpio"
        try FileManager.default.createDirectory(atPath: cpioDirectory, withIntermediateDirectories: true)
        let cpioIn = try await tools.run("cpio", "-id", rsh, "-F", tape, in: cpioDirectory)
        #expect(cpioIn.status == 0, "\(cpioIn.errors)")
        #expect(
            FileManager.default.contentsEqual(
                atPath: "\(cpioDirectory)/data-three", andPath: "\(work)/three/data-three"))
        let inside = try await tools.run("mt-gnu", rsh, "-f", tape, "weof", "2")
        #expect(inside.status != 0 && inside.errors.contains("Operation not permitted"), "\(inside.errors)")
        #expect(try await tools.run("mt-gnu", rsh, "-f", tape, "eom").status == 0)
        #expect(try await tools.run("mt-gnu", rsh, "-f", tape, "weof", "2").status == 0)
        let after = try await tools.run("blockgate", "tape", "info", "TAPE0001", "--json")
        let count =
            ((try JSONSerialization.jsonObject(with: Data(after.output.utf8)) as? [String: Any])?["files"]
            as? [Int])?.count
        #expect(count == 6, "\(after.output)")

        try await dumpAndRestore(tools, work: work)
        await fixture.stop()
    }

    /// dump of a small ext4 filesystem (on a loop device) to the drive and restore of it, when
    /// this machine lets the test make a loop device; otherwise says why it could not.
    private func dumpAndRestore(_ tools: Tools, work: String) async throws {
        let image = work + "/fs.img"
        #expect(try await tools.run("mkfs.ext4", "-q", "-d", work + "/three", image, "8M").status == 0)
        let loop = try await tools.run("losetup", "--find", "--show", image)
        guard loop.status == 0 else {
            print("dump/restore not run: no loop device here (\(loop.errors.trimmingCharacters(in: .newlines)))")
            return
        }
        let device = loop.output.trimmingCharacters(in: .whitespacesAndNewlines)
        var environment = tools.environment
        environment["RSH"] = tools.rsh
        let dump = try await Tool.run(["dump", "-0", "-f", "localhost:drive/0", device], environment: environment)
        #expect(dump.status == 0 && dump.errors.contains("DUMP IS DONE"), "\(dump.errors)")
        #expect(
            try await tools.run("mt-gnu", "--rsh-command=\(tools.rsh)", "-f", "localhost:drive/0", "bsfm", "2").status
                == 0)
        let restored = work + "/restored"
        try FileManager.default.createDirectory(atPath: restored, withIntermediateDirectories: true)
        let restore = try await Tool.run(
            ["sh", "-c", "cd '\(restored)' && exec restore -r -f localhost:drive/0"], environment: environment)
        #expect(restore.status == 0, "\(restore.errors)")
        #expect(
            FileManager.default.contentsEqual(atPath: "\(restored)/data-three", andPath: "\(work)/three/data-three"))
        _ = try await tools.run("losetup", "-d", device)
    }

    @Test func theProtocolSpokenDirectlyAndOneUserOfADriveAtATime() async throws {
        let fixture = try await GatewayFixture()
        let tools = try Tools(fixture)
        try await tools.createTapes(1)
        #expect(try await tools.run("blockgate", "tape", "load", "TAPE0001", "--drive", "0").status == 0)
        let rmt = try await RemoteTapeClient(socketPath: fixture.adminSocketPath)

        #expect(try await rmt.ask("R10\n") == "E9")
        #expect(try await rmt.ask("Odrive/1\n0\n") == "E123")
        #expect(try await rmt.ask("Odisk/0\n0\n") == "E2")
        #expect(try await rmt.ask("Odrive/0\n577 O_WRONLY|O_CREAT|O_TRUNC\n") == "A0")
        await #expect(throws: (any Error).self) { try await LibNBD.connect(fixture.uri("drive/0")) }
        #expect(try await rmt.ask("W10\n0123456789") == "A10")
        #expect(try await rmt.ask("I5\n1\n") == "A0")
        #expect(try await rmt.ask("W4\nabcd") == "A4")
        #expect(try await rmt.ask("Cdrive/0\n") == "A0")

        #expect(try await rmt.ask("Odrive/0\n0\n") == "A0")
        #expect(try await rmt.ask("I6\n1\n") == "A0")
        let status = try await rmt.askData("S")
        #expect(status.count == 48)
        let general = status[24..<32].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(general & 0x4100_0000 == 0x4100_0000, "BOT and ONLINE: \(String(general, radix: 16))")
        #expect(try await rmt.askData("R100\n") == Array("0123456789".utf8))
        #expect(try await rmt.askData("R100\n").isEmpty)
        #expect(try await rmt.askData("R100\n") == Array("abcd".utf8))
        #expect(try await rmt.ask("sF") == "A1")
        #expect(try await rmt.ask("sB") == "A1")
        #expect(try await rmt.askData("R100\n").isEmpty)
        #expect(try await rmt.askData("R100\n").isEmpty)
        #expect(try await rmt.ask("sF") == "A2")
        #expect(try await rmt.ask("L0\n1\n") == "A0")
        // Protocol version 1 numbers operations portably: 5 is a rewind there.
        #expect(try await rmt.ask("I-1\n0\n") == "A1")
        #expect(try await rmt.ask("I5\n1\n") == "A0")
        #expect(try await rmt.ask("sF") == "A0")
        #expect(try await rmt.ask("i4\n1\n") == "A0")
        #expect(try await rmt.ask("sF") == "A2")
        #expect(try await rmt.ask("I77\n1\n") == "E22")
        #expect(try await rmt.ask("Cdrive/0\n") == "A0")

        // An NBD client holds the drive: the rmt open is refused as busy.
        let client = try await LibNBD.connect(fixture.uri("drive/0"))
        #expect(try await rmt.ask("Odrive/0\n0\n") == "E16")
        try await client.shutdown()
        // Bytes that are not the protocol end the session.
        #expect(try await rmt.ask("Z\n") == "")
        rmt.close()
        await fixture.stop()
    }
}

/// A test's own rmt client on an admin connection: sends requests, reads the reply line (and
/// the bytes after it).
final class RemoteTapeClient: @unchecked Sendable {
    private let descriptor: Int32

    init(socketPath: String) async throws {
        descriptor = try await Blocking.run { try AdminClient(socketPath: socketPath).openRemoteTape() }
    }

    /// Sends `request`; the reply's first line ("A…" or "E…"; the error's message line is
    /// read too), or "" when the daemon closed the connection.
    func ask(_ request: String) async throws -> String {
        try await Blocking.run {
            self.send(request)
            let line = self.line()
            if line.hasPrefix("E") { _ = self.line() }
            return line
        }
    }

    /// Sends `request` and returns the bytes its `A count` reply carries.
    func askData(_ request: String) async throws -> [UInt8] {
        try await Blocking.run {
            self.send(request)
            let line = self.line()
            guard line.hasPrefix("A"), let count = Int(line.dropFirst()) else { return Array(line.utf8) }
            var data = [UInt8](repeating: 0, count: count)
            var got = 0
            while got < count {
                let result = data.withUnsafeMutableBytes { read(self.descriptor, $0.baseAddress! + got, count - got) }
                guard result > 0 else { break }
                got += result
            }
            return data
        }
    }

    func close() { Glibc.close(descriptor) }

    private func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress!, bytes.count) }
    }

    private func line() -> String {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while read(descriptor, &byte, 1) == 1, byte != UInt8(ascii: "\n") { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
