internal import Glibc
import Netfilter
import Netlink
import RandSNATCore

/// `randsnat doctor`: reads a node's SNAT state and says whether it is healthy.
enum Doctor {
    static let usage = """
        usage: randsnat doctor [--netns PATH] [--interval SECONDS] [--json | --prometheus] [--cni-cache DIR]
          --netns PATH      inspect that network namespace instead of this one
          --interval S      watch the conntrack counters for S seconds (default 1; 0: totals only)
          --json            machine-readable output; --prometheus: node_exporter textfile format
          --cni-cache DIR   libcni's result cache, to tell live pods and find their namespaces (default \(LibcniCache.defaultDirectory))
        exit status: 0 healthy, 1 warning, 2 problem, 3 usage or could not inspect
        """

    static func run(_ arguments: [String]) -> Int32 {
        var netns: String?
        var interval = 1.0
        var format = "human"
        var cache = LibcniCache.defaultDirectory
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let value: String? = index + 1 < arguments.count ? arguments[index + 1] : nil
            switch argument {
            case "--netns": guard let value else { return fail() }; netns = value; index += 1
            case "--interval": guard let value, let seconds = Double(value), seconds >= 0, seconds <= 3600 else { return fail() }
                interval = seconds; index += 1
            case "--cni-cache": guard let value else { return fail() }; cache = value; index += 1
            case "--json": format = "json"
            case "--prometheus": format = "prometheus"
            default: return fail()
            }
            index += 1
        }
        do {
            if let netns { try NetworkNamespace.enterForGood(netns) }
            let runDirectory = ProcessEnvironment.read()["RANDSNAT_RUN_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/run/randsnat"
            let inspector = try NodeInspector(cniCache: cache, records: RecordFiles(runDirectory: runDirectory))
            let earlier = interval > 0 ? inspector.counters() : nil
            if interval > 0 { usleep(UInt32(interval * 1_000_000)) }
            let diagnosis = Diagnosis(facts: inspector.gather(), earlier: earlier, intervalSeconds: interval)
            let text: String = switch format {
            case "json": String(decoding: diagnosis.json().pretty(), as: UTF8.self)
            case "prometheus": diagnosis.prometheus()
            default: diagnosis.human()
            }
            ProcessEnvironment.write(text, to: 1)
            return Int32(diagnosis.severity.rawValue)
        } catch {
            ProcessEnvironment.write("randsnat doctor: \(error)\n", to: 2)
            return 3
        }
    }

    static func fail() -> Int32 {
        ProcessEnvironment.write(usage + "\n", to: 2)
        return 3
    }
}
