import Foundation
import ObjectStore
import Testing

/// `blockgate objstore bench` measures a real S3 service (our emulator and moto), leaving
/// nothing behind unless told to, and refuses arguments it cannot use with what to do.
@Suite struct StoreBenchCLITests {
    private static let environment = [
        "AWS_ACCESS_KEY_ID": S3Peer.credentials.accessKeyID,
        "AWS_SECRET_ACCESS_KEY": S3Peer.credentials.secretAccessKey,
    ]

    @Test(arguments: S3Peer.Kind.allCases)
    func measuresEachStepAndCleansUp(_ kind: S3Peer.Kind) async throws {
        let peer = try await S3Peer(kind)
        let bench = [Tool.blockgate, "objstore", "bench", "--object-store", peer.url(bucket: "bench")]
        let all = try await Tool.run(
            bench + ["--objects", "5", "--size", "64K", "--concurrency", "2"], environment: Self.environment)
        #expect(all.status == 0, "\(all.errors)")
        let lines = all.output.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.first?.hasPrefix("PUT 5 objects of 64K, 2 at once: ") == true)
        #expect(lines.dropFirst().first?.hasPrefix("GET 5 objects of 64K, 2 at once: ") == true)
        #expect(lines.last?.hasPrefix("DELETE 5 objects, 2 at once: ") == true)
        #expect(all.output.contains("MiB/s in "))
        #expect(try await peer.client(bucket: "bench").list(prefix: "blockgate-bench/").isEmpty)

        // Steps one at a time: the objects stay between them.
        let steps = bench + ["--objects", "3", "--size", "4K", "--prefix", "kept"]
        #expect(try await Tool.run(steps + ["--put"], environment: Self.environment).status == 0)
        #expect(try await peer.client(bucket: "bench").list(prefix: "kept/").count == 3)
        let get = try await Tool.run(steps + ["--get"], environment: Self.environment)
        #expect(get.status == 0 && get.output.hasPrefix("GET 3 objects of 4K"), "\(get.errors)")
        #expect(try await peer.client(bucket: "bench").list(prefix: "kept/").count == 3)
        #expect(try await Tool.run(steps + ["--delete"], environment: Self.environment).status == 0)
        #expect(try await peer.client(bucket: "bench").list(prefix: "kept/").isEmpty)
        // Reading objects that are not there fails, saying which.
        let missing = try await Tool.run(steps + ["--get"], environment: Self.environment)
        #expect(missing.status != 0)
        #expect(missing.errors.contains("no object kept/"), "\(missing.errors)")
        await peer.stop()
    }

    @Test func refusesWhatItCannotUse() async throws {
        let bench = [Tool.blockgate, "objstore", "bench", "--object-store"]
        let tooSmall = try await Tool.run(bench + ["file:///tmp/blockgate-bench-unused", "--size", "4"])
        #expect(tooSmall.status != 0)
        #expect(tooSmall.errors.contains("--size 8 bytes to 1G"), "\(tooSmall.errors)")
        let badURL = try await Tool.run(bench + ["ftp://somewhere"])
        #expect(badURL.status != 0)
        #expect(badURL.errors.contains("object store scheme 'ftp' is not supported; use"), "\(badURL.errors)")
    }
}
