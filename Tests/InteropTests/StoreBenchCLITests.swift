import Foundation
import ObjectStore
import Testing

/// `blockgate objstore bench` measures a real S3 service (our emulator and moto), leaving
/// nothing behind when it succeeds unless told to, and refuses arguments it cannot use with
/// what to do.
@Suite struct StoreBenchCLITests {
    private static let environment = [
        "AWS_ACCESS_KEY_ID": S3Peer.credentials.accessKeyID,
        "AWS_SECRET_ACCESS_KEY": S3Peer.credentials.secretAccessKey,
    ]

    /// A line of a step's result as `make bench` reads it.
    private static func isResult(_ line: Substring, _ step: String, of objects: String) -> Bool {
        line.wholeMatch(
            of: try! Regex(
                "\(step) \(objects), [0-9]+ at once: [0-9]+\\.[0-9] MiB/s in [0-9]+\\.[0-9]{2} s, [0-9]+\\.[0-9]{2} s of processor"
            ))
            != nil
    }

    @Test(arguments: S3Peer.Kind.allCases)
    func measuresEachStepAndCleansUp(_ kind: S3Peer.Kind) async throws {
        let peer = try await S3Peer(kind)
        let client = peer.client(bucket: "bench")
        let bench = [Tool.blockgate, "objstore", "bench", "--object-store", peer.url(bucket: "bench")]
        let all = try await Tool.run(
            bench + ["--objects", "5", "--size", "64K", "--concurrency", "2"], environment: Self.environment)
        #expect(all.status == 0, "\(all.errors)")
        let lines = all.output.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.count > 0 && Self.isResult(lines[0], "PUT", of: "5 objects of 64K"), "\(all.output)")
        #expect(lines.count > 1 && Self.isResult(lines[1], "GET", of: "5 objects of 64K"), "\(all.output)")
        #expect(lines.last?.hasPrefix("DELETE 5 objects, 2 at once: ") == true)
        #expect(try await client.list(prefix: "blockgate-bench/").isEmpty)

        // Steps one at a time: the objects stay between them.
        let steps = bench + ["--objects", "3", "--size", "4K", "--prefix", "kept"]
        #expect(try await Tool.run(steps + ["--put"], environment: Self.environment).status == 0)
        #expect(try await client.list(prefix: "kept/").count == 3)
        let get = try await Tool.run(steps + ["--get"], environment: Self.environment)
        #expect(get.status == 0 && get.output.hasPrefix("GET 3 objects of 4K"), "\(get.errors)")
        #expect(try await client.list(prefix: "kept/").count == 3)
        #expect(try await Tool.run(steps + ["--delete"], environment: Self.environment).status == 0)
        #expect(try await client.list(prefix: "kept/").isEmpty)
        // Reading objects that are not there fails, saying which.
        let missing = try await Tool.run(steps + ["--get"], environment: Self.environment)
        #expect(missing.status != 0)
        #expect(missing.errors.contains("no object kept/"), "\(missing.errors)")
        await client.shutdown()
        await peer.stop()
    }

    @Test func refusesWhatItCannotUse() async throws {
        let bench = [Tool.blockgate, "objstore", "bench", "--object-store"]
        let refusals = [
            (["file:///tmp/blockgate-bench-unused", "--size", "4"], "--size 8 bytes to 1G"),
            (["file:///tmp/blockgate-bench-unused", "--concurrency", "8", "--size", "1G"], "at most 4G"),
            (["file:///tmp/blockgate-bench-unused", "--prefix", "kept/"], "--prefix must be a key"),
            (["ftp://somewhere"], "object store scheme 'ftp' is not supported; use"),
            (["s3://bench?endpoint=http://127.0.0.1:9"], "give --access-key and --secret-key"),
        ]
        for (arguments, message) in refusals {
            // No credentials in the environment: the S3 case must say how to give them.
            let result = try await Tool.run(
                ["env", "-u", "AWS_ACCESS_KEY_ID", "-u", "AWS_SECRET_ACCESS_KEY"] + bench + arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.errors.contains(message), "\(arguments): \(result.errors)")
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/blockgate-bench-unused"))
    }
}
