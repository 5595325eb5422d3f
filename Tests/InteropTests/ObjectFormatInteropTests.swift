import Codecs
import Foundation
import Gateway
import ObjectStore
import Testing

/// Cached volumes raw, compressed, encrypted and both, through the whole gateway on our emulator
/// and on moto_server: what is written comes back on a new gateway that has only the bucket and
/// the master key; nothing in the bucket shows the data or the volume's name when encrypted;
/// compression shrinks what is stored; a cold 4 KiB read fetches a frame, not the chunk; and
/// another master key is refused with a message that says so.
@Suite(.serialized) struct ObjectFormatInteropTests {
    static let formats: [ObjectFormatChoice] = [
        .init(compression: .off, cipher: .off), .init(compression: .zstd(level: 3), cipher: .off),
        .init(compression: .off, cipher: .aes256GCM), .init(compression: .lz4, cipher: .chaCha20Poly1305),
    ]
    static let marker = "SECRET-MARKER-of-blockgate"

    /// 16 MiB: text, noise, zeros, text (4 MiB each).
    private func source(in directory: String) async throws -> String {
        let path = directory + "/source.img"
        var text = Data()
        var line = 0
        while text.count < 4 << 20 {
            text.append(Data("\(Self.marker) line \(line) of text that compresses well enough\n".utf8))
            line += 1
        }
        text = text.prefix(4 << 20)
        try text.write(to: URL(fileURLWithPath: path))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((0..<(4 << 20)).map { _ in UInt8.random(in: 0...255) }))
        try handle.write(contentsOf: Data(count: 4 << 20))
        try handle.write(contentsOf: text)
        try handle.close()
        return path
    }

    private func keyFile(in directory: String, _ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "blockgate-\(name)-\(UUID().uuidString.prefix(8)).key"
        try MasterKey.generateKeyFile().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(arguments: S3Peer.Kind.allCases, formats)
    func aVolumeComesBackFromTheBucketAndTheKeyAlone(_ kind: S3Peer.Kind, _ format: ObjectFormatChoice) async throws {
        let peer = try await S3Peer(kind)
        let key = try keyFile(in: NSTemporaryDirectory(), "master")
        let otherKey = try keyFile(in: NSTemporaryDirectory(), "other")
        defer { for path in [key, otherKey] { try? FileManager.default.removeItem(atPath: path) } }
        let fixture = try await GatewayFixture(
            objectStore: peer.url(), configure: { $0.keyFile = key }, cacheSize: 4 << 20)
        try await fixture.gateway.manager.create(
            name: "formatted", size: 32 << 20, chunkSize: 1 << 20, kind: .cached,
            format: .init(compression: format.compression, cipher: format.cipher))
        let source = try await source(in: fixture.directory)
        let kept = NSTemporaryDirectory() + "blockgate-kept-\(UUID().uuidString.prefix(8)).img"
        try FileManager.default.copyItem(atPath: source, toPath: kept)
        defer { try? FileManager.default.removeItem(atPath: kept) }
        #expect(try await Tool.run(["nbdcopy", source, fixture.uri("formatted")]).status == 0)
        try await fixture.drain("formatted")
        let info = try await fixture.gateway.manager.detailedInfo(name: "formatted")
        #expect(info.compression == format.compression.description)
        #expect(info.encryption == format.cipher?.description)
        let (logical, stored) = (try #require(info.logicalBytes), try #require(info.storedBytes))
        #expect(logical == 12 << 20, "the zero chunks are not stored at all")
        if format.compression == .off {
            #expect(stored > logical)
        } else {
            #expect(stored < logical * 3 / 4, "\(stored) of \(logical) bytes")
        }

        // What the bucket shows: the data only as it is (neither compressed nor encrypted), never
        // the volume's name (the manifests are sealed, as a master key is configured).
        let client = peer.client()
        var plaintext = false
        for object in try await client.list(prefix: "") {
            let data = try await client.get(try ObjectKey(object.key), range: nil)
            let text = String(decoding: data.readableBytesView, as: UTF8.self)
            plaintext = plaintext || text.contains(Self.marker)
            #expect(!text.contains("formatted"), "\(object.key) names the volume")
        }
        #expect(plaintext == (format.cipher == .off && format.compression == .off))
        await fixture.stop()

        // A new gateway with another key cannot open the manifest, and says why.
        let stranger = try await GatewayFixture(objectStore: peer.url(), configure: { $0.keyFile = otherKey })
        let refused = await #expect(throws: GatewayError.self) {
            try await stranger.gateway.manager.recover(name: "formatted")
        }
        #expect(refused?.message.contains("do not open with this master key") == true)
        await stranger.stop()

        // A new gateway with the key rebuilds the volume; its first 4 KiB read fetches a frame.
        let fresh = try await GatewayFixture(
            objectStore: peer.url(), configure: { $0.keyFile = key }, cacheSize: 4 << 20)
        try await fresh.gateway.manager.recover(name: "formatted")
        let sentBefore = peer.emulator?.objectBytesSent
        let client4k = try await LibNBD.connect(fresh.uri("formatted"))
        let block = try await client4k.read(5 << 20 + 8192, 4096)
        try await client4k.shutdown()
        #expect(block == Array(try Data(contentsOf: URL(fileURLWithPath: kept))[(5 << 20 + 8192)..<(5 << 20 + 12288)]))
        if let sentBefore, let sentAfter = peer.emulator?.objectBytesSent {
            // A 64 KiB frame and its trailer, and the frame table when compressed.
            #expect(sentAfter - sentBefore <= 65536 + 16 + 64 + 4 * 16 + 16, "\(sentAfter - sentBefore) bytes")
        }
        let back = fresh.directory + "/back.img"
        #expect(try await Tool.run(["nbdcopy", fresh.uri("formatted"), back]).status == 0)
        #expect(try await Tool.run(["cmp", "-n", "\(16 << 20)", kept, back]).status == 0)
        await fresh.stop()
        await peer.stop()
    }

    /// `key rotate` re-wraps the data keys and re-seals the manifests: afterwards blockgate starts
    /// with the new key (and a new gateway recovers the volume with it) and refuses the old one.
    @Test func rotatingTheMasterKeyKeepsTheDataAndRetiresTheOldKey() async throws {
        let peer = try await S3Peer(.emulator)
        let old = try keyFile(in: NSTemporaryDirectory(), "old")
        let new = try keyFile(in: NSTemporaryDirectory(), "new")
        defer { for path in [old, new] { try? FileManager.default.removeItem(atPath: path) } }
        let fixture = try await GatewayFixture(objectStore: peer.url(), configure: { $0.keyFile = old })
        let directory = fixture.directory
        try await fixture.gateway.manager.create(name: "rotated", size: 16 << 20, kind: .cached)
        #expect(try fixture.gateway.manager.info(name: "rotated").encryption == "aes-256-gcm")
        let source = try await source(in: directory)
        #expect(try await Tool.run(["nbdcopy", source, fixture.uri("rotated")]).status == 0)
        try await fixture.drain("rotated")
        let rotate = try await Tool.run([
            Tool.blockgate, "key", "rotate", "--new-key-file", new, "--admin-socket", fixture.adminSocketPath,
        ])
        #expect(rotate.status == 0, "\(rotate.errors)")
        #expect(rotate.output.contains("re-wrapped 1 data key"))
        await fixture.stop(keepingData: true)

        let refused = await #expect(throws: GatewayError.self) {
            _ = try await GatewayFixture(objectStore: peer.url(), configure: { $0.keyFile = old }, directory: directory)
        }
        #expect(refused?.message.contains("is not the one its data key was wrapped with") == true)
        let again = try await GatewayFixture(
            objectStore: peer.url(), configure: { $0.keyFile = new }, directory: directory)
        let back = directory + "/back.img"
        #expect(try await Tool.run(["nbdcopy", again.uri("rotated"), back]).status == 0)
        #expect(try await Tool.run(["cmp", "-n", "\(16 << 20)", source, back]).status == 0)
        await again.stop()

        let fresh = try await GatewayFixture(objectStore: peer.url(), configure: { $0.keyFile = new })
        #expect(try await fresh.gateway.manager.recover(name: "rotated").encryption == "aes-256-gcm")
        await fresh.stop()
        await peer.stop()
    }

    /// A passphrase gives the same master key on every gateway of the store (its salt is kept in
    /// the store): a new gateway with the passphrase recovers an encrypted volume; a wrong
    /// passphrase stops the start with a reason.
    @Test func aPassphraseDerivesTheSameKeyOnAnyGatewayOfTheStore() async throws {
        let peer = try await S3Peer(.emulator)
        let passphrase = NSTemporaryDirectory() + "blockgate-pass-\(UUID().uuidString.prefix(8))"
        let wrong = passphrase + "-wrong"
        try "correct horse battery staple\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        try "correct horse battery stable\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        defer { for path in [passphrase, wrong] { try? FileManager.default.removeItem(atPath: path) } }
        let first = try await GatewayFixture(objectStore: peer.url(), configure: { $0.passphraseFile = passphrase })
        try await first.gateway.manager.create(name: "phrased", size: 16 << 20, kind: .cached)
        let source = try await source(in: first.directory)
        #expect(try await Tool.run(["nbdcopy", source, first.uri("phrased")]).status == 0)
        try await first.drain("phrased")
        let kept = NSTemporaryDirectory() + "blockgate-kept-\(UUID().uuidString.prefix(8)).img"
        try FileManager.default.copyItem(atPath: source, toPath: kept)
        defer { try? FileManager.default.removeItem(atPath: kept) }
        await first.stop()

        let refused = await #expect(throws: GatewayError.self) {
            _ = try await GatewayFixture(objectStore: peer.url(), configure: { $0.passphraseFile = wrong })
        }
        #expect(refused?.message.contains("is not the one this object store was set up with") == true)
        let second = try await GatewayFixture(objectStore: peer.url(), configure: { $0.passphraseFile = passphrase })
        #expect(try await second.gateway.manager.recover(name: "phrased").encryption == "aes-256-gcm")
        let back = second.directory + "/back.img"
        #expect(try await Tool.run(["nbdcopy", second.uri("phrased"), back]).status == 0)
        #expect(try await Tool.run(["cmp", "-n", "\(16 << 20)", kept, back]).status == 0)
        await second.stop()
        await peer.stop()
    }

    /// Tapes take their pool's compression and encryption (`objects.pools`): the header of every
    /// chunk object of a tape in the encrypted pool names zstd and AES-256-GCM, and of a tape in
    /// the default pool neither.
    @Test func tapesTakeTheirPoolsFormat() async throws {
        let peer = try await S3Peer(.emulator)
        let key = try keyFile(in: NSTemporaryDirectory(), "pool")
        defer { try? FileManager.default.removeItem(atPath: key) }
        let fixture = try await GatewayFixture(
            objectStore: peer.url(),
            configure: {
                $0.keyFile = key
                $0.objectFormat = ObjectFormatChoice(compression: .off, cipher: .off)
                $0.poolFormats = ["vault": .init(compression: .zstd(level: 3), cipher: .aes256GCM)]
            })
        let library = fixture.gateway.library
        try await library.create(barcode: "VAULT001", size: 4 << 20, worm: false, pool: "vault")
        try await library.create(barcode: "PLAIN001", size: 4 << 20, worm: false)
        try await library.export(barcode: "VAULT001")
        try await library.export(barcode: "PLAIN001")
        let client = peer.client()
        var formats: [String: Set<[UInt8]>] = [:]
        for object in try await client.list(prefix: "volumes/") {
            let header = try await client.get(try ObjectKey(object.key), range: 0..<8)
            let volume = String(object.key.split(separator: "/")[1])
            formats[volume, default: []].insert(Array(header.readableBytesView.suffix(3).prefix(2)))
        }
        #expect(formats.count == 2)
        #expect(Set(formats.values) == [[[2, 1]], [[0, 0]]])
        await fixture.stop()
        await peer.stop()
    }
}
