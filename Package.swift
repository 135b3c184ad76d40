// swift-tools-version: 6.0
import PackageDescription

// Layers (imports point one way): randsnat → Netfilter → RandSNATCore → CNI.
// CNetfilter is the only C module; only Netfilter imports it.
let package = Package(
    name: "randsnat",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "randsnat", targets: ["randsnat"]),
    ],
    targets: [
        .target(name: "CNI"),
        .target(name: "RandSNATCore", dependencies: ["CNI"]),
        .systemLibrary(
            name: "CNetfilter",
            pkgConfig: "libiptc",
            providers: [.apt(["libiptc-dev", "libxtables-dev", "linux-libc-dev"])]
        ),
        .target(name: "Netfilter", dependencies: ["RandSNATCore", "CNetfilter"]),
        .executableTarget(name: "randsnat", dependencies: ["CNI", "RandSNATCore", "Netfilter"]),
        .testTarget(name: "CNITests", dependencies: ["CNI"]),
        .testTarget(name: "RandSNATCoreTests", dependencies: ["RandSNATCore", "CNI"]),
        .testTarget(name: "NetfilterTests", dependencies: ["Netfilter", "RandSNATCore"]),
    ]
)
