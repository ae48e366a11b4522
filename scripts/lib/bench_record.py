#!/usr/bin/env python3
"""Recording overhead of `kubetape record`, compared in the same run with:

  a   PTY floor      script -q -c 'seq 1 N' /dev/null
  a2  2-PTY floor    script -q -c "script -q -c 'seq 1 N' /dev/null" /dev/null
  b   script -T      script -q -T TIMING -c 'seq 1 N' TYPESCRIPT
  c   asciinema rec  script -q -c "asciinema rec --overwrite -q -c 'seq 1 N' FILE.cast" /dev/null
  d   kubetape       target/release/kubetape --store file://STORE --keys KEYS record -- seq 1 N

b and d are compared with a; c with a2 (see below).

Run it through scripts/bench-record, which installs asciinema first. Every variant
gets stdin from /dev/null and stdout to /dev/null; stderr goes to a file that is
shown when a run fails. The variants run interleaved (a b c d a b c d ...) so they
share the machine's noise; one untimed warm-up round first (page cache, key
generation) unless --warmup 0.

Why asciinema runs inside `script`: asciinema 2.x records fine with stdin from
/dev/null (it only makes stdin raw when stdin is a TTY), but it never writes the
terminal output to its stdout: it opens /dev/tty for that, and falls back to
/dev/null when there is no controlling terminal (asciinema/recorder.py, tty_fds).
Run bare, it would either spray 15 MB onto the terminal of whoever runs the bench
or skip passing the output on at all, which the other recorders must pay for. So
it runs under an outer `script`, whose PTY becomes its /dev/tty and whose stdout
is /dev/null like everyone else's; to keep that fair its ratio is taken against
a2, the same two nested PTYs with no recorder. kubetape writes to its stdout, so
b and d keep the one-PTY floor a.

a-c go through `$SHELL -c 'seq 1 N'` (that is how script and asciinema take a
command); d execs seq directly, as kubetape's own command line does. The extra
shell costs a few milliseconds, well under 1% of a run of the default size.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
TARGET_RATIO = 1.03
TARGET_STORED = 0.10


@dataclass
class Variant:
    key: str
    label: str
    argv: Callable[[], list[str]]
    floor: Optional["Variant"] = None  # the floor its time is divided by; None for floors
    stored: Optional[Callable[[], int]] = None  # bytes kept by the recorder after a run
    before: Optional[Callable[[], None]] = None  # untimed reset before each run
    env: Optional[dict] = None
    skip: Optional[str] = None  # why the variant is not measured
    error: Optional[str] = None  # why it stopped being measured
    times: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    last_stderr: str = ""
    out_bytes: Optional[int] = None  # stdout bytes, counted in the warm-up

    @property
    def active(self) -> bool:
        return self.skip is None and self.error is None


def rm(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_once(v: Variant, errfile: Path, count_stdout: bool = False) -> None:
    """One run of v. With count_stdout (warm-up only) its stdout is counted
    instead of going to /dev/null, to check that it really passed the output on."""
    if v.before:
        v.before()
    with open(errfile, "wb") as err:
        t0 = time.perf_counter()
        if count_stdout:
            proc = subprocess.Popen(v.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err, env=v.env)
            assert proc.stdout is not None
            n = 0
            while chunk := proc.stdout.read(1 << 20):
                n += len(chunk)
            rc = proc.wait()
            v.out_bytes = n
        else:
            rc = subprocess.run(v.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env=v.env).returncode
        dt = time.perf_counter() - t0
    v.last_stderr = errfile.read_text(errors="replace")
    if rc != 0:
        v.error = f"exit status {rc}" + (
            f"; its stderr ends with:\n{tail(v.last_stderr)}" if v.last_stderr.strip() else "")
        return
    if count_stdout and v.out_bytes == 0:
        v.error = "it wrote no terminal output to its stdout"
        return
    size = v.stored() if v.stored else None
    if size == 0:
        v.error = "it exited 0 but stored nothing"
        return
    v.times.append(dt)
    if size is not None:
        v.sizes.append(size)


def raw_bytes(lines: int, have_script: bool) -> tuple[int, str]:
    """Bytes of terminal output: what the PTY hands on (it turns \\n into \\r\\n)."""
    if have_script:
        proc = subprocess.Popen(["script", "-q", "-c", f"seq 1 {lines}", "/dev/null"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        n = 0
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            n += len(chunk)
        if proc.wait() == 0 and n:
            return n, f"script -q -c 'seq 1 {lines}' /dev/null | wc -c"
    # Without script: every number plus "\r\n".
    n = sum(len(str(i)) + 2 for i in range(1, lines + 1))
    return n, "computed: digits + \\r\\n per line"


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return ""


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench-record",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per variant (default 5)")
    ap.add_argument("--lines", type=int, default=2_000_000, help="seq 1 LINES (default 2000000)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--kubetape", type=Path,
                    default=Path(os.environ.get("KUBETAPE_BIN", ROOT / "target/release/kubetape")),
                    help="kubetape binary (default target/release/kubetape, or $KUBETAPE_BIN)")
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 unless kubetape/floor <= {TARGET_RATIO} and stored/raw <= {TARGET_STORED}")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    if args.runs < 1 or args.lines < 1 or args.warmup < 0:
        ap.error("--runs and --lines must be >= 1, --warmup >= 0")

    lines = args.lines
    cmd = f"seq 1 {lines}"
    tmp = Path(tempfile.mkdtemp(prefix="kubetape-bench-"))
    try:
        # ---- the variants -------------------------------------------------
        script = shutil.which("script")
        script_help = subprocess.run(["script", "--help"], capture_output=True,
                                     text=True).stdout if script else ""
        no_script = "util-linux `script` not found (apt-get install bsdutils)"

        floor = Variant("a", "PTY floor: script", lambda: ["script", "-q", "-c", cmd, "/dev/null"],
                        skip=None if script else no_script)
        inner = shlex.join(["script", "-q", "-c", cmd, "/dev/null"])
        floor2 = Variant("a2", "2-PTY floor: script in script",
                         lambda: ["script", "-q", "-c", inner, "/dev/null"],
                         skip=None if script else no_script)

        timing, typescript = tmp / "b.timing", tmp / "b.typescript"
        script_t = Variant(
            "b", "script -T (typescript+timing)",
            lambda: ["script", "-q", "-T", str(timing), "-c", cmd, str(typescript)],
            floor=floor,
            stored=lambda: timing.stat().st_size + typescript.stat().st_size,
            before=lambda: [rm(p) for p in (timing, typescript)] and None,
            skip=None if script and "--log-timing" in script_help else
            (no_script if not script else "this `script` has no -T/--log-timing (util-linux >= 2.35 has)"))

        asciinema = os.environ.get("KT_BENCH_ASCIINEMA") or ""
        if not (asciinema and os.access(asciinema, os.X_OK)):
            asciinema = shutil.which("asciinema") or ""
        cast = tmp / "c.cast"
        asc_version = tool_version([asciinema, "--version"]) if asciinema else ""
        asc_env = dict(os.environ, ASCIINEMA_CONFIG_HOME=str(tmp / "asciinema-config"))
        asc_cmd = shlex.join([asciinema, "rec", "--overwrite", "-q", "-c", cmd, str(cast)])
        asc = Variant(
            "c", f"{asc_version or 'asciinema'} rec (.cast)",
            lambda: ["script", "-q", "-c", asc_cmd, "/dev/null"],
            floor=floor2,
            stored=lambda: cast.stat().st_size,
            before=lambda: rm(cast),
            env=asc_env,
            skip=(no_script if not script else None) if asciinema else
            "asciinema not found (scripts/bench-record installs it into target/test-env/venv; did that fail?)")

        kt_bin = args.kubetape if args.kubetape.is_absolute() else ROOT / args.kubetape
        store, keys = tmp / "store", tmp / "keys"
        keys.mkdir(mode=0o700)
        kt = Variant(
            "d", "kubetape record (store dir)",
            lambda: [str(kt_bin), "--store", f"file://{store}", "--keys", str(keys),
                     "record", "--", "seq", "1", str(lines)],
            floor=floor,
            stored=lambda: tree_size(store),
            before=lambda: rm(store),
            skip=None if kt_bin.is_file() and os.access(kt_bin, os.X_OK) else
            f"{kt_bin} not found: build it first with `cargo build --release -p player`")

        variants = [floor, floor2, script_t, asc, kt]
        for v in variants:
            if v.skip:
                print(f"skipping {v.key} ({v.label}): {v.skip}", file=sys.stderr)

        raw, raw_how = raw_bytes(lines, bool(script))

        # ---- interleaved runs ------------------------------------------------
        total = args.warmup + args.runs
        for rnd in range(total):
            warm = rnd < args.warmup
            tag = f"warm-up {rnd + 1}/{args.warmup}" if warm else f"run {rnd - args.warmup + 1}/{args.runs}"
            parts = []
            for v in variants:
                if not v.active:
                    continue
                n = len(v.times)
                run_once(v, tmp / f"{v.key}.stderr", count_stdout=warm)
                if v.error:
                    print(f"variant {v.key} ({v.label}) failed, dropping it: {v.error}", file=sys.stderr)
                    parts.append(f"{v.key} FAILED")
                    continue
                if warm:  # keep the run's checks, drop its numbers
                    del v.times[n:]
                    del v.sizes[n:]
                    parts.append(f"{v.key} ok")
                else:
                    parts.append(f"{v.key} {v.times[-1]:.3f}s")
            print(f"{tag}: " + "  ".join(parts), file=sys.stderr, flush=True)

        # ---- report ------------------------------------------------------------
        def median_of(v: Optional[Variant]) -> Optional[float]:
            return statistics.median(v.times) if v and v.active and v.times else None

        floor_med = median_of(floor)
        print()
        print(f"Recording overhead: {cmd} in a PTY, {args.runs} interleaved run{'s' if args.runs != 1 else ''} per variant"
              f" ({args.warmup} warm-up round{'s' if args.warmup != 1 else ''} not counted)")
        print(f"raw terminal output: {raw:,} bytes ({raw_how})")
        print()
        head = f"{'variant':<40} {'median s':>9} {'min s':>8} {'/ floor':>11} {'stored bytes':>14} {'stored/raw':>11}"
        print(head)
        print("-" * len(head))
        for v in variants:
            name = f"{v.key:<3} {v.label}"
            if not v.times or not v.active:
                why = v.skip or v.error or "no runs"
                print(f"{name:<40} {'not measured: ' + why.splitlines()[0]}")
                continue
            med, mn = statistics.median(v.times), min(v.times)
            base = median_of(v.floor or v)
            ratio = f"{med / base:.3f} {v.floor.key if v.floor else v.key:<2}" if base else "-"
            if v.sizes:
                size = int(statistics.median(v.sizes))
                size_s, sr = f"{size:,}", f"{size / raw:.3f}"
            else:
                size_s, sr = "-", "-"
            print(f"{name:<40} {med:>9.3f} {mn:>8.3f} {ratio:>11} {size_s:>14} {sr:>11}")
        print("/ floor: median over the median of the floor named after it. c runs inside `script`\n"
              "because asciinema 2.x writes the output to /dev/tty, not stdout, so it is held against a2.")
        print()

        for v in variants:
            if v.active and v.out_bytes is not None and abs(v.out_bytes - raw) > raw // 100:
                print(f"note: {v.key} passed {v.out_bytes:,} bytes of terminal output to its stdout "
                      f"in the warm-up; the raw output is {raw:,}")
        if kt.times and kt.active:
            sid = next((l.strip() for l in reversed(kt.last_stderr.splitlines()) if l.strip()), "")
            if sid:
                print(f"kubetape session id (last run): {sid}")
        if floor_med and kt.times and kt.active and kt.sizes:
            ratio = statistics.median(kt.times) / floor_med
            stored = statistics.median(kt.sizes) / raw
            print(f"kubetape record / PTY floor = {ratio:.3f} (target <= {TARGET_RATIO}); "
                  f"stored/raw = {stored:.3f} (target <= {TARGET_STORED:.2f})")
            if args.check and (ratio > TARGET_RATIO or stored > TARGET_STORED):
                print("targets missed", file=sys.stderr)
                return 1
            return 0
        why = []
        if not floor_med:
            why.append(f"PTY floor {floor.skip or floor.error or 'not measured'}")
        if not (kt.times and kt.active):
            why.append((kt.skip or f"kubetape record: {kt.error or 'not measured'}").splitlines()[0])
        print(f"kubetape record / PTY floor = n/a ({'; '.join(why)})")
        return 2
    finally:
        if args.keep:
            print(f"scratch files kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
