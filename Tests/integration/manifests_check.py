#!/usr/bin/env python3
"""Checks install/: every manifest against the Kubernetes API schemas (kubernetes-validate, strict:
unknown fields are errors), the conventions of CNI installers, and the Helm chart. helm is not in
Debian 12, so the chart is rendered here by a renderer of the template subset it uses ({{ .Values.x }},
{{ .Release.Namespace }}, {{ toJson .Values.x }}, {{- if .Values.x }} ... {{- end }}, {{ .Files.Get "f" | indent N }}); a template
using anything else fails the check. Prints "manifests: N passed, N failed"."""
import json, os, re, sys
import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
passed = failed = 0


def check(what, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print("    ok: " + what)
    else:
        failed += 1
        print("    FAIL: %s %s" % (what, detail))


def lookup(path, context):
    value = context
    for part in path.split(".")[1:]:
        value = value[part]
    return value


CHART = os.path.join(ROOT, "install/helm/randsnat")


def render(template, context):
    def include(match):
        text = open(os.path.join(CHART, match.group(1))).read()
        return "\n".join((" " * int(match.group(2)) + line) if line else line for line in text.split("\n"))

    def condition(match):
        return match.group(2) if lookup(match.group(1), context) else ""
    text = re.sub(r"\{\{- if (\.[\w.]+) \}\}(.*?)\{\{- end \}\}", condition, template, flags=re.S)
    text = re.sub(r'\{\{ \.Files\.Get "([\w./-]+)" \| indent (\d+) \}\}', include, text)
    text = re.sub(r"\{\{ toJson (\.[\w.]+) \}\}", lambda m: json.dumps(lookup(m.group(1), context), separators=(",", ":")), text)
    text = re.sub(r"\{\{ (\.[\w.]+) \}\}", lambda m: str(lookup(m.group(1), context)), text)
    leftover = re.search(r"\{\{.*?\}\}", text.split("kind: PrometheusRule")[0])
    if leftover:
        raise ValueError("template construct the test renderer does not know: " + leftover.group(0))
    return text


def render_chart(values_override):
    chart = CHART
    values = yaml.safe_load(open(os.path.join(chart, "values.yaml")))
    values.update(values_override)
    context = {"Values": values, "Release": {"Namespace": "kube-system", "Name": "randsnat"},
               "Chart": yaml.safe_load(open(os.path.join(chart, "Chart.yaml")))}
    objects = []
    for name in sorted(os.listdir(os.path.join(chart, "templates"))):
        objects += [o for o in yaml.safe_load_all(render(open(os.path.join(chart, "templates", name)).read(), context)) if o]
    return objects


def by_kind(objects):
    return {o["kind"]: o for o in objects}


if sys.argv[1:2] == ["--prometheus-rule-spec"]:
    # For metrics_tests.sh: the spec (rule groups) of the PrometheusRule the chart renders, for promtool.
    rule = by_kind(render_chart({"metrics": {"port": 9469, "serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": True}}}))["PrometheusRule"]
    yaml.safe_dump(rule["spec"], open(sys.argv[2], "w"), sort_keys=False)
    sys.exit(0)

plain = [o for o in yaml.safe_load_all(open(os.path.join(ROOT, "install/kubernetes/randsnat.yaml"))) if o]
print("--- install/kubernetes/randsnat.yaml")
for version in ("1.29.0", "1.33.0", kubernetes_validate.latest_version()):
    for obj in plain:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
            check("%s valid against the Kubernetes %s API (strict)" % (obj["kind"], version), True)
        except Exception as error:
            check("%s valid against the Kubernetes %s API (strict)" % (obj["kind"], version), False, str(error)[:300])

kinds = by_kind(plain)
check("a ServiceAccount, a ConfigMap and a DaemonSet", set(kinds) == {"ServiceAccount", "ConfigMap", "DaemonSet"}, str(set(kinds)))
pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
container = pod["containers"][0]
mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
paths = {v["name"]: v.get("hostPath", {}).get("path") for v in pod["volumes"]}
check("priorityClassName is system-node-critical", pod.get("priorityClassName") == "system-node-critical")
check("tolerates every taint", {"operator": "Exists"} in pod.get("tolerations", []))
check("runs on the host network (before pod networking works)", pod.get("hostNetwork") is True)
check("the ServiceAccount is the pod's", pod.get("serviceAccountName") == kinds["ServiceAccount"]["metadata"]["name"])
check("/opt/cni/bin of the host at /host/opt/cni/bin", paths.get(mounts.get("/host/opt/cni/bin")) == "/opt/cni/bin")
check("/etc/cni/net.d of the host at /host/etc/cni/net.d", paths.get(mounts.get("/host/etc/cni/net.d")) == "/etc/cni/net.d")
check("the readiness probe is `randsnat install --check`", "--check" in container["readinessProbe"]["exec"]["command"])
check("the container runs randsnat-agent (reconciling: no --no-reconcile), installing",
      container.get("command") == ["/usr/local/bin/randsnat-agent"] and "--install" in container["args"]
      and "--no-reconcile" not in container["args"], str(container.get("command")) + str(container["args"]))
metrics_at = container["args"][container["args"].index("--metrics") + 1] if "--metrics" in container["args"] else ""
host_ip = [e for e in container.get("env", []) if e["name"] == "HOST_IP"]
check("it serves metrics on the node's address (status.hostIP, bracketed for IPv6) at the metrics port",
      metrics_at == "[$(HOST_IP)]:9469" and host_ip and host_ip[0]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
      and {"name": "metrics", "containerPort": 9469, "protocol": "TCP"} in container.get("ports", []), metrics_at)
check("the liveness probe is `randsnat-agent --alive` with the agent's period",
      container["livenessProbe"]["exec"]["command"] == ["/usr/local/bin/randsnat-agent", "--resync",
                                                        container["args"][container["args"].index("--resync") + 1], "--alive"])
check("it may edit netfilter (NET_ADMIN, NET_RAW) and nothing else",
      container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]})
check("the host's /run/randsnat (records, locks) at /run/randsnat", paths.get(mounts.get("/run/randsnat")) == "/run/randsnat")
check("the host's xtables lock at /run/xtables.lock", paths.get(mounts.get("/run/xtables.lock")) == "/run/xtables.lock")
cache_mount = [m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/cni"]
check("the host's CNI cache (/var/lib/cni: libcni's results) at its own path, read-only (the default of --cni-cache: doctor tells orphans, the agent adopts)",
      paths.get(mounts.get("/var/lib/cni")) == "/var/lib/cni" and cache_mount and cache_mount[0].get("readOnly") is True
      and all(arg != "--cni-cache" for arg in container["args"]), str(cache_mount))
settings = json.loads(kinds["ConfigMap"]["data"]["config.json"])
check("the ConfigMap holds randsnat settings", isinstance(settings.get("nonMasqueradeCIDRs"), list))
config_volume = [v for v in pod["volumes"] if "configMap" in v][0]
check("the ConfigMap is mounted where --config points", config_volume["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
      and "/etc/randsnat/config.json" in container["args"] and mounts.get("/etc/randsnat") == config_volume["name"])

print("--- install/helm/randsnat")
rendered = render_chart({})
check("the chart renders the same objects as the plain manifest", by_kind(rendered) == kinds,
      json.dumps([o for o in rendered if o != kinds.get(o["kind"])])[:600])
for obj in rendered:
    try:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        check("rendered %s valid (strict)" % obj["kind"], True)
    except Exception as error:
        check("rendered %s valid (strict)" % obj["kind"], False, str(error)[:300])
flags = by_kind(render_chart({"uninstallOnExit": True, "turnOffPrimaryMasquerade": True}))["DaemonSet"]
arguments = flags["spec"]["template"]["spec"]["containers"][0]["args"]
check("values turn on --uninstall-on-exit and --turn-off-primary-masquerade",
      "--uninstall-on-exit" in arguments and "--turn-off-primary-masquerade" in arguments, str(arguments))
period = by_kind(render_chart({"resyncSeconds": 10}))["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
check("resyncSeconds sets the agent's period and its liveness probe's",
      period["args"][period["args"].index("--resync") + 1] == "10" and period["livenessProbe"]["periodSeconds"] == 10, str(period["args"]))
metrics_on = by_kind(render_chart({"metrics": {"port": 9469, "serviceMonitor": {"enabled": True, "interval": "30s"},
                                                "prometheusRule": {"enabled": True}}}))
check("metrics values add a Service, a ServiceMonitor and a PrometheusRule",
      {"Service", "ServiceMonitor", "PrometheusRule"} <= set(metrics_on), str(set(metrics_on)))
if {"Service", "ServiceMonitor", "PrometheusRule"} <= set(metrics_on):
    try:
        kubernetes_validate.validate(metrics_on["Service"], kubernetes_validate.latest_version(), strict=True)
        check("the metrics Service is valid (strict)", True)
    except Exception as error:
        check("the metrics Service is valid (strict)", False, str(error)[:300])
    service, monitor = metrics_on["Service"], metrics_on["ServiceMonitor"]
    check("the ServiceMonitor selects the metrics Service and scrapes its port by name",
          monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
          and monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
          and monitor["spec"]["endpoints"][0]["path"] == "/metrics")
    check("the Service selects the DaemonSet's pods on port 9469",
          service["spec"]["selector"].items() <= kinds["DaemonSet"]["spec"]["template"]["metadata"]["labels"].items()
          and service["spec"]["ports"][0]["targetPort"] == 9469)
    check("the PrometheusRule holds the plain rules file's groups",
          metrics_on["PrometheusRule"]["spec"] == yaml.safe_load(open(os.path.join(ROOT, "install/prometheus/randsnat-rules.yaml"))))
def mebibytes(quantity):
    return int(quantity[:-2]) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}[quantity[-2:]]


limits = container["resources"]
check("the agent has a memory request and a larger memory limit (install/README.md, \"The agent\": resources)",
      mebibytes(limits["requests"]["memory"]) < mebibytes(limits["limits"]["memory"]), str(limits))
sized = by_kind(render_chart({"resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}}}))["DaemonSet"]
check("values set the agent's requests and limits",
      sized["spec"]["template"]["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}})
# helm validates values against values.schema.json (strict: unknown keys refused); so does this check.
import jsonschema
schema = json.load(open(os.path.join(CHART, "values.schema.json")))
values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
try:
    jsonschema.validate(values, schema)
    check("values.yaml is valid against values.schema.json", True)
except jsonschema.ValidationError as error:
    check("values.yaml is valid against values.schema.json", False, error.message)
for label, change in (("an unknown key", lambda v: v.update(resource={})),
                      ("an unknown key in resources", lambda v: v["resources"]["limits"].update(cpu="1")),
                      ("a memory limit without its unit", lambda v: v["resources"]["limits"].update(memory=128)),
                      ("a resync period of 0", lambda v: v.update(resyncSeconds=0))):
    bad = json.loads(json.dumps(values))
    change(bad)
    check("values.schema.json refuses %s" % label, not jsonschema.Draft7Validator(schema).is_valid(bad))

custom = by_kind(render_chart({"settings": {"toSource": ["203.0.113.5"]}}))["ConfigMap"]
check("values set randsnat's settings", json.loads(custom["data"]["config.json"]) == {"toSource": ["203.0.113.5"]})

print("manifests: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
