import Foundation
import LocalIO
import Testing

/// Debian's NBD clients against a real gateway: nbdinfo, qemu-io, qemu-img, nbdcopy, nbdsh.
@Suite(.serialized) struct RealClientTests {
    @Test func nbdinfoListsExportsAndTheirCapabilities() async throws {
        let fixture = try await GatewayFixture()
        try await fixture.gateway.manager.create(name: "second", size: 8 << 20)
        let list = try await Tool.run(["nbdinfo", "--list", fixture.uri("")])
        #expect(list.status == 0, "\(list.errors)")
        #expect(list.output.contains("export=\"demo\"") && list.output.contains("export=\"second\""))
        #expect(list.output.contains("thin volume, 8M"))
        for capability in ["trim", "flush", "fua", "zero", "fast-zero", "cache", "multi-conn", "df"] {
            let result = try await Tool.run(["nbdinfo", "--can", capability, fixture.uri("demo")])
            #expect(result.status == 0, "--can \(capability): \(result.status) \(result.errors)")
        }
        #expect(try await Tool.run(["nbdinfo", "--is", "read-only", fixture.uri("demo")]).status == 2)
        let size = try await Tool.run(["nbdinfo", "--size", fixture.tcpURI("second")])
        #expect(size.output.trimmingCharacters(in: .whitespacesAndNewlines) == "\(8 << 20)")
        await fixture.stop()
    }

    @Test func qemuIoPatternsDiscardAndWriteZeroes() async throws {
        let fixture = try await GatewayFixture()
        let result = try await Tool.run([
            "qemu-io", "-f", "raw",
            "-c", "write -P 0xab 0 1M", "-c", "write -P 0xcd 1536k 64k", "-c", "read -P 0xab 0 1M",
            "-c", "read -P 0xcd 1536k 64k", "-c", "discard 0 512k", "-c", "read -P 0 0 512k",
            "-c", "write -z 1536k 32k", "-c", "read -P 0 1536k 32k", "-c", "read -P 0xcd 1568k 32k",
            "-c", "write -z -u 512k 512k", "-c", "read -P 0 512k 512k", "-c", "flush",
            fixture.uri("demo"),
        ])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(!result.output.contains("Pattern verification failed"), "\(result.output)")
        let info = try fixture.gateway.manager.info(name: "demo")
        #expect(info.allocatedBytes == 64 << 10, "only the 64K at 1536K should stay allocated")
        await fixture.stop()
    }

    @Test func qemuImgConvertCompareAndMap() async throws {
        let fixture = try await GatewayFixture()
        let image = fixture.directory + "/source.img"
        // 4M image: random data in the first and third MiB, the rest sparse.
        try await Tool.run(["truncate", "-s", "4M", image])
        try await Tool.run(["dd", "if=/dev/urandom", "of=\(image)", "bs=1M", "count=1", "conv=notrunc"])
        try await Tool.run(["dd", "if=/dev/urandom", "of=\(image)", "bs=1M", "count=1", "seek=2", "conv=notrunc"])
        try await fixture.gateway.manager.create(name: "copy", size: 4 << 20)
        let convert = try await Tool.run([
            "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", image, fixture.uri("copy"),
        ])
        #expect(convert.status == 0, "\(convert.errors)")
        let compare = try await Tool.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", image, fixture.uri("copy")])
        #expect(compare.status == 0, "\(compare.output)\(compare.errors)")
        let map = try await Tool.run(["qemu-img", "map", "-f", "raw", "--output=json", fixture.uri("copy")])
        #expect(map.status == 0)
        let extents = try JSONSerialization.jsonObject(with: Data(map.output.utf8)) as! [[String: Any]]
        let data = extents.filter { $0["data"] as? Bool == true }.map { ($0["start"] as! Int, $0["length"] as! Int) }
        #expect(data.count == 2 && data[0] == (0, 1 << 20) && data[1] == (2 << 20, 1 << 20), "\(data)")
        #expect(try fixture.gateway.manager.info(name: "copy").allocatedBytes == 2 << 20)
        await fixture.stop()
    }

    @Test func nbdcopyRoundTripOverTCP() async throws {
        let fixture = try await GatewayFixture()
        let source = fixture.directory + "/in.img"
        let back = fixture.directory + "/out.img"
        try await Tool.run(["dd", "if=/dev/urandom", "of=\(source)", "bs=1M", "count=8"])
        try await fixture.gateway.manager.create(name: "rt", size: 8 << 20)
        let upload = try await Tool.run(["nbdcopy", source, fixture.tcpURI("rt")])
        #expect(upload.status == 0, "\(upload.errors)")
        let download = try await Tool.run(["nbdcopy", fixture.tcpURI("rt"), back])
        #expect(download.status == 0, "\(download.errors)")
        #expect(try await Tool.run(["cmp", source, back]).status == 0)
        await fixture.stop()
    }

    @Test func nbdshSeesStructuredHoleChunksAndBlockStatus() async throws {
        let fixture = try await GatewayFixture()
        let script = """
            assert h.get_structured_replies_negotiated()
            assert h.can_meta_context("base:allocation")
            h.pwrite(b"\\xaa" * 4096, 8192)
            chunks = []
            def chunk(subbuf, offset, status, error):
                chunks.append((status, offset, len(subbuf)))
                return 0
            buf = h.pread_structured(16384, 4096, chunk)
            assert buf == bytes(4096) + b"\\xaa" * 4096 + bytes(8192), "data"
            kinds = sorted(chunks, key=lambda c: c[1])
            assert [c[0] for c in kinds] == [nbd.READ_HOLE, nbd.READ_DATA, nbd.READ_HOLE], kinds
            extents = []
            def extent(metacontext, offset, entries, error):
                extents.extend(entries)
                return 0
            h.block_status(65536, 0, extent)
            assert extents[:6] == [8192, 3, 4096, 0, 65536 - 12288, 3], extents
            print("nbdsh-ok")
            """
        let result = try await Tool.run(["nbdsh", "--base-allocation", "-u", fixture.uri("demo"), "-c", script])
        #expect(result.status == 0 && result.output.contains("nbdsh-ok"), "\(result.output)\(result.errors)")
        await fixture.stop()
    }

    @Test func nbdinfoMapShowsHolesWhereTrimmed() async throws {
        let fixture = try await GatewayFixture()
        let client = try await LibNBD.connect(fixture.uri("demo"))
        try await client.write(0, [UInt8](repeating: 1, count: 4 << 20))
        try await client.trim(1 << 20, 2 << 20)
        try await client.flush()
        let map = try await Tool.run(["nbdinfo", "--map", fixture.uri("demo")])
        let lines = map.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        let summary = lines.map { "\($0[0])+\($0[1]):\($0[2])" }
        #expect(
            summary == ["0+1048576:0", "1048576+2097152:3", "3145728+1048576:0", "4194304+62914560:3"],
            "\(map.output)")
        await fixture.stop()
    }
}
