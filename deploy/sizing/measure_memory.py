"""Memory of a gateway per live session: the figures behind the Deployment's memory request and
limit (docs/operations.md, "Sizing").

    cargo build --release -p gateway --bin kubetape-gateway
    python3 deploy/sizing/measure_memory.py [--idle 100] [--busy 10] [--busy-mb 64]

It runs `kubetape-gateway quickstart` (the gateway with an in-process sandbox cluster, recording
to a directory) in a temporary directory, then drives it with real kubectl (the Cloud SDK's
1.33):

1. baseline: resident memory after one short exec (TLS, policy, keyring, recorder warmed up);
2. idle: N sessions `kubectl exec -i demo -- cat` that stay open without typing; resident memory
   once the store shows all N recordings open, divided by N;
3. busy: M sessions at once, each printing MB of log-like text (`seq`), as fast as kubectl
   reads; the process's peak resident memory (VmHWM) over the baseline, divided by M.

The sandbox cluster and its API server run in the same process, so every figure is an upper
bound for the gateway alone. Pod processes and kubectl are separate processes and not counted.
Everything it starts is stopped on the way out, however it exits.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "target/release/kubetape-gateway"
KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"


def status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def wait_for(what, condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def open_sessions(store):
    """Exec recordings with metadata and no seal: sessions the gateway holds open (its audit
    stream is a recording too, and stays open while it runs)."""
    sessions = store / "sessions"
    if not sessions.is_dir():
        return 0
    count = 0
    for d in sessions.iterdir():
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            continue  # not written yet
        if meta.get("kind") == "exec" and not (d / "seal.json").exists():
            count += 1
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=100, help="idle sessions held open")
    parser.add_argument("--busy", type=int, default=10, help="concurrent sessions printing output")
    parser.add_argument("--busy-mb", type=int, default=64, help="MB each busy session prints")
    args = parser.parse_args()
    if not GATEWAY.exists():
        sys.exit(f"{GATEWAY} is missing: cargo build --release -p gateway --bin kubetape-gateway")

    children = []
    with tempfile.TemporaryDirectory(prefix="kubetape-measure-") as tmp:
        tmp = Path(tmp)
        store = tmp / "store"
        try:
            gateway = subprocess.Popen(
                [GATEWAY, "quickstart", "--dir", tmp / "qs", "--store", f"file://{store}", "--keys", tmp / "keys"],
                stdout=open(tmp / "quickstart.log", "w"),
                stderr=subprocess.STDOUT,
                env={**os.environ, "HOME": str(tmp), "KUBETAPE_LOG": "warn"},
                start_new_session=True,
            )
            children.append(gateway)
            kubeconfig = tmp / "qs/kubeconfig"
            env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp)}
            wait_for("the quickstart's kubeconfig", kubeconfig.exists, 60)

            def kubectl(*argv, **kw):
                return subprocess.run([KUBECTL, *argv], env=env, check=True, capture_output=True, **kw)

            wait_for(
                "the gateway to serve",
                lambda: subprocess.run([KUBECTL, "get", "pods"], env=env, capture_output=True).returncode == 0,
                60,
            )
            kubectl("exec", "demo", "--", "true")
            time.sleep(1)  # the warm-up session's recorder flushes and seals
            base = status_kib(gateway.pid, "VmRSS")
            print(f"baseline: {base / 1024:.1f} MiB resident")

            idle = []
            for _ in range(args.idle):
                p = subprocess.Popen(
                    [KUBECTL, "exec", "-i", "demo", "--", "cat"],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                children.append(p)
                idle.append(p)
            wait_for(f"{args.idle} open recordings", lambda: open_sessions(store) >= args.idle, 300)
            time.sleep(3)  # every session's first flush interval has passed
            rss = status_kib(gateway.pid, "VmRSS")
            per = (rss - base) / args.idle
            print(f"idle: {args.idle} sessions, {rss / 1024:.1f} MiB resident, {per:.0f} KiB per session")
            for p in idle:
                p.stdin.close()
            for p in idle:
                p.wait(timeout=60)
            wait_for("the idle sessions to be sealed", lambda: open_sessions(store) == 0, 120)

            before_busy = status_kib(gateway.pid, "VmHWM")
            lines = args.busy_mb * 1_000_000 // 8  # `seq` prints ~8 bytes a line at these sizes
            busy = [
                subprocess.Popen(
                    [KUBECTL, "exec", "demo", "--", "seq", "1", str(lines)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                for _ in range(args.busy)
            ]
            children.extend(busy)
            started = time.monotonic()
            for p in busy:
                if p.wait(timeout=600) != 0:
                    raise RuntimeError("a busy session failed")
            took = time.monotonic() - started
            peak = status_kib(gateway.pid, "VmHWM")
            print(
                f"busy: {args.busy} sessions x {args.busy_mb} MB in {took:.1f} s; peak {peak / 1024:.1f} MiB resident "
                f"({(peak - base) / args.busy / 1024:.1f} MiB per session over the baseline; "
                f"peak before this phase {before_busy / 1024:.1f} MiB)"
            )
        finally:
            for p in reversed(children):
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            for p in reversed(children):
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()


if __name__ == "__main__":
    main()
