// swift-tools-version: 6.0
import PackageDescription

// Layers (imports point one way; Sources/README.md, "Layers and where the code is"):
//   randsnat (one line) → PluginMain (the edge: env, stdin, exit codes; ErrorMapping chooses every CNI code)
//     → AgentCore, Installer → Netfilter, Netlink → RandSNATCore → CNI; the lower half also → SystemCalls.
//   randsnat-agent → AgentCore, Metrics, Netfilter, Netlink → RandSNATCore; only the agent links SwiftNIO,
//   so the per-pod binary (exec'd per pod, size and start-up measured) carries no HTTP server.
// The pure half (CNI, RandSNATCore, Metrics) makes no system call. The lower half is one adapter per
// library or protocol: SystemCalls (files, descriptors, errno, clocks), Netlink (the one netlink transport
// and message model), Netfilter (xtables codec + libiptc, ipset, ctnetlink, nf_tables by its own codec).
// The C modules hold headers only, each imported `internal` (no C type in a public signature):
// CNetfilter (libiptc) by IPTCTable alone; CNetfilterUAPI (the kernel's netfilter headers) by the
// xtables codec and snapshot and one protocol-numbers file each for ipset, ctnetlink and nf_tables;
// CNetlink by Netlink and Installer; Glibc internal everywhere. No libnftnl, no libmnl.
// The per-pod binary is exec'd on every pod start: linked by lld with packed relative relocations
// (DT_RELR, glibc 2.36+), the dynamic loader has ~21,000 fewer relocation entries to apply. Measured
// on this 2-core EPYC (kernel 6.18), VERSION exec in turn: 9 % faster, 0.5 MB smaller (Tests/README.md, "VERSION exec and binary size").
let perPodLinking: [LinkerSetting] = [.unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"])]

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
        // The kernel's netfilter UAPI headers only (no library): xtables structs, ipset, ctnetlink, nf_tables.
        .systemLibrary(name: "CNetfilterUAPI"),
        .systemLibrary(name: "CNetlink"),
        .target(name: "Netlink", dependencies: ["RandSNATCore", "CNetlink", "SystemCalls"]),
        .target(name: "Netfilter", dependencies: ["RandSNATCore", "CNetfilter", "CNetfilterUAPI", "Netlink", "SystemCalls"]),
        .target(name: "Installer", dependencies: ["CNI", "RandSNATCore", "CNetlink", "SystemCalls"]),
        .target(name: "Metrics", dependencies: ["RandSNATCore"]),
        // The agent's reconcile loop, linked by both executables (no NIO: the per-pod binary links it).
        .target(name: "AgentCore", dependencies: ["RandSNATCore", "Netfilter", "Netlink", "Installer", "SystemCalls"]),
        // The per-pod binary's edge (env and stdin in, result out, the one error-to-code mapping), a library so
        // that a test executable runs the same edge with one seam set.
        .target(name: "PluginMain", dependencies: ["CNI", "RandSNATCore", "Netfilter", "Netlink", "Installer", "AgentCore", "SystemCalls"]),
        .executableTarget(name: "randsnat", dependencies: ["PluginMain"], linkerSettings: perPodLinking),
        .executableTarget(name: "randsnat-agent", dependencies: [
            "AgentCore", "Metrics", "Netfilter", "Netlink", "RandSNATCore", "SystemCalls",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // The agent that kills itself mid-move, for one integration test (Tests/AgentFault/main.swift):
        // built with the rest, not a product; the shipped binaries read no fault switch.
        .executableTarget(name: "randsnat-agent-fault", dependencies: ["AgentCore"], path: "Tests/AgentFault"),
        // The per-pod binary with DEL's conntrack cleanup on the path of kernels without filtered flushes, for
        // the integration test del_forgets_the_pods_flows_by_dump_and_delete (Tests/DumpCleanup/main.swift).
        .executableTarget(name: "randsnat-dump-cleanup", dependencies: ["PluginMain", "Netfilter"], path: "Tests/DumpCleanup",
                          linkerSettings: perPodLinking),
        .testTarget(name: "CNITests", dependencies: ["CNI"]),
        .testTarget(name: "RandSNATCoreTests", dependencies: ["RandSNATCore", "CNI"]),
        .testTarget(name: "NetfilterTests", dependencies: ["Netfilter", "Netlink", "RandSNATCore", "SystemCalls"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "CNetlink", "RandSNATCore"]),
        .testTarget(name: "InstallerTests", dependencies: ["Installer", "CNI"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "RandSNATCore"]),
        .testTarget(name: "SystemCallsTests", dependencies: ["SystemCalls"]),
        // The edge's error mapping (a table of typed errors and their CNI codes).
        .testTarget(name: "EdgeTests", dependencies: ["PluginMain", "AgentCore", "CNI", "RandSNATCore", "Netfilter", "Netlink", "SystemCalls"]),
    ]
)
