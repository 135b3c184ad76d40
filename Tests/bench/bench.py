#!/usr/bin/env python3
"""Per-pod cost of randsnat against the reference plugins (Debian containernetworking-plugins, forced to
iptables-legacy), with an empty nat table and with N kube-proxy-like rules, in one run:
chained randsnat against `portmap`, standalone randsnat against `bridge` with `ipMasq: true` (both
with host-local IPAM), and 100 pods added, then deleted, concurrently by each of the latter two.

A benchmark, not a test: it prints figures and ratios and asserts nothing. Everything happens in a
network namespace it makes and removes (also on Ctrl-C or failure).

  bench.py [--rules 20000] [--runs 50] [--portmap-runs 20] [--standalone-runs 30] [--bridge-runs 15] [--concurrent 100]
  bench.py --drain 100 [--drain-rounds 6]     a node drain: 100 pods' DELs at once, iptables and nftables in turn

Standalone randsnat and the reference bridge run pod by pod in turn: --standalone-runs pairs on the
empty table, --bridge-runs pairs at N rules.
"""
import argparse, json, os, resource, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RANDSNAT = os.environ.get("RANDSNAT_BIN", os.path.join(ROOT, ".build/release/randsnat"))
AGENT = os.environ.get("RANDSNAT_AGENT_BIN", os.path.join(os.path.dirname(RANDSNAT), "randsnat-agent"))
REFERENCE = "/usr/lib/cni"
NS = "rsbench%04x" % (os.getpid() % 65536)
RUN_DIR = tempfile.mkdtemp(prefix="rsbench-run.")  # randsnat's lock files, not the host's /run/randsnat
# The pods' namespace of the chained runs (CNI_NETNS and the sandbox in prevResult): randsnat
# refuses the namespace it runs in as CNI_NETNS, as libcni's skel does.
SANDBOX = "/var/run/netns/" + NS + "-pod"


def sh(*args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw).stdout


def kube_proxy_rules(count):
    """iptables-restore input shaped like kube-proxy's: per service a KUBE-SERVICES rule, a KUBE-SVC
    chain splitting over two endpoints, two KUBE-SEP chains (mark + DNAT): 7 rules per service."""
    services = max(1, count // 7)
    lines = ["*nat", ":KUBE-SERVICES - [0:0]", ":KUBE-POSTROUTING - [0:0]", ":KUBE-MARK-MASQ - [0:0]"]
    body = ["-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
            "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
            "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
            "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
            "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"]
    for s in range(services):
        svc, a, b = "KUBE-SVC-%012X" % s, "KUBE-SEP-%012XA" % s, "KUBE-SEP-%012XB" % s
        lines += [":%s - [0:0]" % c for c in (svc, a, b)]
        ip = "10.96.%d.%d" % (s // 250, s % 250 + 1)
        body.append("-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"ns%d/svc%d:http cluster IP\" -m tcp --dport 80 -j %s" % (ip, s, s, svc))
        body.append("-A %s -m comment --comment \"ns%d/svc%d:http\" -m statistic --mode random --probability 0.50000000000 -j %s" % (svc, s, s, a))
        body.append("-A %s -m comment --comment \"ns%d/svc%d:http\" -j %s" % (svc, s, s, b))
        for sep, last in ((a, 1), (b, 2)):
            pod = "10.244.%d.%d" % (s // 120, (s % 120) * 2 + last)
            body.append("-A %s -s %s/32 -m comment --comment \"ns%d/svc%d:http\" -j KUBE-MARK-MASQ" % (sep, pod, s, s))
            body.append("-A %s -p tcp -m comment --comment \"ns%d/svc%d:http\" -m tcp -j DNAT --to-destination %s:8080" % (sep, s, s, pod))
    return "\n".join(lines + body + ["COMMIT", ""])


def forced_iptables(variant):
    """A directory of `iptables*` links to iptables-VARIANT (legacy or nft), and the env putting it first
    on PATH: the reference plugins exec `iptables`, and this picks which one they get."""
    directory = tempfile.mkdtemp(prefix="rsbench-%s-bin." % variant)
    for name in ("iptables", "ip6tables", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"):
        os.symlink("/usr/sbin/" + name.replace("tables", "tables-" + variant, 1), os.path.join(directory, name))
    return directory, {"PATH": directory + ":" + os.environ["PATH"]}


def plugin_env(verb, container, netns, env_extra):
    env = {"PATH": os.environ["PATH"], "RANDSNAT_RUN_DIR": RUN_DIR, "CNI_COMMAND": verb, "CNI_CONTAINERID": container,
           "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": REFERENCE}
    env.update(env_extra or {})
    return env


def run_plugin(path, verb, config, container, env_extra=None, netns=None):
    env = plugin_env(verb, container, netns or SANDBOX, env_extra)
    start = time.perf_counter()
    done = subprocess.run(["nsenter", "--net=/var/run/netns/" + NS, path],
                          input=json.dumps(config).encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError("%s %s failed: %s %s" % (os.path.basename(path), verb, done.stdout.decode()[:300], done.stderr.decode()[:300]))
    return elapsed


def prev_result(index):
    return {"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": SANDBOX}],
            "ips": [{"address": "198.18.%d.%d/16" % (index // 250, index % 250 + 2), "interface": 0}]}


def randsnat_config(index):
    return {"cniVersion": "1.0.0", "name": "bench", "type": "randsnat",
            "nonMasqueradeCIDRs": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"], "prevResult": prev_result(index)}


def portmap_config(index):
    return {"cniVersion": "1.0.0", "name": "bench", "type": "portmap", "capabilities": {"portMappings": True},
            "runtimeConfig": {"portMappings": [{"hostPort": 30000 + index, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": prev_result(index)}


def standalone_config(plugin, data_dir):
    config = {"cniVersion": "1.0.0", "name": "sb-" + plugin, "type": plugin, "bridge": "br-" + plugin[:8], "isGateway": True,
              "ipMasq": True, "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": "198.18.0.0/16"}]]}}
    return config


def pod_netns(name):
    sh("ip", "netns", "add", name)
    return "/var/run/netns/" + name


def measure_standalone(plugin, runs, data_dir, env_extra):
    """ADD then DEL of `runs` pods, one at a time; each pod gets a fresh netns (made outside the timing)."""
    return measure_interleaved([(plugin, standalone_config(plugin, data_dir), env_extra)], runs)[plugin]


def measure_interleaved(plugins, runs):
    """Like measure_standalone for several (plugin, config, env) in turn, pod by pod (randsnat, bridge,
    randsnat, ...), so that the machine's drift during the run (the kernel's veth teardown varies with
    the namespace clean-up still going on) falls on all of them alike."""
    samples = {plugin: ([], []) for plugin, _, _ in plugins}
    for i in range(runs):
        for plugin, config, env_extra in plugins:
            path = RANDSNAT if plugin == "randsnat" else os.path.join(REFERENCE, plugin)
            name = "%s-s%d%s" % (NS, i, plugin[0])
            netns = pod_netns(name)
            try:
                samples[plugin][0].append(run_plugin(path, "ADD", config, "sb-%d" % i, dict(env_extra), netns))
                samples[plugin][1].append(run_plugin(path, "DEL", config, "sb-%d" % i, dict(env_extra), netns))
            finally:
                subprocess.run(["ip", "netns", "del", name])
    return {plugin: (stats(adds), stats(dels)) for plugin, (adds, dels) in samples.items()}


def concurrent(plugin, count, data_dir, env_extra):
    """`count` ADDs at once, then `count` DELs at once: wall times, failures, what is left."""
    path = RANDSNAT if plugin == "randsnat" else os.path.join(REFERENCE, plugin)
    config = json.dumps(standalone_config(plugin, data_dir)).encode()
    names = ["%s-c%d" % (NS, i) for i in range(count)]
    for name in names:
        pod_netns(name)
    result = {}
    try:
        for verb in ("ADD", "DEL"):
            start = time.perf_counter()
            procs = [subprocess.Popen(["nsenter", "--net=/var/run/netns/" + NS, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=plugin_env(verb, "cc-%d" % i, "/var/run/netns/" + name, dict(env_extra)))
                     for i, name in enumerate(names)]
            for proc in procs:
                proc.stdin.write(config)
                proc.stdin.close()
            failures = sum(1 for proc in procs if proc.wait(timeout=300) != 0)
            result[verb] = ((time.perf_counter() - start) * 1000, failures)
        links = sh("ip", "netns", "exec", NS, "ip", "-o", "link", "show", "type", "veth").decode().count("\n")
        nat = sh("ip", "netns", "exec", NS, "iptables-legacy-save", "-t", "nat").decode()
        chains = sum(1 for line in nat.split("\n") if line.startswith(":CNI-") or line.startswith(":RANDSNAT-"))
        sets = sh("ip", "netns", "exec", NS, "ipset", "list", "-n").decode().split()
        leases = [f for f in os.listdir(os.path.join(data_dir, "sb-" + plugin)) if f[0].isdigit()] \
            if os.path.isdir(os.path.join(data_dir, "sb-" + plugin)) else []
        result["left"] = "%d veths, %d chains, %d sets, %d leases" % (links, chains, len(sets), len(leases))
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
    return result


def flatness(make_config, restore, rules, runs):
    """randsnat ADD+DEL (medians) in two namespaces in turn, pod by pod: one whose nat table is empty
    and one with `rules` kube-proxy-like rules loaded by `restore` (iptables-legacy-restore or
    iptables-nft-restore). Taken in turn, the machine's drift falls on both alike; returns both."""
    names = (NS + "-flat0", NS + "-flatN")
    for name in names:
        sh("ip", "netns", "add", name)
    samples = {name: [] for name in names}
    try:
        subprocess.run(["ip", "netns", "exec", names[1], restore, "--noflush"], input=kube_proxy_rules(rules).encode(), check=True)

        def run(name, verb, index):
            config = make_config(index)
            env = plugin_env(verb, "flat-%d" % index, SANDBOX, {"RANDSNAT_RUN_DIR": RUN_DIR + "/" + name})
            start = time.perf_counter()
            done = subprocess.run(["nsenter", "--net=/var/run/netns/" + name, RANDSNAT], input=json.dumps(config).encode(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            if done.returncode != 0:
                raise RuntimeError("randsnat %s failed: %s" % (verb, done.stdout.decode()[:300]))
            return (time.perf_counter() - start) * 1000
        for name in names:
            run(name, "ADD", 1)  # the resident pod: the network's rules stay in place
        for i in range(runs):
            for name in names:
                samples[name].append(run(name, "ADD", 2000 + i) + run(name, "DEL", 2000 + i))
        for name in names:
            run(name, "DEL", 1)
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name])
    return statistics.median(samples[names[0]]), statistics.median(samples[names[1]])


def residents(counts, runs, backend=None):
    """Chained randsnat ADD and DEL (medians, ms) of one pod while `count` pods of the same network are
    resident, for each count, in a namespace of its own per count, taken in turn pod by pod. The
    per-pod path must not grow with the pods already there."""
    names = {count: "%s-res%d" % (NS, count) for count in counts}
    samples = {count: ([], [], [], []) for count in counts}

    def config(name, index):
        conf = randsnat_config(index)
        if backend:
            conf["backend"] = backend
        conf["prevResult"]["interfaces"][0]["sandbox"] = "/var/run/netns/" + name + "-pod"
        return conf

    def run(name, verb, index):
        # CNI_NETNS is a pod's namespace beside the node's (randsnat refuses its own as CNI_NETNS).
        env = plugin_env(verb, "res-%d" % index, "/var/run/netns/" + name + "-pod", {"RANDSNAT_RUN_DIR": RUN_DIR + "/" + name})
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(["nsenter", "--net=/var/run/netns/" + name, RANDSNAT], input=json.dumps(config(name, index)).encode(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        elapsed = (time.perf_counter() - start) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError("randsnat %s failed: %s %s" % (verb, done.stdout.decode()[:300], done.stderr.decode()[:300]))
        return elapsed, (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    try:
        for count, name in names.items():
            sh("ip", "netns", "add", name)
            sh("ip", "netns", "add", name + "-pod")
            for index in range(count):
                run(name, "ADD", index)
        for i in range(runs):
            for count, name in names.items():
                for slot, verb in ((0, "ADD"), (2, "DEL")):
                    wall, cpu = run(name, verb, 5000 + i)
                    samples[count][slot].append(wall)
                    samples[count][slot + 1].append(cpu)
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name])
            subprocess.run(["ip", "netns", "del", name + "-pod"])
    return {count: [statistics.median(values) for values in lists] for count, lists in samples.items()}


def drain(count, rounds, backends=("iptables", "nftables")):
    """A node drain as kubelet makes it: `count` pods' DELs started at once (chained randsnat, one
    resident pod keeping the network), for each backend in turn, `rounds` times, the backends' order
    alternating. Returns {backend: [wall ms per round]}; a failed DEL or a member left raises."""
    names = {backend: "%s-drain-%s" % (NS, backend[:3]) for backend in backends}
    walls = {backend: [] for backend in backends}

    def config(backend, index):
        conf = randsnat_config(index)
        conf["backend"] = backend
        conf["prevResult"]["interfaces"][0]["sandbox"] = "/var/run/netns/" + names[backend] + "-pod"
        return json.dumps(conf).encode()

    def start(backend, verb, index):
        name = names[backend]
        env = plugin_env(verb, "drain-%d" % index, "/var/run/netns/" + name + "-pod", {"RANDSNAT_RUN_DIR": RUN_DIR + "/" + name})
        proc = subprocess.Popen(["nsenter", "--net=/var/run/netns/" + name, RANDSNAT], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        proc.stdin.write(config(backend, index))
        proc.stdin.close()
        return proc

    def members(backend):
        name = names[backend]
        if backend == "nftables":
            listing = sh("ip", "netns", "exec", name, "nft", "list", "table", "inet", "randsnat").decode()
        else:
            listing = sh("ip", "netns", "exec", name, "ipset", "save").decode()
        return listing.count("/drain-")

    def wait(procs, what):
        failed = [proc.stderr.read().decode()[:300] for proc in procs if proc.wait(timeout=120) != 0]
        if failed:
            raise RuntimeError("%d of %d %s failed: %s" % (len(failed), len(procs), what, failed[0]))
    try:
        for backend, name in names.items():
            sh("ip", "netns", "add", name)
            sh("ip", "netns", "add", name + "-pod")
            wait([start(backend, "ADD", 0)], "resident ADD")
        for round in range(rounds):
            order = backends if round % 2 == 0 else tuple(reversed(backends))
            for backend in order:
                for first in range(1, count + 1, 10):  # the pods come up ten at a time (not timed)
                    wait([start(backend, "ADD", index) for index in range(first, min(first + 10, count + 1))], "ADDs")
                began = time.perf_counter()
                wait([start(backend, "DEL", index) for index in range(1, count + 1)], "DELs of the drain")
                walls[backend].append((time.perf_counter() - began) * 1000)
                left = members(backend)
                if left != 1:
                    raise RuntimeError("after the drain %s holds %d members; the resident pod's alone expected" % (backend, left))
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name])
            subprocess.run(["ip", "netns", "del", name + "-pod"])
    return walls


def print_residents(label, figures):
    counts = sorted(figures)
    for count in counts:
        print("  %-9s %4d resident pods: ADD %6.2f ms (CPU %5.2f ms), DEL %6.2f ms (CPU %5.2f ms)" % ((label, count) + tuple(figures[count])))
    low, high = figures[counts[0]], figures[counts[-1]]
    print("  %-9s with %d / with %d resident: ADD %.3f (CPU %.3f), DEL %.3f (CPU %.3f)"
          % (label, counts[-1], counts[0], high[0] / low[0], high[1] / low[1], high[2] / low[2], high[3] / low[3]))


def agent_figures(pods, backend, foreign=0, memory_only=False):
    """The agent with `pods` pods of one network resident and `foreign` kube-proxy-like nat rules of
    someone else (iptables-legacy-restore on the legacy backend, iptables-nft-restore on nftables): an
    idle pass (`agent --once`: CPU, peak RSS, syscalls by strace), then the DaemonSet's agent
    (randsnat-agent --metrics, as install/ runs it, without --install's net.d writes): its time to move
    every pod after the network's conflist changes (from the file's rename to its log line of the pass),
    to repair a flush, its idle passes (CPU, syscalls of one by strace on its loop's thread), and its
    RSS sampled every 20 ms throughout, with /metrics scraped. `memory_only`: the DaemonSet's agent's
    RSS and peak (VmHWM) only, without the --once passes and the traces."""
    name = NS + "-agent"
    root = tempfile.mkdtemp(prefix="rsbench-root.")
    # The records on a tmpfs, as /run/randsnat is on a node (here /tmp and /run are ext4, where each
    # record's rename costs ~1 ms: 0.3 s of a 250-pod move).
    run_dir = tempfile.mkdtemp(prefix="rsbench-agent-run.", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    netd = os.path.join(root, "etc/cni/net.d")
    os.makedirs(netd)
    # libcni's result cache as a runtime leaves it: one entry per pod (the agent adopts pods missing a
    # record from it, and reads it only when it changed).
    cache = os.path.join(root, "var/lib/cni/results")
    os.makedirs(cache)

    def conflist(extra):
        entry = {"type": "randsnat", "backend": backend}
        entry.update(extra)
        text = json.dumps({"cniVersion": "1.0.0", "name": "bench", "plugins": [{"type": "bridge"}, entry]})
        with open(os.path.join(netd, ".tmp"), "w") as f:
            f.write(text)
        os.rename(os.path.join(netd, ".tmp"), os.path.join(netd, "10-bench.conflist"))

    def config(index):
        conf = randsnat_config(index)
        conf["backend"] = backend
        del conf["nonMasqueradeCIDRs"]
        conf["prevResult"]["interfaces"][0]["sandbox"] = "/var/run/netns/" + name + "-pod"
        return conf
    env = dict(os.environ, RANDSNAT_RUN_DIR=run_dir)
    agent = ["nsenter", "--net=/var/run/netns/" + name, RANDSNAT, "agent", "--host-root", root, "--cni-cache", cache]
    daemon = ["nsenter", "--net=/var/run/netns/" + name, AGENT, "--metrics", "127.0.0.1:9469", "--host-root", root, "--resync", "30",
              "--cni-cache", cache]
    figures = {}
    try:
        sh("ip", "netns", "add", name)
        sh("ip", "netns", "add", name + "-pod")  # CNI_NETNS: randsnat refuses its own namespace there
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        if foreign:
            restore = "iptables-legacy-restore" if backend == "iptables" else "iptables-nft-restore"
            subprocess.run(["ip", "netns", "exec", name, restore, "--noflush"], input=kube_proxy_rules(foreign).encode(), check=True)
            save = "iptables-legacy-save" if backend == "iptables" else "iptables-nft-save"
            figures["foreign nat rules"] = sh("ip", "netns", "exec", name, save, "-t", "nat").decode().count("\n-A ")
        for index in range(pods):
            e = plugin_env("ADD", "ag-%d" % index, "/var/run/netns/" + name + "-pod", {"RANDSNAT_RUN_DIR": run_dir})
            subprocess.run(["nsenter", "--net=/var/run/netns/" + name, RANDSNAT], input=json.dumps(config(index)).encode(),
                           stdout=subprocess.DEVNULL, env=e, check=True)
            entry = {"kind": "cniCacheV1", "containerId": "ag-%d" % index, "ifName": "eth0", "networkName": "bench",
                     "config": "", "result": config(index)["prevResult"]}
            with open(os.path.join(cache, "bench-ag-%d-eth0" % index), "w") as f:
                json.dump(entry, f)
        conflist({})
        subprocess.run(agent + ["--once"], env=env, check=True, stderr=subprocess.DEVNULL)  # settle
        samples = []
        once_runs = 0 if memory_only else 10
        for _ in range(once_runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(agent + ["--once"], env=env, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            samples.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
        if not memory_only:
            figures["--once pass CPU ms"] = statistics.median(samples)
            # (the largest child so far: with foreign rules, their iptables-restore is larger than the agent)
            figures["--once peak RSS kB (largest child of the bench)"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            trace = subprocess.run(["strace", "-f", "-c", "-o", "/dev/stdout"] + agent + ["--once"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL).stdout.decode()
            figures["syscalls --once"] = syscall_counts(trace)
        log = open(os.path.join(root, "agent.log"), "w+")
        proc = subprocess.Popen(daemon, env=env, stderr=log)
        rss = {"now": 0, "samples": []}

        def sample_rss(phase):
            for line in open("/proc/%d/status" % proc.pid):
                if line.startswith("VmRSS:"):
                    value = int(line.split()[1])
                    rss["samples"].append((phase, value))

        def wait_log(text, seen, seconds, phase):
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                sample_rss(phase)
                log.seek(seen)
                found = log.read()
                if text in found:
                    return found
                time.sleep(0.02)
            return None

        def scrape():
            return subprocess.run(["ip", "netns", "exec", name, "curl", "-sf", "http://127.0.0.1:9469/metrics"],
                                  stdout=subprocess.PIPE).stdout

        try:
            wait_log("metrics on", 0, 10, "start")
            time.sleep(1)
            for phase in range(3):  # steady state: idle passes and scrapes
                for index in range(10):
                    with open(os.path.join(netd, "wake-%d-%d.txt" % (phase, index)), "w") as f:
                        f.write("x")
                    wait_log("never", log.tell(), 0.1, "steady")
                scrape()
            for label, change in (("move %d pods ms (to the pass's log line, pass's own ms)" % pods,
                                   lambda: conflist({"nonMasqueradeCIDRs": ["198.19.0.0/16"]})),
                                  ("move back ms", lambda: conflist({})),
                                  ("repair a flush ms", lambda: sh("ip", "netns", "exec", name, "sh", "-c",
                                                                   "nft delete table inet randsnat" if backend == "nftables"
                                                                   else "iptables-legacy -t nat -F POSTROUTING"))):
                seen = log.seek(0, 2)
                start = time.perf_counter()
                change()
                found = wait_log("repair(s) in", seen, 30, "move" if "move" in label else "repair")
                if found:
                    figures[label] = ("%.0f" % ((time.perf_counter() - start) * 1000), found.split("repair(s) in ")[1].split()[0])
                wait_log("never", log.tell(), 1.5, "move" if "move" in label else "repair")
            scrape()
            figures["metrics scrape bytes"] = len(scrape())

            if memory_only:
                status = {line.split(":")[0]: line.split()[1] for line in open("/proc/%d/status" % proc.pid) if line.startswith(("VmRSS", "VmHWM"))}
                figures["RSS kB max by phase"] = {phase: max(v for p, v in rss["samples"] if p == phase) for phase in {p for p, _ in rss["samples"]}}
                figures["VmRSS kB at the end"] = int(status["VmRSS"])
                figures["VmHWM kB (peak RSS of the agent)"] = int(status["VmHWM"])
                return figures

            # Idle passes of the running agent: a file that is no config written in net.d wakes it.
            def cpu_ticks():
                fields = open("/proc/%d/stat" % proc.pid).read().rsplit(")", 1)[1].split()
                return int(fields[11]) + int(fields[12])
            passes, before = 20, cpu_ticks()
            for index in range(passes):
                with open(os.path.join(netd, "wake-%d.txt" % index), "w") as f:
                    f.write("x")
                wait_log("never", log.tell(), 0.15, "steady")
            figures["idle pass CPU ms (running agent, incl. its metrics threads)"] = (cpu_ticks() - before) * 1000.0 / os.sysconf("SC_CLK_TCK") / passes
            # One idle pass traced on the loop's thread (the process's main thread).
            out = os.path.join(root, "strace.out")
            tracer = subprocess.Popen(["strace", "-c", "-o", out, "-p", str(proc.pid)], stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            with open(os.path.join(netd, "wake-traced.txt"), "w") as f:
                f.write("x")
            time.sleep(0.5)
            tracer.send_signal(2)
            tracer.wait()
            figures["syscalls of one idle pass (running agent)"] = syscall_counts(open(out).read())
            status = {line.split(":")[0]: line.split()[1] for line in open("/proc/%d/status" % proc.pid) if line.startswith(("VmRSS", "VmHWM"))}
            figures["RSS kB max by phase"] = {phase: max(v for p, v in rss["samples"] if p == phase) for phase in {p for p, _ in rss["samples"]}}
            figures["VmHWM kB (peak RSS of the agent)"] = int(status["VmHWM"])
        finally:
            proc.terminate()
            proc.wait()
    finally:
        subprocess.run(["ip", "netns", "del", name])
        subprocess.run(["ip", "netns", "del", name + "-pod"])
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    return figures


def syscall_counts(trace):
    """strace -c's table as {syscall: calls}."""
    return {line.split()[-1]: int(line.split()[3]) for line in trace.splitlines()
            if len(line.split()) >= 5 and line.split()[3].isdigit() and line.split()[-1] != "total"}


def print_table(results, plugins, sizes, labels=None):
    """The machine, then one row per plugin and size: ADD and DEL median and p99, ADD+DEL. Returns the
    ADD+DEL median of (plugin, size), for the ratios."""
    print("machine: %s, %s cores, kernel %s" % (open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip(),
                                                 os.cpu_count(), os.uname().release))
    print("%-13s %7s | %12s %12s | %12s %12s | %10s" % ("plugin", "rules", "ADD median", "ADD p99", "DEL median", "DEL p99", "ADD+DEL"))
    for size in sizes:
        for plugin in plugins:
            (am, ap), (dm, dp) = results[(plugin, size)]
            label = (labels or {}).get(plugin, plugin)
            print("%-13s %7d | %9.2f ms %9.2f ms | %9.2f ms %9.2f ms | %7.2f ms" % (label, size, am, ap, dm, dp, am + dm))

    def total(plugin, size):
        (am, _), (dm, _) = results[(plugin, size)]
        return am + dm
    return total


def stats(values):
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99


def measure(path, make_config, runs, env_extra):
    adds, dels = [], []
    for i in range(runs):
        config = make_config(1000 + i)
        adds.append(run_plugin(path, "ADD", config, "bench-%d" % i, dict(env_extra)))
        dels.append(run_plugin(path, "DEL", config, "bench-%d" % i, dict(env_extra)))
    return stats(adds), stats(dels)


def version_time(path, runs=200):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([path], env={"CNI_COMMAND": "VERSION"}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def peak_rss_kb(path, config):
    code = ("import json,os,resource,subprocess,sys;"
            "subprocess.run(['nsenter','--net=/var/run/netns/%s','%s'],input=sys.stdin.buffer.read(),stdout=subprocess.DEVNULL,"
            "env=dict(os.environ,RANDSNAT_RUN_DIR='%s',CNI_COMMAND='ADD',CNI_CONTAINERID='rss',CNI_NETNS='/var/run/netns/%s',CNI_IFNAME='eth0',CNI_PATH='/x'));"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)") % (NS, path, RUN_DIR, NS)
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(config).encode(), stdout=subprocess.PIPE, check=True).stdout
    run_plugin(path, "DEL", config, "rss")
    return int(out.strip())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--portmap-runs", type=int, default=20)
    parser.add_argument("--standalone-runs", type=int, default=30)
    parser.add_argument("--bridge-runs", type=int, default=15)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--residents", type=int, default=250, help="pods resident in the network for the per-pod flatness figure")
    parser.add_argument("--residents-runs", type=int, default=40)
    parser.add_argument("--residents-only", action="store_true", help="measure only ADD/DEL with 1 and --residents pods resident")
    parser.add_argument("--agent-only", action="store_true", help="measure only the agent with --residents pods")
    parser.add_argument("--drain", type=int, default=None, metavar="PODS",
                        help="measure only a node drain: PODS pods' DELs at once, iptables and nftables in turn")
    parser.add_argument("--drain-rounds", type=int, default=6)
    parser.add_argument("--agent-memory", default=None, metavar="N,N,...",
                        help="measure only the DaemonSet agent's RSS with --residents pods and each count of foreign nat rules")
    args = parser.parse_args()
    if args.agent_memory:
        try:
            for foreign in [int(n) for n in args.agent_memory.split(",")]:
                for backend in ("iptables", "nftables"):
                    figures = agent_figures(args.residents, backend, foreign, memory_only=True)
                    print("agent memory (%s, %d pods, %d foreign nat rules): VmHWM %d kB, VmRSS at the end %d kB, max by phase %s" % (
                        backend, args.residents, figures.get("foreign nat rules", 0), figures["VmHWM kB (peak RSS of the agent)"],
                        figures["VmRSS kB at the end"], figures["RSS kB max by phase"]), flush=True)
        finally:
            shutil.rmtree(RUN_DIR, ignore_errors=True)
        return
    if args.agent_only:
        try:
            for foreign in sorted({0, args.rules}):
                for backend in ("iptables", "nftables"):
                    print("the agent (%s) with %d pods, %d foreign nat rules ..." % (backend, args.residents, foreign), flush=True)
                    figures = agent_figures(args.residents, backend, foreign)
                    for key, value in figures.items():
                        if key.startswith("syscalls"):
                            value = ", ".join("%s %d" % kv for kv in sorted(value.items(), key=lambda kv: -kv[1])[:10])
                        print("  %-9s %s: %s" % (backend, key, value), flush=True)
        finally:
            shutil.rmtree(RUN_DIR, ignore_errors=True)
        return
    if args.drain:
        try:
            print("node drain: %d DELs at once, iptables and nftables in turn, x%d ..." % (args.drain, args.drain_rounds), flush=True)
            walls = drain(args.drain, args.drain_rounds)
            for backend, values in walls.items():
                print("  %-9s drain of %d pods: median %7.0f ms, min %7.0f, max %7.0f (%s)" % (
                    backend, args.drain, statistics.median(values), min(values), max(values), ", ".join("%.0f" % v for v in values)))
            ratios = [n / i for i, n in zip(walls["iptables"], walls["nftables"])]
            print("  nftables / iptables: median of medians %.2f, per round %s" % (
                statistics.median(walls["nftables"]) / statistics.median(walls["iptables"]), ", ".join("%.2f" % r for r in ratios)))
        finally:
            shutil.rmtree(RUN_DIR, ignore_errors=True)
        return
    if args.residents_only:
        try:
            for backend in ("iptables", "nftables"):
                print("randsnat (%s) ADD/DEL x%d with 1 and %d resident pods, in turn ..." % (backend, args.residents_runs, args.residents), flush=True)
                print_residents(backend, residents((1, args.residents), args.residents_runs, backend))
        finally:
            shutil.rmtree(RUN_DIR, ignore_errors=True)
        return
    # The reference plugins exec `iptables`: make them use iptables-legacy, as randsnat does.
    legacy_bin, legacy_env = forced_iptables("legacy")
    sh("ip", "netns", "add", NS)
    sh("ip", "netns", "add", SANDBOX.rsplit("/", 1)[1])
    data_dir = tempfile.mkdtemp(prefix="rsbench-ipam.")
    try:
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        results = {}
        print("100 pods at once, empty nat table ...", flush=True)
        together = {plugin: concurrent(plugin, args.concurrent, data_dir, legacy_env if plugin == "bridge" else {})
                    for plugin in ("randsnat", "bridge")}
        for size in (0, args.rules):
            if size:
                print("loading %d kube-proxy-like rules with iptables-legacy-restore --noflush ..." % size, flush=True)
                subprocess.run(["ip", "netns", "exec", NS, "iptables-legacy-restore", "--noflush"],
                               input=kube_proxy_rules(size).encode(), check=True)
                count = sh("ip", "netns", "exec", NS, "iptables-legacy-save", "-t", "nat").decode().count("\n-A ")
                print("nat table now holds %d rules" % count, flush=True)
            # randsnat: one resident pod keeps the network's rules in place, as on a node with pods.
            resident = randsnat_config(1)
            run_plugin(RANDSNAT, "ADD", resident, "resident")
            print("randsnat ADD/DEL x%d at %d rules ..." % (args.runs, size), flush=True)
            results[("randsnat", size)] = measure(RANDSNAT, randsnat_config, args.runs, {})
            run_plugin(RANDSNAT, "DEL", resident, "resident")
            print("portmap ADD/DEL x%d at %d rules ..." % (args.portmap_runs, size), flush=True)
            results[("portmap", size)] = measure(os.path.join(REFERENCE, "portmap"), portmap_config, args.portmap_runs, legacy_env)
            # Standalone randsnat keeps a resident pod too; the reference bridge writes per-pod chains.
            resident_ns = pod_netns(NS + "-res")
            run_plugin(RANDSNAT, "ADD", standalone_config("randsnat", data_dir), "sb-resident", {}, resident_ns)
            # One pod of each in turn (the bridge's are slow at 20,000 rules: its count sets the pairs there).
            pairs = args.standalone_runs if size == 0 else args.bridge_runs
            print("standalone randsnat and bridge (ipMasq), ADD/DEL x%d each, in turn, at %d rules ..." % (pairs, size), flush=True)
            both = measure_interleaved([("randsnat", standalone_config("randsnat", data_dir), {}),
                                        ("bridge", standalone_config("bridge", data_dir), legacy_env)], pairs)
            results[("standalone", size)], results[("bridge", size)] = both["randsnat"], both["bridge"]
            run_plugin(RANDSNAT, "DEL", standalone_config("randsnat", data_dir), "sb-resident", {}, resident_ns)
            subprocess.run(["ip", "netns", "del", NS + "-res"])
        print("randsnat ADD+DEL in an empty and a %d-rule namespace in turn, x%d ..." % (args.rules, args.runs), flush=True)
        flat = flatness(randsnat_config, "iptables-legacy-restore", args.rules, args.runs)
        run_plugin(RANDSNAT, "ADD", randsnat_config(1), "resident")
        rss_randsnat = peak_rss_kb(RANDSNAT, randsnat_config(7))
        run_plugin(RANDSNAT, "DEL", randsnat_config(1), "resident")
        v_randsnat = version_time(RANDSNAT)
        v_bridge = version_time(os.path.join(REFERENCE, "bridge"))
        v_portmap = version_time(os.path.join(REFERENCE, "portmap"))
    finally:
        for name in os.listdir("/var/run/netns"):
            if name.startswith(NS):
                subprocess.run(["ip", "netns", "del", name])
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(legacy_bin, ignore_errors=True)
        shutil.rmtree(RUN_DIR, ignore_errors=True)

    print()
    total = print_table(results, ("randsnat", "portmap", "standalone", "bridge"), (0, args.rules),
                        {"standalone": "randsnat-sa", "bridge": "bridge+masq"})
    print()
    print("ratios (ADD+DEL medians):")
    for size in (0, args.rules):
        print("  randsnat / portmap at %6d rules: %.3f" % (size, total("randsnat", size) / total("portmap", size)))
    print("  randsnat at %d rules / randsnat at 0 rules: %.3f" % (args.rules, total("randsnat", args.rules) / total("randsnat", 0)))
    print("  portmap at %d rules / portmap at 0 rules: %.3f" % (args.rules, total("portmap", args.rules) / total("portmap", 0)))
    print("  randsnat, the two namespaces in turn: %.2f ms empty, %.2f ms at %d rules: %.3f" % (flat[0], flat[1], args.rules, flat[1] / flat[0]))
    for size in (0, args.rules):
        (sa, _), _ = results[("standalone", size)]
        (ba, _), _ = results[("bridge", size)]
        print("  standalone randsnat / bridge+ipMasq at %6d rules: ADD+DEL %.3f, ADD alone %.3f" % (size, total("standalone", size) / total("bridge", size), sa / ba))
    print("  standalone randsnat at %d rules / at 0 rules: %.3f" % (args.rules, total("standalone", args.rules) / total("standalone", 0)))
    print()
    print("%d pods at once (empty nat table; wall time, failures):" % args.concurrent)
    for plugin in ("randsnat", "bridge"):
        r = together[plugin]
        print("  %-9s ADD %8.0f ms, %d failed | DEL %8.0f ms, %d failed | left: %s" % (plugin, r["ADD"][0], r["ADD"][1], r["DEL"][0], r["DEL"][1], r["left"]))
    print("VERSION exec median: randsnat %.2f ms, reference bridge (Go) %.2f ms (ratio %.2f), reference portmap %.2f ms (ratio %.2f)"
          % (v_randsnat, v_bridge, v_randsnat / v_bridge, v_portmap, v_randsnat / v_portmap))
    print("binary size: randsnat %.1f MB, reference portmap %.1f MB" % (os.path.getsize(RANDSNAT) / 1e6,
                                                                       os.path.getsize(os.path.join(REFERENCE, "portmap")) / 1e6))
    print("peak RSS of one randsnat ADD: %d kB" % rss_randsnat)


if __name__ == "__main__":
    main()
