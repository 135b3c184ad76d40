// swift-tools-version: 6.0
import PackageDescription

// Layers (imports point one way): randsnat → Netfilter, Netlink → RandSNATCore → CNI.
// randsnat-agent → AgentCore (the reconcile loop, also behind `randsnat agent`), Metrics, Netfilter, Netlink → RandSNATCore; only the agent links SwiftNIO, so the
// per-pod binary (exec'd per pod, size and start-up measured) carries no HTTP server.
// The C modules hold headers only: CNetfilter (libiptc, and the kernel's netfilter headers nf_tables is
// written and read with) is imported by Netfilter, CNetlink by Netlink.
let package = Package(
    name: "randsnat",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "randsnat", targets: ["randsnat"]),
        .executable(name: "randsnat-agent", targets: ["randsnat-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
    ],
    targets: [
        .target(name: "CNI"),
        // The one place for file and descriptor system calls (errno by name, EINTR retried, atomic replace).
        .target(name: "SystemCalls"),
        .target(name: "RandSNATCore", dependencies: ["CNI"]),
        .systemLibrary(
            name: "CNetfilter",
            pkgConfig: "libiptc",
            providers: [.apt(["libiptc-dev", "libxtables-dev", "linux-libc-dev"])]
        ),
        .systemLibrary(name: "CNetlink"),
        .target(name: "Netlink", dependencies: ["RandSNATCore", "CNetlink", "SystemCalls"]),
        .target(name: "Netfilter", dependencies: ["RandSNATCore", "CNetfilter", "Netlink", "SystemCalls"]),
        .target(name: "Installer", dependencies: ["CNI", "RandSNATCore", "CNetlink", "SystemCalls"]),
        .target(name: "Metrics", dependencies: ["RandSNATCore"]),
        // The agent's reconcile loop, linked by both executables (no NIO: the per-pod binary links it).
        .target(name: "AgentCore", dependencies: ["RandSNATCore", "Netfilter", "Netlink", "Installer"]),
        .executableTarget(name: "randsnat", dependencies: ["CNI", "RandSNATCore", "Netfilter", "Netlink", "Installer", "AgentCore", "SystemCalls"]),
        .executableTarget(name: "randsnat-agent", dependencies: [
            "AgentCore", "Metrics", "Netfilter", "Netlink", "RandSNATCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .testTarget(name: "CNITests", dependencies: ["CNI"]),
        .testTarget(name: "RandSNATCoreTests", dependencies: ["RandSNATCore", "CNI"]),
        .testTarget(name: "NetfilterTests", dependencies: ["Netfilter", "Netlink", "RandSNATCore"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "CNetlink", "RandSNATCore"]),
        .testTarget(name: "InstallerTests", dependencies: ["Installer", "CNI"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "RandSNATCore"]),
        .testTarget(name: "SystemCallsTests", dependencies: ["SystemCalls"]),
        // The edge's error mapping (a table of typed errors and their CNI codes).
        .testTarget(name: "EdgeTests", dependencies: ["randsnat", "CNI", "RandSNATCore", "Netfilter"]),
    ]
)
