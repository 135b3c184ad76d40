#!/usr/bin/env python3
"""A minimal CNI runtime for tests, behaving like libcni: runs the plugins of a conflist with the
CNI_* environment and the config on stdin, injects name/cniVersion/prevResult, caches the ADD
result for DEL and CHECK, and passes cni.dev/valid-attachments to GC.

  cni.py add|del|check CONFLIST CONTAINER NETNS IFNAME   (prints the final result or the error JSON)
  cni.py gc CONFLIST CONTAINER:IFNAME...
  cni.py status CONFLIST
  cni.py exec PLUGIN VERB CONFIG CONTAINER NETNS IFNAME  (one plugin, config file as is)

CNI_PATH comes from the environment; the cache lives in $CNI_CACHE_DIR.
"""
import base64, json, os, subprocess, sys


def run(plugin, verb, config, container="", netns="", ifname="", extra_env=None):
    env = dict(os.environ)
    env.update({"CNI_COMMAND": verb, "CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
                "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=test;K8S_POD_NAME=" + container})
    env.update(extra_env or {})
    path = None
    for directory in env.get("CNI_PATH", "").split(":"):
        if os.path.isfile(os.path.join(directory, plugin)):
            path = os.path.join(directory, plugin)
            break
    if path is None:
        return 1, json.dumps({"code": 999, "msg": "plugin %s not in CNI_PATH" % plugin})
    done = subprocess.run([path], input=json.dumps(config).encode(), stdout=subprocess.PIPE, env=env, timeout=60)
    return done.returncode, done.stdout.decode()


def cache_path(conflist, container, ifname):
    directory = os.environ.get("CNI_CACHE_DIR", "/tmp")
    # libcni's own cache layout (/var/lib/cni/results/NETWORK-CONTAINER-IFNAME), which doctor reads.
    return os.path.join(directory, "%s-%s-%s" % (conflist["name"], container, ifname))


def plugin_config(conflist, plugin, prev):
    config = dict(plugin)
    config["name"] = conflist["name"]
    config["cniVersion"] = conflist["cniVersion"]
    if prev is not None:
        config["prevResult"] = prev
    return config


def main():
    verb = sys.argv[1]
    if verb == "exec":
        plugin, command, config_file, container, netns, ifname = sys.argv[2:8]
        config = json.load(open(config_file))
        code, out = run(plugin, command, config, container, netns, ifname)
        sys.stdout.write(out)
        sys.exit(code)
    conflist = json.load(open(sys.argv[2]))
    plugins = conflist["plugins"]
    if verb == "add":
        container, netns, ifname = sys.argv[3:6]
        prev, out = None, ""
        for plugin in plugins:
            code, out = run(plugin["type"], "ADD", plugin_config(conflist, plugin, prev), container, netns, ifname)
            if code != 0:
                sys.stdout.write(out)
                sys.exit(code)
            prev = json.loads(out)
        # libcni's cachedInfo (cniCacheV1): the network config's bytes in base64, and the result.
        entry = {"kind": "cniCacheV1", "containerId": container, "config": base64.b64encode(open(sys.argv[2], "rb").read()).decode(),
                 "ifName": ifname, "networkName": conflist["name"], "netns": netns, "result": prev}
        json.dump(entry, open(cache_path(conflist, container, ifname), "w"))
        sys.stdout.write(out)
    elif verb in ("del", "check"):
        container, netns, ifname = sys.argv[3:6]
        prev = None
        try:
            prev = json.load(open(cache_path(conflist, container, ifname)))["result"]
        except OSError:
            pass
        order = reversed(plugins) if verb == "del" else plugins
        for plugin in order:
            code, out = run(plugin["type"], verb.upper(), plugin_config(conflist, plugin, prev), container, netns, ifname)
            if code != 0:
                sys.stdout.write(out)
                sys.exit(code)
        if verb == "del":
            try:
                os.unlink(cache_path(conflist, container, ifname))
            except OSError:
                pass
    elif verb == "gc":
        valid = [{"containerID": item.split(":")[0], "ifname": item.split(":")[1]} for item in sys.argv[3:]]
        for plugin in plugins:
            config = plugin_config(conflist, plugin, None)
            config["cni.dev/valid-attachments"] = valid
            code, out = run(plugin["type"], "GC", config)
            if code != 0:
                sys.stdout.write(out)
                sys.exit(code)
    elif verb == "status":
        for plugin in plugins:
            code, out = run(plugin["type"], "STATUS", plugin_config(conflist, plugin, None))
            if code != 0:
                sys.stdout.write(out)
                sys.exit(code)


main()
