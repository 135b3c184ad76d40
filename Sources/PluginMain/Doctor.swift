internal import Glibc
import Netfilter
import Netlink
import RandSNATCore

/// `randsnat doctor`: reads a node's SNAT state and says whether it is healthy.
enum Doctor {
    static let usage = """
        usage: randsnat doctor [--netns PATH] [--interval SECONDS] [--json | --prometheus] [--cni-cache DIR]
               randsnat doctor --help

        Reads a node's SNAT state (conntrack counters, every SNAT rule, rules before randsnat's, port
        pressure, randsnat's networks and pods, TCP timestamps) and says whether it is healthy.

        options:
          --netns PATH      inspect that network namespace instead of this one
          --interval S      watch the conntrack counters for S seconds, 0 to 3600 (default 1; 0: totals only)
          --json            machine-readable output; --prometheus: node_exporter textfile format
          --cni-cache DIR   libcni's result cache, to tell live pods and find their namespaces (default \(LibcniCache.defaultDirectory))
          -h, --help        this text

        exit status: 0 healthy, 1 warning, 2 problem or usage error, 3 could not inspect
        (a usage error is 2, as for every randsnat command: a check called with a wrong flag alerts)
        """

    static let optionForms = ["--netns PATH", "--interval SECONDS", "--json", "--prometheus", "--cni-cache DIR", "--help"]

    static func run(_ arguments: [String]) -> Int32 {
        if UsageError.asksForHelp(arguments) {
            ProcessEnvironment.write(usage + "\n", to: 1)
            return 0
        }
        var netns: String?
        var interval = 1.0
        var format = "human"
        var cache = LibcniCache.defaultDirectory
        var index = 0
        do throws(UsageError) {
            while index < arguments.count {
                let argument = arguments[index]
                func value(_ form: String) throws(UsageError) -> String {
                    index += 1
                    guard index < arguments.count else { throw .missingValue(argument, form: form) }
                    return arguments[index]
                }
                switch argument {
                case "--netns": netns = try value("--netns PATH")
                case "--interval":
                    let text = try value("--interval SECONDS")
                    guard let seconds = Double(text), seconds >= 0, seconds <= 3600 else {
                        throw .badValue(argument, text, expected: "SECONDS, a number from 0 to 3600")
                    }
                    interval = seconds
                case "--cni-cache": cache = try value("--cni-cache DIR")
                case "--json": format = "json"
                case "--prometheus": format = "prometheus"
                default: throw .unknown(argument, accepted: optionForms)
                }
                index += 1
            }
        } catch {
            ProcessEnvironment.write(error.message(command: "randsnat doctor"), to: 2)
            return 2
        }
        do {
            if let netns { try NetworkNamespace.enterForGood(netns) }
            let runDirectory = RunDirectory.path(in: ProcessEnvironment.read())
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
}
