"""The checks of scripts/lib/deploy_check.sh that need to read the rendered manifests.

    deploy_check.py validate FILE...   every object against Kubernetes 1.30-1.34 (kubernetes-validate,
                                       strict: unknown fields are errors), and the Prometheus
                                       Operator's objects against its CRD models (cloudcoil)
    deploy_check.py agree FILE...      what the files must agree on: gateway.toml's paths, ports
                                       and drain deadline vs the Deployment; the PrometheusRule vs
                                       deploy/prometheus/rules.yml; the Dockerfile's toolchain vs
                                       rust-toolchain.toml
    deploy_check.py keyring FILE       runs the Deployment's keyring init container script with
                                       busybox sh on a copy of a Secret volume laid out as kubelet
                                       lays it out, and checks the copy is what the gateway accepts

Run with the deploy check venv's Python (PyYAML, kubernetes-validate, cloudcoil). Prints one
line per failure and exits 1 if there was any.
"""

import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSIONS = ["1.30", "1.31", "1.32", "1.33", "1.34"]
# Kinds kubernetes-validate has no schema for, and what checks them instead.
CRD_GROUP = "monitoring.coreos.com/"

failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL {message}")


def objects(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def name(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


# === validate ===


def validate(paths):
    import kubernetes_validate

    counted = 0
    for path in paths:
        for obj in objects(path):
            if obj["apiVersion"].startswith(CRD_GROUP):
                validate_crd_object(path, obj)
                counted += 1
                continue
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    where = ".".join(str(p) for p in e.path)
                    fail(f"{path}: {name(obj)} is invalid in Kubernetes {version}: {where}: {e.message}")
                except kubernetes_validate.SchemaNotFoundError:
                    # An unknown kind or a typo in apiVersion: kubernetes-validate only warns.
                    fail(f"{path}: {name(obj)}: Kubernetes {version} has no {obj['apiVersion']} {obj['kind']}")
            counted += 1
    print(f"validated {counted} objects in {len(paths)} files against Kubernetes {', '.join(KUBERNETES_VERSIONS)}")
    if counted == 0:
        fail("no objects to validate")


def validate_crd_object(path, obj):
    """The Prometheus Operator's objects, against pydantic models generated from its CRDs:
    types, required fields and patterns (durations, for instance). The models ignore unknown
    fields, so the object is dumped back and every key that did not survive is reported."""
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, obj["kind"], None)
    if model is None or obj["apiVersion"] != "monitoring.coreos.com/v1":
        fail(f"{path}: {name(obj)}: no model for {obj['apiVersion']} {obj['kind']}")
        return
    try:
        parsed = model.model_validate(obj)
    except Exception as e:  # pydantic.ValidationError, with every problem listed
        fail(f"{path}: {name(obj)} does not match the {obj['kind']} CRD: {e}")
        return
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    for key in dropped_keys(obj, kept, obj["kind"]):
        fail(f"{path}: {name(obj)}: unknown field {key}")


def dropped_keys(given, kept, where):
    if isinstance(given, dict):
        for key, value in given.items():
            if not isinstance(kept, dict) or key not in kept:
                yield f"{where}.{key}"
            else:
                yield from dropped_keys(value, kept[key], f"{where}.{key}")
    elif isinstance(given, list):
        for i, value in enumerate(given):
            other = kept[i] if isinstance(kept, list) and i < len(kept) else None
            yield from dropped_keys(value, other, f"{where}[{i}]")


# === agree ===


def agree(paths):
    for path in paths:
        agree_rendering(path, objects(path))
    agree_dockerfile()
    if not failures:
        print(f"{len(paths)} rendering(s): ports, probes, mounts and drain budget match gateway.toml; selectors "
              "select the gateway's pods and NetworkPolicy peers do not; "
              "PrometheusRule matches rules.yml; Dockerfile's Rust matches rust-toolchain.toml")


def agree_rendering(path, objs):
    deployment = one(path, objs, "Deployment", "kubetape-gateway")
    config_map = next((o for o in objs if o["kind"] == "ConfigMap" and "gateway.toml" in o.get("data", {})), None)
    if deployment is None or config_map is None:
        fail(f"{path}: no kubetape-gateway Deployment or no ConfigMap with gateway.toml")
        return
    config = tomllib.loads(config_map["data"]["gateway.toml"])
    pod = deployment["spec"]["template"]["spec"]
    gateway = next((c for c in pod["containers"] if c["name"] == "gateway"), None)
    if gateway is None:
        fail(f"{path}: the Deployment has no container `gateway`")
        return
    ports = {p["name"]: p["containerPort"] for p in gateway.get("ports", [])}

    # Ports: what the gateway listens on is what Kubernetes sends traffic and probes to.
    for key, port_name in [(("listen",), "https"), (("ops", "listen"), "ops")]:
        value = dig(config, key)
        want = ports.get(port_name)
        if value is None or want is None or not str(value).endswith(f":{want}"):
            fail(f"{path}: gateway.toml {'.'.join(key)} = {value!r} but container port {port_name} is {want}")
    for probe, route in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = gateway.get(probe, {}).get("httpGet", {})
        if get.get("port") != "ops" or get.get("path") != route:
            fail(f"{path}: {probe} must GET {route} on port ops, not {get}")

    # The drain: kubelet must not SIGKILL a gateway that is still inside its deadline.
    drain = dig(config, ("server", "drain_deadline_secs"))
    drain = 25 if drain is None else drain
    pre_stop = dig(gateway, ("lifecycle", "preStop", "sleep", "seconds")) or 0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < pre_stop + drain + 5:
        fail(
            f"{path}: terminationGracePeriodSeconds {grace} < preStop sleep {pre_stop} + "
            f"drain_deadline_secs {drain} + 5 s margin"
        )

    # Every file and directory gateway.toml names is mounted, from the right kind of volume.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = gateway.get("volumeMounts", [])

    def mounted(file_path, kinds, read_only):
        best = max(
            (m for m in mounts if file_path == m["mountPath"] or file_path.startswith(m["mountPath"].rstrip("/") + "/")),
            key=lambda m: len(m["mountPath"]),
            default=None,
        )
        if best is None:
            return f"nothing is mounted at {file_path}"
        volume = volumes.get(best["name"], {})
        kind = next((k for k in kinds if k in volume), None)
        if kind is None:
            return f"{file_path} is on volume {best['name']}, which is not of kind {' or '.join(kinds)}"
        if read_only is not None and bool(best.get("readOnly")) != read_only:
            return f"{file_path} must be mounted {'read-only' if read_only else 'writable'}"
        return None

    checks = [
        (config.get("policy"), ["configMap"], True),
        (dig(config, ("tls", "cert")), ["secret"], True),
        (dig(config, ("tls", "key")), ["secret"], True),
        (dig(config, ("recording", "keys")), ["emptyDir"], True),
        (dig(config, ("recording", "spool_dir")), ["emptyDir"], False),
    ]
    for file_path, kinds, read_only in checks:
        if file_path is None:
            fail(f"{path}: gateway.toml does not set a path the Deployment provides ({kinds})")
            continue
        problem = mounted(file_path, kinds, read_only)
        if problem:
            fail(f"{path}: {problem}")
    if config.get("upstream", {}).get("kubeconfig"):
        fail(f"{path}: gateway.toml sets [upstream] kubeconfig; in the cluster the gateway uses its service account")

    # The keys Secret never reaches the gateway container itself (kubelet's fsGroup bits would
    # make the gateway refuse the keys; the init container makes 0400 copies).
    for mount in mounts:
        secret = volumes.get(mount["name"], {}).get("secret", {})
        if secret.get("secretName") == "kubetape-keys":
            fail(f"{path}: the gateway container mounts the kubetape-keys Secret directly")

    # Selectors: everything meant for the gateway's pods selects them, and no NetworkPolicy peer
    # carries the gateway's own labels (kustomize's includeSelectors once wrote them into the DNS
    # rule's kube-dns selector, which then selected nothing).
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    own = {k: v for k, v in pod_labels.items() if k in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")}

    def selects(selector):
        return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())

    wanted = [("Deployment selector", deployment["spec"]["selector"].get("matchLabels"))]
    wanted += [
        (f"topologySpreadConstraints[{i}]", c.get("labelSelector", {}).get("matchLabels"))
        for i, c in enumerate(pod.get("topologySpreadConstraints", []))
    ]
    for obj in objs:
        spec = obj.get("spec", {})
        if obj["kind"] == "Service":
            wanted.append((name(obj), spec.get("selector")))
        elif obj["kind"] in ("PodDisruptionBudget", "PodMonitor"):
            wanted.append((name(obj), spec.get("selector", {}).get("matchLabels")))
        elif obj["kind"] == "NetworkPolicy":
            wanted.append((name(obj), spec.get("podSelector", {}).get("matchLabels")))
            peers = [p for r in spec.get("ingress", []) for p in r.get("from", [])]
            peers += [p for r in spec.get("egress", []) for p in r.get("to", [])]
            for peer in peers:
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                if any(labels.get(k) == v for k, v in own.items()):
                    fail(f"{path}: {name(obj)} has a peer selecting {labels}, which carries the gateway's own labels")
    for what, selector in wanted:
        if not selects(selector):
            fail(f"{path}: {what} ({selector}) does not select the gateway's pods ({pod_labels})")

    # The alert rules the Operator gets are the ones promtool checked and tested.
    rule = one(path, objs, "PrometheusRule", "kubetape-gateway", required=False)
    if rule is not None:
        with open(ROOT / "deploy/prometheus/rules.yml") as f:
            plain = yaml.safe_load(f)
        if rule["spec"]["groups"] != plain["groups"]:
            fail(
                f"{path}: PrometheusRule kubetape-gateway differs from deploy/prometheus/rules.yml; "
                "copy the groups of rules.yml under spec: in deploy/components/monitoring/prometheusrule.yaml"
            )


def agree_dockerfile():
    dockerfile = (ROOT / "Dockerfile").read_text()
    toolchain = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    match = re.search(r"^ARG RUST_VERSION=(\S+)$", dockerfile, re.M)
    if match is None or match.group(1) != toolchain:
        found = match.group(1) if match else "none"
        fail(f"Dockerfile builds with Rust {found} but rust-toolchain.toml pins {toolchain}")


# === keyring ===

GATEWAY_UID = 65532
SECRET_MOUNT = "/run/kubetape/keys-secret"
KEYRING_MOUNT = "/run/kubetape/keyring"
KEYS = {
    "kek-20260101T000000.000001Z-0a1b2c3d.key": "kubetape-kek-v1 " + "ab" * 32 + "\n",
    "signing-20260101T000000.000002Z-4e5f6a7b.key": "kubetape-ed25519-secret-v1 " + "cd" * 32 + "\n",
    "signing-20260101T000000.000002Z-4e5f6a7b.pub": "kubetape-ed25519-v1 signing-x " + "ef" * 32 + "\n",
}


def keyring(paths):
    """The init container's script, run for real (busybox sh, as the gateway's uid when this runs
    as root) against what kubelet would mount: the Secret's files behind ..data symlinks, mode
    0440, group fsGroup; the emptyDir mode 2777, group fsGroup. The copy must hold every file as
    a regular file owned by the gateway's uid that group and others cannot read (the gateway's
    rule, storage-schema/src/keys.rs), follow the Secret on a second run (a pod sandbox restarted
    with the emptyDir kept, the Secret changed meanwhile), and the script must refuse a Secret without a KEK or a signing key."""
    import os
    import shutil
    import subprocess
    import tempfile

    for path in paths:
        deployment = one(path, objects(path), "Deployment", "kubetape-gateway")
        if deployment is None:
            continue
        inits = [c for c in deployment["spec"]["template"]["spec"].get("initContainers", []) if c["name"] == "keyring"]
        if len(inits) != 1 or inits[0]["command"][:2] != ["/bin/sh", "-c"]:
            fail(f"{path}: no keyring init container running /bin/sh -c SCRIPT")
            continue
        script = inits[0]["command"][2]
        as_root = os.geteuid() == 0
        with tempfile.TemporaryDirectory(prefix="kubetape-keyring-") as tmp:
            os.chmod(tmp, 0o755)  # the gateway's uid walks through it, as through kubelet's pod dirs

            def run(files):
                secret, copy = f"{tmp}/secret", f"{tmp}/keyring"
                shutil.rmtree(secret, ignore_errors=True)
                stamp = f"{secret}/..2026_01_01_00_00_00.000000001"
                os.makedirs(stamp)
                for file_name, text in files.items():
                    with open(f"{stamp}/{file_name}", "w") as f:
                        f.write(text)
                    os.chmod(f"{stamp}/{file_name}", 0o440)
                    os.symlink(f"..data/{file_name}", f"{secret}/{file_name}")
                os.symlink(os.path.basename(stamp), f"{secret}/..data")
                os.makedirs(copy, exist_ok=True)
                os.chmod(copy, 0o2777)
                if as_root:
                    for d, _, names in os.walk(secret):
                        for n in [d, *(os.path.join(d, x) for x in names)]:
                            os.lchown(n, 0, GATEWAY_UID)
                    os.chown(copy, 0, GATEWAY_UID)
                    os.chmod(copy, 0o2777)
                argv = ["busybox", "sh", "-c", script.replace(SECRET_MOUNT, secret).replace(KEYRING_MOUNT, copy)]
                if as_root:
                    argv = ["setpriv", f"--reuid={GATEWAY_UID}", f"--regid={GATEWAY_UID}", "--clear-groups", *argv]
                return subprocess.run(argv, capture_output=True, text=True), copy

            # The restart's Secret has lost a key the first start copied (an operator withdrew
            # it): the copy must lose it too.
            withdrawn = {**KEYS, "kek-20250101T000000.000001Z-99999999.key": "kubetape-kek-v1 " + "99" * 32 + "\n"}
            for attempt, secret_files in (("first start", withdrawn), ("restart with the copy kept", KEYS)):
                result, copy = run(secret_files)
                if result.returncode != 0:
                    fail(f"{path}: keyring script failed on its {attempt}: {result.stderr.strip()}")
                    break
                if sorted(os.listdir(copy)) != sorted(secret_files):
                    fail(f"{path}: after the {attempt} the keyring copy holds {sorted(os.listdir(copy))}, "
                         f"expected {sorted(secret_files)}")
                for file_name, text in secret_files.items():
                    st = os.lstat(f"{copy}/{file_name}")
                    if not os.path.isfile(f"{copy}/{file_name}") or os.path.islink(f"{copy}/{file_name}"):
                        fail(f"{path}: keyring copy {file_name} is not a regular file")
                    elif st.st_mode & 0o077:
                        fail(f"{path}: keyring copy {file_name} has mode {st.st_mode & 0o777:o}; the gateway refuses it")
                    elif as_root and st.st_uid != GATEWAY_UID:
                        fail(f"{path}: keyring copy {file_name} is owned by uid {st.st_uid}, not the gateway's")
                    elif open(f"{copy}/{file_name}").read() != text:
                        fail(f"{path}: keyring copy {file_name} differs from the Secret's")
            for missing in ("kek-", "signing-"):
                files = {k: v for k, v in KEYS.items() if not (k.startswith(missing) and k.endswith(".key"))}
                shutil.rmtree(f"{tmp}/keyring")
                result, _ = run(files)
                if result.returncode == 0 or f"no {missing.rstrip('-')}-*.key" not in result.stderr:
                    fail(f"{path}: keyring script accepted a Secret without a {missing}*.key: {result.stderr.strip()}")
        if not failures:
            who = f"as uid {GATEWAY_UID}" if as_root else "as this user (not root: ownership not checked)"
            print(f"{path}: keyring init script ({who}) copies the Secret as 0400 files, follows it on a restart, "
                  "and refuses a Secret without a KEK or a signing key")


def one(path, objs, kind, obj_name, required=True):
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == obj_name]
    if len(found) != 1:
        if required or found:
            fail(f"{path}: expected one {kind}/{obj_name}, found {len(found)}")
        return None
    return found[0]


def dig(mapping, keys):
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def main():
    commands = {"validate": validate, "agree": agree, "keyring": keyring}
    if len(sys.argv) < 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
