#!/usr/bin/env python3
"""Standalone ADD/DEL with the IPAM plugin run while the links are made (host-local: the overlap)
and after them (an IPAM plugin named `dhcp`, which needs the pod's link: here host-local's binary
under that name, so only the order differs), pod by pod in turn; optionally also another randsnat
binary (--before, e.g. main's) with host-local, to compare the overlap before and after a change.

A benchmark, not a test: it prints figures and asserts nothing. Uses bench.py's namespace helpers.

  bench_ipam_order.py [--runs 40] [--before PATH]
"""
import argparse, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def config(name, ipam_type, data_dir):
    return {"cniVersion": "1.0.0", "name": name, "type": "randsnat", "bridge": "br-" + name[-6:], "isGateway": True,
            "ipam": {"type": ipam_type, "dataDir": data_dir, "ranges": [[{"subnet": "198.18.0.0/16"}]]}}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--before", help="another randsnat binary to measure with host-local")
    args = parser.parse_args()
    plugins = tempfile.mkdtemp(prefix="rsbench-ipam-bin.")
    os.symlink("/usr/lib/cni/host-local", os.path.join(plugins, "dhcp"))
    env = {"CNI_PATH": plugins + ":" + bench.REFERENCE}
    data_dir = tempfile.mkdtemp(prefix="rsbench-ipam.")
    cases = [("host-local", bench.RANDSNAT, config("sb-overlap", "host-local", data_dir)),
             ("dhcp order", bench.RANDSNAT, config("sb-linkfst", "dhcp", data_dir))]
    if args.before:
        cases.append(("host-local, --before", args.before, config("sb-before", "host-local", data_dir)))
    samples = {label: ([], []) for label, _, _ in cases}
    bench.sh("ip", "netns", "add", bench.NS)
    try:
        bench.sh("ip", "netns", "exec", bench.NS, "ip", "link", "set", "lo", "up")
        for i in range(args.runs):
            for n, (label, path, conf) in enumerate(cases):
                name = "%s-o%d-%d" % (bench.NS, i, n)
                netns = bench.pod_netns(name)
                try:
                    samples[label][0].append(bench.run_plugin(path, "ADD", conf, "o-%d" % i, dict(env), netns))
                    samples[label][1].append(bench.run_plugin(path, "DEL", conf, "o-%d" % i, dict(env), netns))
                finally:
                    subprocess.run(["ip", "netns", "del", name])
    finally:
        subprocess.run(["ip", "netns", "del", bench.NS])
    print("machine: %s cores, kernel %s; %d pods per case, in turn" % (os.cpu_count(), os.uname().release, args.runs))
    print("%-22s | %12s %12s | %12s" % ("IPAM", "ADD median", "ADD p99", "DEL median"))
    for label, (adds, dels) in samples.items():
        (am, ap), (dm, _) = bench.stats(adds), bench.stats(dels)
        print("%-22s | %9.2f ms %9.2f ms | %9.2f ms" % (label, am, ap, dm))


if __name__ == "__main__":
    main()
