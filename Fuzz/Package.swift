// swift-tools-version:6.1
// The fuzz targets, kept out of the main package: they are built with -sanitize=fuzzer, where
// libFuzzer supplies main. `make fuzz` builds and runs them.
import PackageDescription

let package = Package(
    name: "blockgate-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "blockgate", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // Bytes from a client, as the server's connection handler sees them in negotiation and
        // transmission, against an in-memory export.
        .executableTarget(
            name: "NBDWireFuzzer",
            dependencies: [
                .product(name: "NBDServer", package: "blockgate"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    ]
)
