import Foundation
import Glibc
import Testing

/// The long runs of `make soak` (scripts/soak/run.sh), skipped by `make test`: crash trials on
/// thin and cached volumes (BLOCKGATE_SOAK_ROUNDS rounds each), object-store faults, and a full
/// disk under each kind of volume.
@Suite(.serialized, .enabled(if: Soak.rounds != nil, "make soak runs these"))
struct SoakTests {
    @Test(.enabled(if: (Soak.rounds ?? 0) > 0, "no crash trials asked for (N=0)"))
    func crashTrialsOnAThinVolume() async throws {
        try await CrashTests.trials(rounds: Soak.rounds ?? 0)
    }

    @Test(.enabled(if: (Soak.rounds ?? 0) > 0, "no crash trials asked for (N=0)"))
    func crashTrialsOnACachedVolumeAndTheObjectStoreConverges() async throws {
        try await UploadCrashTests.trials(rounds: Soak.rounds ?? 0)
    }

    /// Rounds of object-store errors, added latency and outages under a steady writer for
    /// BLOCKGATE_FAULT_SOAK_MINUTES: nothing lost, backpressure in the metrics, no restart.
    @Test(.enabled(if: Soak.faultMinutes > 0, "FAULT_MINUTES=0"))
    func objectStoreFaultsUnderAWriterLoseNothing() async throws {
        try await ObjectStoreFaultTests.run(.soak, for: .seconds(Soak.faultMinutes * 60))
    }

    /// The data directory (the volumes and the cache of cached volumes) on a small tmpfs, filled
    /// up: clients get ENOSPC, flushed data stays intact, and writes work again once space returns,
    /// also after kill -9 (needs root to mount the tmpfs). A cached volume's object store is
    /// elsewhere, with room to spare.
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"), arguments: ["thin", "cached"])
    func aFullDiskGivesENOSPCAndLosesNothing(kind: String) async throws {
        let directory = NSTemporaryDirectory() + "blockgate-full-\(UUID().uuidString.prefix(8))"
        let objects = directory + "-objects"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let mounted = try await Tool.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", directory])
        try #require(mounted.status == 0, "\(mounted.errors)")
        defer {
            umount2(directory, Int32(MNT_DETACH))
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: objects)
        }
        let daemon = DaemonProcess(
            directory: directory,
            arguments: ["--log-level", "error", "--object-store", "file://\(objects)", "--cache-size", "256M"])
        try await daemon.start()
        let admin = ["--admin-socket", daemon.adminSocketPath]
        var export = "demo"
        if kind == "cached" {
            export = "cv"
            let create = try await Tool.run(
                [Tool.blockgate, "volume", "create", export, "--size", "64M", "--kind", "cached"] + admin)
            try #require(create.status == 0, "\(create.errors)")
        }
        var filesystem = statvfs()
        statvfs(directory, &filesystem)
        let filler = directory + "/filler"
        let free = Int(filesystem.f_bavail) * Int(filesystem.f_frsize)
        try Data(count: max(0, free - (12 << 20))).write(to: URL(fileURLWithPath: filler))

        let client = try await LibNBD.connect(daemon.uri(export: export))
        let flushed = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        try await client.write(0, flushed)
        try await client.flush()
        var full: LibNBD.Failure?
        var offset = UInt64(8 << 20)
        while full == nil, offset < 64 << 20 {
            do {
                try await client.write(offset, [UInt8](repeating: 0xA5, count: 1 << 20))
                try await client.flush()
                offset += 1 << 20
            } catch let failure as LibNBD.Failure {
                full = failure
            }
        }
        #expect(full?.errno == ENOSPC, "\(kind): \(String(describing: full))")
        #expect(try await client.read(0, flushed.count) == flushed, "\(kind): flushed data changed on a full disk")

        try FileManager.default.removeItem(atPath: filler)
        try await client.write(offset, [UInt8](repeating: 0x5A, count: 1 << 20))
        try await client.flush()
        try await client.shutdown()
        if kind == "cached" {
            let drain = try await Tool.run([Tool.blockgate, "volume", "flush", export, "--wait-upload"] + admin)
            #expect(drain.status == 0, "uploads resume once space returns: \(drain.errors)")
        }
        try await daemon.kill9()
        try await daemon.start()
        let reopened = try await LibNBD.connect(daemon.uri(export: export))
        #expect(try await reopened.read(0, flushed.count) == flushed, "\(kind)")
        #expect(try await reopened.read(offset, 1 << 20) == [UInt8](repeating: 0x5A, count: 1 << 20), "\(kind)")
        try await reopened.shutdown()
        try await daemon.kill9()
    }
}

/// What `make soak` asked for: crash trials (BLOCKGATE_SOAK_ROUNDS; nil outside a soak) and
/// minutes of object-store faults (BLOCKGATE_FAULT_SOAK_MINUTES).
enum Soak {
    static let rounds = ProcessInfo.processInfo.environment["BLOCKGATE_SOAK_ROUNDS"].flatMap(Int.init)
    static let faultMinutes =
        ProcessInfo.processInfo.environment["BLOCKGATE_FAULT_SOAK_MINUTES"].flatMap(Double.init) ?? 0
}
