#!/usr/bin/env python3
"""The nftables backend's per-pod cost, in one run, on a node whose nat rules live in nf_tables: with an
empty ruleset and with N kube-proxy-like rules loaded by `iptables-nft-restore --noflush`:

  randsnat-nft   chained randsnat, "backend": "nftables"
  randsnat-ipt   chained randsnat, "backend": "iptables" (its legacy table stays empty here)
  portmap-nft    the reference portmap (Debian 12's 1.1.1 has no nftables backend: forced to iptables-nft)
  sa-nft         standalone randsnat, "backend": "nftables"
  bridge-nft     the reference bridge with ipMasq, forced to iptables-nft

A benchmark, not a test: it prints medians, p99 and ratios and asserts nothing. Everything happens in
network namespaces it makes and removes.

  bench_nft.py [--rules 20000] [--runs 50] [--reference-runs 10] [--standalone-runs 20]

Standalone randsnat and the bridge run pod by pod in turn (--standalone-runs pairs on the empty
ruleset, --reference-runs pairs at N rules).

It ends with chained randsnat on the two backends in turn, pod by pod (--in-turn-runs each, two networks
in one namespace, each with a resident pod): ADD and DEL medians and the nftables/iptables DEL ratio,
the figure of issue 14's target (<= 1.5). --in-turn-only measures just that.
"""
import argparse, os, shutil, statistics, subprocess, tempfile

import bench
from bench import NS, RANDSNAT, REFERENCE, sh


def with_backend(make, backend):
    def config(index):
        c = make(index)
        c["backend"] = backend
        return c
    return config


def backends_in_turn(runs):
    """Chained randsnat ADD then DEL, nftables and iptables backends in turn, pod by pod, in the one
    namespace NS (a network per backend, each with a resident pod so its rules stay): the machine's
    drift falls on both alike. Returns {backend: (ADD samples, DEL samples)} in ms."""
    def config(backend, index):
        c = bench.randsnat_config(index)
        c["name"], c["backend"] = "bench-" + backend[:3], backend
        return c
    backends = ("nftables", "iptables")
    samples = {backend: ([], []) for backend in backends}
    for backend in backends:
        bench.run_plugin(RANDSNAT, "ADD", config(backend, 1), "turn-resident-" + backend)
    try:
        for i in range(runs):
            for offset, backend in enumerate(backends):
                index = 3000 + 2 * i + offset
                samples[backend][0].append(bench.run_plugin(RANDSNAT, "ADD", config(backend, index), "turn-%d" % index))
                samples[backend][1].append(bench.run_plugin(RANDSNAT, "DEL", config(backend, index), "turn-%d" % index))
    finally:
        for backend in backends:
            bench.run_plugin(RANDSNAT, "DEL", config(backend, 1), "turn-resident-" + backend)
    return samples


def print_in_turn(samples, runs):
    print("randsnat chained, the two backends in turn, pod by pod, x%d each:" % runs)
    for backend, (adds, dels) in samples.items():
        (am, ap), (dm, dp) = bench.stats(adds), bench.stats(dels)
        print("  %-8s ADD median %6.2f ms p99 %6.2f ms | DEL median %6.2f ms p99 %6.2f ms" % (backend, am, ap, dm, dp))
    nft, ipt = (statistics.median(samples[b][1]) for b in ("nftables", "iptables"))
    print("  DEL nftables / iptables: %.3f (target <= 1.5)" % (nft / ipt))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--reference-runs", type=int, default=10)
    parser.add_argument("--standalone-runs", type=int, default=20)
    parser.add_argument("--in-turn-runs", type=int, default=50)
    parser.add_argument("--in-turn-only", action="store_true")
    args = parser.parse_args()
    if args.in_turn_only:
        sh("ip", "netns", "add", NS)
        sh("ip", "netns", "add", bench.SANDBOX.rsplit("/", 1)[1])
        try:
            sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
            samples = backends_in_turn(args.in_turn_runs)
        finally:
            for name in os.listdir("/var/run/netns"):
                if name.startswith(NS):
                    subprocess.run(["ip", "netns", "del", name])
            shutil.rmtree(bench.RUN_DIR, ignore_errors=True)
        print_in_turn(samples, args.in_turn_runs)
        return
    nft_bin, nft_env = bench.forced_iptables("nft")
    sh("ip", "netns", "add", NS)
    sh("ip", "netns", "add", bench.SANDBOX.rsplit("/", 1)[1])
    data_dir = tempfile.mkdtemp(prefix="rsbench-ipam.")
    results = {}
    try:
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        for size in (0, args.rules):
            if size:
                print("loading %d kube-proxy-like rules with iptables-nft-restore --noflush ..." % size, flush=True)
                subprocess.run(["ip", "netns", "exec", NS, "iptables-nft-restore", "--noflush"],
                               input=bench.kube_proxy_rules(size).encode(), check=True)
            count = sh("ip", "netns", "exec", NS, "nft", "list", "ruleset").decode().count("\n\t\t") if size else 0
            print("nf_tables ruleset lines: %d" % count, flush=True)
            for label, backend in (("randsnat-nft", "nftables"), ("randsnat-ipt", "iptables")):
                make = with_backend(bench.randsnat_config, backend)
                bench.run_plugin(RANDSNAT, "ADD", make(1), "resident")
                print("%s ADD/DEL x%d at %d rules ..." % (label, args.runs, size), flush=True)
                results[(label, size)] = bench.measure(RANDSNAT, make, args.runs, {})
                bench.run_plugin(RANDSNAT, "DEL", make(1), "resident")
            print("portmap (iptables-nft) ADD/DEL x%d at %d rules ..." % (args.reference_runs, size), flush=True)
            results[("portmap-nft", size)] = bench.measure(os.path.join(REFERENCE, "portmap"), bench.portmap_config, args.reference_runs, nft_env)
            resident_ns = bench.pod_netns(NS + "-res")
            sa = bench.standalone_config("randsnat", data_dir)
            sa["backend"] = "nftables"
            bench.run_plugin(RANDSNAT, "ADD", sa, "sb-resident", {}, resident_ns)
            pairs = args.standalone_runs if size == 0 else args.reference_runs
            print("standalone randsnat (nftables) and bridge (ipMasq, iptables-nft), ADD/DEL x%d each, in turn, at %d rules ..."
                  % (pairs, size), flush=True)
            both = bench.measure_interleaved([("randsnat", sa, {}), ("bridge", bench.standalone_config("bridge", data_dir), nft_env)], pairs)
            results[("sa-nft", size)], results[("bridge-nft", size)] = both["randsnat"], both["bridge"]
            bench.run_plugin(RANDSNAT, "DEL", sa, "sb-resident", {}, resident_ns)
            subprocess.run(["ip", "netns", "del", NS + "-res"])
        print("randsnat-nft ADD+DEL in an empty and a %d-rule namespace in turn, x%d ..." % (args.rules, args.runs), flush=True)
        flat = bench.flatness(with_backend(bench.randsnat_config, "nftables"), "iptables-nft-restore", args.rules, args.runs)
        print("randsnat ADD/DEL, nftables and iptables backends in turn, x%d each (at %d rules) ..." % (args.in_turn_runs, args.rules), flush=True)
        in_turn = backends_in_turn(args.in_turn_runs)
    finally:
        for name in os.listdir("/var/run/netns"):
            if name.startswith(NS):
                subprocess.run(["ip", "netns", "del", name])
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(nft_bin, ignore_errors=True)
        shutil.rmtree(bench.RUN_DIR, ignore_errors=True)

    print()
    labels = ("randsnat-nft", "randsnat-ipt", "portmap-nft", "sa-nft", "bridge-nft")
    total = bench.print_table(results, labels, (0, args.rules))
    print()
    print("ratios (ADD+DEL medians):")
    for size in (0, args.rules):
        print("  at %6d rules: randsnat-nft / randsnat-ipt %.3f, randsnat-nft / portmap-nft %.3f, sa-nft / bridge-nft %.3f"
              % (size, total("randsnat-nft", size) / total("randsnat-ipt", size), total("randsnat-nft", size) / total("portmap-nft", size),
                 total("sa-nft", size) / total("bridge-nft", size)))
    for label in labels:
        print("  %-13s at %d rules / at 0 rules: %.3f" % (label, args.rules, total(label, args.rules) / total(label, 0)))
    print("  randsnat-nft, the two namespaces in turn: %.2f ms empty, %.2f ms at %d rules: %.3f" % (flat[0], flat[1], args.rules, flat[1] / flat[0]))
    print()
    print_in_turn(in_turn, args.in_turn_runs)


if __name__ == "__main__":
    main()
