import Netfilter
import PluginMain

// randsnat-dump-cleanup: the per-pod binary (the same edge, PluginMain) with DEL forgetting a pod's
// flows on the path of kernels whose ctnetlink cannot flush with a filter (list, then delete one by
// one), for the integration test del_forgets_the_pods_flows_by_dump_and_delete. A test target's
// executable: built with the others (`swift build`), no product; the binaries that ship have no switch.
PluginMain.run(flowCleanup: .dumpAndDelete)
