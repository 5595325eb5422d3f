// swift-tools-version:6.1
import PackageDescription

let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let metrics: Target.Dependency = .product(name: "Metrics", package: "swift-metrics")

let package = Package(
    name: "blockgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "blockgate", targets: ["blockgate"]),
        // For the fuzzing package in Fuzz/.
        .library(name: "NBDServer", targets: ["NBDServer", "NBDProtocol", "BlockDevice"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // C libraries from Debian.
        .systemLibrary(name: "CURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CISAL", pkgConfig: "libisal", providers: [.apt(["libisal-dev"])]),
        .systemLibrary(
            name: "CNBD", path: "Tests/CNBD", pkgConfig: "libnbd", providers: [.apt(["libnbd-dev"])]),

        // Wire protocol: pure codecs, no I/O.
        .target(name: "NBDProtocol", dependencies: [nioCore]),
        // The remote magnetic tape protocol (rmt): requests, replies, tape status; pure codecs.
        .target(name: "RemoteTape", dependencies: [nioCore]),
        // What goes into the object store: checksums, compression, encryption; pure codecs, no I/O.
        .target(
            name: "Codecs",
            dependencies: [
                "CZstd", "CLZ4", "CISAL", nioCore, .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        // The one seam between protocol and storage.
        .target(name: "BlockDevice", dependencies: [nioCore]),
        // File I/O on local disk: io_uring, with a pread/pwrite fallback.
        .target(name: "LocalIO", dependencies: ["CURing", nioCore, nioPosix, logging]),
        // Object stores: the embedded file store and an S3 client (SigV4 over HTTP/1.1).
        .target(
            name: "ObjectStore",
            dependencies: [
                "Codecs", "LocalIO", nioCore, nioPosix, logging, metrics, nioHTTP1,
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // The S3 emulator: the subset the gateway uses, with SigV4 checks and fault injection.
        .target(
            name: "ObjectStoreEmulator",
            dependencies: ["ObjectStore", nioCore, nioPosix, logging, nioHTTP1]),
        // SQLite schema and queries.
        .target(name: "Metadata", dependencies: ["CSQLite"]),
        // Chunk map, bitmaps, thin volumes.
        .target(
            name: "ChunkEngine",
            dependencies: [
                "BlockDevice", "Codecs", "LocalIO", "Metadata", "ObjectStore", nioCore, nioPosix, logging, metrics,
            ]),
        // Tape container format and tapes on any block device (cached volumes in the gateway).
        .target(name: "TapeLibrary", dependencies: ["BlockDevice", "Codecs", "Metadata", nioCore, logging]),
        // SwiftNIO server: negotiation and transmission.
        .target(name: "NBDServer", dependencies: ["NBDProtocol", "BlockDevice", nioCore, nioPosix, logging, metrics]),
        // Composition root: config, exports, admin API.
        .target(
            name: "Gateway",
            dependencies: [
                "NBDServer", "ChunkEngine", "Codecs", "TapeLibrary", "RemoteTape", "Metadata", "LocalIO", "BlockDevice",
                "ObjectStore",
                nioCore,
                nioPosix, metrics, .product(name: "Prometheus", package: "swift-prometheus"),
                nioHTTP1, .product(name: "NIOSSL", package: "swift-nio-ssl"),
                logging, .product(name: "Yams", package: "Yams"),
            ]),
        .executableTarget(
            name: "blockgate",
            dependencies: [
                "Gateway", "ChunkEngine", "TapeLibrary", "NBDServer", "ObjectStore", "ObjectStoreEmulator", nioCore,
                nioPosix,
                .product(name: "ArgumentParser", package: "swift-argument-parser"), logging,
            ]
        ),

        // A blocking NBD client for tests, speaking what Debian's clients do not (extended headers).
        .target(name: "NBDTestSupport", dependencies: ["NBDProtocol", nioCore], path: "Tests/NBDTestSupport"),

        // Real peers for tests: moto_server, free loopback ports.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // A volume with real SQLite and file I/O in a scratch directory, for engine and tape tests.
        .target(
            name: "VolumeTestSupport",
            dependencies: [
                "ChunkEngine", "Codecs", "LocalIO", "Metadata", "ObjectStore", "CSQLite", nioCore, nioPosix, logging,
            ],
            path: "Tests/VolumeTestSupport"),

        .testTarget(name: "NBDProtocolTests", dependencies: ["NBDProtocol", nioCore]),
        .testTarget(name: "CodecsTests", dependencies: ["Codecs", nioCore]),
        .testTarget(name: "RemoteTapeTests", dependencies: ["RemoteTape", nioCore]),
        .testTarget(name: "LocalIOTests", dependencies: ["LocalIO", nioCore, nioPosix]),
        .testTarget(name: "MetadataTests", dependencies: ["Metadata", "CSQLite"]),
        .testTarget(
            name: "ChunkEngineTests",
            dependencies: [
                "ChunkEngine", "Codecs", "VolumeTestSupport", "TestSupport", "LocalIO", "Metadata", "ObjectStore",
                nioCore, nioPosix,
            ]),
        .testTarget(
            name: "TapeLibraryTests",
            dependencies: [
                "TapeLibrary", "VolumeTestSupport", "ChunkEngine", "Metadata", "BlockDevice", nioCore, logging,
            ]),
        .testTarget(
            name: "NBDServerTests",
            dependencies: ["NBDServer", "NBDProtocol", "BlockDevice", "NBDTestSupport", nioCore, nioPosix, logging]),
        .testTarget(name: "GatewayTests", dependencies: ["Gateway", "Codecs", "LocalIO", "NBDServer", "TapeLibrary"]),
        .testTarget(
            name: "ObjectStoreTests",
            dependencies: ["ObjectStore", "ObjectStoreEmulator", "TestSupport", nioCore, nioPosix, nioHTTP1, logging]),
        // Real clients (libnbd, nbdinfo, nbdcopy, qemu-img, qemu-io) against a real gateway.
        .testTarget(
            name: "InteropTests",
            dependencies: [
                "Gateway", "Codecs", "NBDProtocol", "NBDTestSupport", "TestSupport", "CNBD", "LocalIO", "ObjectStore",
                "ObjectStoreEmulator", "ChunkEngine", "TapeLibrary", "NBDServer", nioCore, nioPosix, logging,
            ]),
    ]
)
