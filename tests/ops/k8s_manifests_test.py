#!/usr/bin/env python3
"""issue 12 CI: structural checks of deploy/k8s/*.yaml.

Debian packages no Kubernetes schema validator (no kubeconform/kubeval in
bookworm), so this checks what makes shipped manifests fail in a cluster:
  - every document has apiVersion, kind and metadata.name;
  - workloads: spec.selector.matchLabels is a subset of the pod template's
    labels; every container has an image, resources.requests (cpu, memory)
    and a livenessProbe, plus a readinessProbe when a Service selects it;
    probe ports name a declared containerPort (or are numbers);
  - no flag is passed twice to a container, counting the flags its image's
    ENTRYPOINT already passes (spt/<x>:tag is built from
    deploy/container/Dockerfile.<x>): the --device-twice CrashLoopBackOff;
  - every volumeMount names a volume; every PVC, ConfigMap and Secret that a
    pod uses exists in the manifests or, for Secrets made by hand, a comment
    in deploy/k8s shows the `kubectl create secret ... <name>` that makes it;
  - a StatefulSet's serviceName names a headless Service (clusterIP: None)
    selecting its pods; a Service's selector matches some pod template and a
    named targetPort is a port of that pod.
usage: k8s_manifests_test.py <repo root>      (checks deploy/k8s)
       k8s_manifests_test.py --self-test       (each rule catches a broken manifest)
"""
import json
import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # Debian: python3-yaml (scripts/setup.sh installs it)
    print("SKIP: python3-yaml is not installed")
    sys.exit(77)

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def entrypoint_flags(image, dockerfiles):
    """Flags the image's ENTRYPOINT passes before the container's args."""
    m = re.match(r"^spt/([a-z0-9-]+)(:.*)?$", image or "")
    if not m or m.group(1) not in dockerfiles:
        return []
    text = dockerfiles[m.group(1)]
    eps = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.M)
    if not eps:
        return []
    return [a for a in json.loads(eps[-1]) if a.startswith("--")]


def flag_names(args):
    return [a.split("=", 1)[0] for a in args if isinstance(a, str) and a.startswith("--")]


def probe_port(probe):
    for kind in ("httpGet", "tcpSocket", "grpc"):
        if kind in probe:
            return probe[kind].get("port")
    return None


def check(docs, comments, dockerfiles):
    """docs: [(file, doc)]; comments: all comment text. Returns error strings."""
    errors = []
    by_kind = {}
    for f, d in docs:
        where = f"{f}: {d.get('kind', '?')}/{(d.get('metadata') or {}).get('name', '?')}"
        for key in ("apiVersion", "kind"):
            if not d.get(key):
                errors.append(f"{where}: no {key}")
        if not (d.get("metadata") or {}).get("name"):
            errors.append(f"{where}: no metadata.name")
        by_kind.setdefault(d.get("kind"), []).append((where, d))

    def names(kind):
        return {(d.get("metadata") or {}).get("name") for _, d in by_kind.get(kind, [])}

    services = by_kind.get("Service", [])
    pods = []  # (where, template labels, pod spec)
    for kind in WORKLOADS:
        for where, d in by_kind.get(kind, []):
            spec = d.get("spec") or {}
            tmpl = spec.get("template") or {}
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            pod = tmpl.get("spec") or {}
            pods.append((where, labels, pod, d))
            sel = (spec.get("selector") or {}).get("matchLabels")
            if kind != "Job":
                if not sel:
                    errors.append(f"{where}: no spec.selector.matchLabels")
                elif any(labels.get(k) != v for k, v in sel.items()):
                    errors.append(f"{where}: selector {sel} does not match template labels {labels}")
            if kind == "StatefulSet":
                sname = spec.get("serviceName")
                svc = [s for w, s in services if (s.get("metadata") or {}).get("name") == sname]
                if not sname or not svc:
                    errors.append(f"{where}: serviceName {sname!r} names no Service")
                elif (svc[0].get("spec") or {}).get("clusterIP") != "None":
                    errors.append(f"{where}: serviceName {sname} is not headless (clusterIP: None)")
                elif any(labels.get(k) != v for k, v in ((svc[0].get("spec") or {}).get("selector") or {}).items()):
                    errors.append(f"{where}: headless Service {sname} does not select its pods")

    selected = set()
    for where, s in services:
        sel = (s.get("spec") or {}).get("selector") or {}
        match = [p for p in pods if sel and all(p[1].get(k) == v for k, v in sel.items())]
        if not match:
            errors.append(f"{where}: selector {sel} matches no pod template")
            continue
        for p in match:
            selected.add(p[0])
        declared = {pt.get("name") for p in match for c in p[2].get("containers") or [] for pt in c.get("ports") or []}
        for port in (s.get("spec") or {}).get("ports") or []:
            tp = port.get("targetPort")
            if isinstance(tp, str) and tp not in declared:
                errors.append(f"{where}: targetPort {tp} is no named port of its pods")

    secrets, pvcs, cms = names("Secret"), names("PersistentVolumeClaim"), names("ConfigMap")
    documented = set(re.findall(r"kubectl\s+create\s+secret\s+\S+\s+([a-z0-9.-]+)", comments))
    for where, labels, pod, d in pods:
        vols = {v.get("name"): v for v in pod.get("volumes") or []}
        claims = {t.get("metadata", {}).get("name") for t in (d.get("spec") or {}).get("volumeClaimTemplates") or []}
        used_secrets = []
        for v in vols.values():
            if "secret" in v:
                used_secrets.append(v["secret"].get("secretName"))
            if "persistentVolumeClaim" in v and v["persistentVolumeClaim"].get("claimName") not in pvcs:
                errors.append(f"{where}: volume {v.get('name')} claims missing PVC "
                              f"{v['persistentVolumeClaim'].get('claimName')}")
            if "configMap" in v and v["configMap"].get("name") not in cms:
                errors.append(f"{where}: volume {v.get('name')} uses missing ConfigMap {v['configMap'].get('name')}")
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            cw = f"{where} container {c.get('name')}"
            if not c.get("image"):
                errors.append(f"{cw}: no image")
            req = (c.get("resources") or {}).get("requests") or {}
            for r in ("cpu", "memory"):
                if r not in req:
                    errors.append(f"{cw}: no resources.requests.{r}")
            ports = {p.get("name") for p in c.get("ports") or []}
            if c in (pod.get("containers") or []):
                probes = ["livenessProbe"] + (["readinessProbe"] if where in selected else [])
                for pr in probes:
                    if pr not in c:
                        errors.append(f"{cw}: no {pr}")
                for pr in ("livenessProbe", "readinessProbe", "startupProbe"):
                    if pr in c:
                        port = probe_port(c[pr])
                        if port is None or (isinstance(port, str) and port not in ports):
                            errors.append(f"{cw}: {pr} port {port!r} is not a declared containerPort")
            flags = entrypoint_flags(c.get("image"), dockerfiles) + flag_names(c.get("command", [])[1:]) + \
                flag_names(c.get("args") or [])
            dup = sorted({f for f in flags if flags.count(f) > 1})
            if dup:
                errors.append(f"{cw}: flags passed twice (image ENTRYPOINT + args): {', '.join(dup)}")
            for m in c.get("volumeMounts") or []:
                if m.get("name") not in vols and m.get("name") not in claims:
                    errors.append(f"{cw}: volumeMount {m.get('name')} names no volume")
            for e in c.get("env") or []:
                ref = ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
                if ref:
                    used_secrets.append(ref)
            for e in c.get("envFrom") or []:
                if "secretRef" in e:
                    used_secrets.append(e["secretRef"].get("name"))
        for s in used_secrets:
            if s not in secrets and s not in documented:
                errors.append(f"{where}: secret {s} is neither in the manifests nor documented "
                              f"(a comment with `kubectl create secret generic {s} ...`)")
    return errors


def load(root):
    docs, comments = [], ""
    files = sorted((root / "deploy" / "k8s").glob("*.yaml")) + sorted((root / "deploy" / "k8s").glob("*.yml"))
    if not files:
        raise SystemExit(f"FAIL: no manifests under {root}/deploy/k8s")
    for f in files:
        text = f.read_text()
        comments += "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line) + "\n"
        for d in yaml.safe_load_all(text):
            if d is not None:
                docs.append((f.name, d))
    dockerfiles = {p.name.split(".", 1)[1]: p.read_text()
                   for p in (root / "deploy" / "container").glob("Dockerfile.*")}
    return docs, comments, dockerfiles


GOOD = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec:
  serviceName: s-headless
  selector: {matchLabels: {app: s}}
  template:
    metadata: {labels: {app: s}}
    spec:
      containers:
        - name: c
          image: spt/worker-x:latest
          args: ["--slots", "1"]
          ports: [{containerPort: 1, name: grpc}]
          resources: {requests: {cpu: "1", memory: 1Gi}}
          readinessProbe: {tcpSocket: {port: grpc}}
          livenessProbe: {tcpSocket: {port: grpc}}
          volumeMounts: [{name: tok, mountPath: /t}]
      volumes:
        - name: tok
          secret: {secretName: made-by-hand}
---
apiVersion: v1
kind: Service
metadata: {name: s-headless}
spec: {clusterIP: None, selector: {app: s}, ports: [{port: 1, targetPort: grpc}]}
"""
BREAKAGES = {  # rule -> (text to replace, replacement)
    "flags passed twice": ('"--slots", "1"', '"--slots", "1", "--device", "cuda"'),
    "selector": ("matchLabels: {app: s}", "matchLabels: {app: t}"),
    "not headless": ("clusterIP: None, ", ""),
    "names no Service": ("serviceName: s-headless", "serviceName: nope"),
    "no image": ("image: spt/worker-x:latest", "image: ''"),
    "resources.requests.memory": ("memory: 1Gi", "ephemeral-storage: 1Gi"),
    "no readinessProbe": ("readinessProbe: {tcpSocket: {port: grpc}}", "startupProbe: {tcpSocket: {port: 1}}"),
    "no livenessProbe": ("livenessProbe: {tcpSocket: {port: grpc}}", "startupProbe: {tcpSocket: {port: 1}}"),
    "is not a declared containerPort": ("livenessProbe: {tcpSocket: {port: grpc}}",
                                        "livenessProbe: {httpGet: {path: /, port: metrics}}"),
    "names no volume": ("volumeMounts: [{name: tok", "volumeMounts: [{name: tick"),
    "neither in the manifests nor documented": ("made-by-hand", "undocumented"),
    "no metadata.name": ("metadata: {name: s-headless}", "metadata: {}"),
    "targetPort grpc": ("ports: [{containerPort: 1, name: grpc}]", "ports: [{containerPort: 1, name: rpc}]"),
}


def self_test():
    def run(text):
        docs = [("t.yaml", d) for d in yaml.safe_load_all(text) if d is not None]
        return check(docs, " kubectl create secret generic made-by-hand --from-file=x\n",
                     {"worker-x": 'ENTRYPOINT ["/usr/local/bin/spt-worker", "--device", "cpu"]\n'})
    base = run(GOOD)
    if base:
        print("FAIL: the good manifest is refused:", *base, sep="\n  ")
        return 1
    bad = 0
    for rule, (old, new) in BREAKAGES.items():
        assert old in GOOD, old
        errs = run(GOOD.replace(old, new, 1))
        if not any(rule in e for e in errs):
            print(f"FAIL: breaking '{old}' -> '{new}' was not reported as '{rule}': {errs}")
            bad = 1
    print("PASS: self-test" if not bad else "")
    return bad


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    docs, comments, dockerfiles = load(Path(sys.argv[1]))
    errors = check(docs, comments, dockerfiles)
    for e in errors:
        print("FAIL:", e)
    if not errors:
        print(f"PASS: {len(docs)} documents in deploy/k8s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
