#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a circle.

    python3 scripts/lib/check_cycles.py [CRATE_SRC_DIR...]   (default: every workspace crate's src/)

Why: a cycle (server.rs imports the handlers, which import server.rs back for its State) means no
module of the circle can be understood, tested or moved without the others. The rule checked:
build the graph of modules (one node per file) with an edge wherever one module names an item
of another (`use` statements, `crate::`/`super::`/`self::` paths in code, and a child module's
name used in its parent), leave out the edges from a module to its own ancestors (a child using
what its parent defines for its children is one concept, not a cycle), and report every strongly
connected component of two or more modules. Exit status 1 if there is one.

It reads source text, not the compiler's resolution: a path it cannot resolve to a module file
resolves to the deepest module that exists on that path, which is what an item path does.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def strip_comments_and_strings(text: str) -> str:
    """Source without comments, string and char literals (they may hold `crate::` text)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            close = '"' + m.group(1)
            j = text.find(close, i + len(m.group(0)))
            i = n if j < 0 else j + len(close)
            out.append('""')
        elif c == '"' or (c == "b" and i + 1 < n and text[i + 1] == '"'):
            i += 2 if c == "b" else 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            i += len(m.group(0)) if m else 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Crate:
    def __init__(self, src: Path):
        self.src = src
        self.files: dict[tuple[str, ...], Path] = {}
        self.children: dict[tuple[str, ...], set[str]] = {}
        root = src / "lib.rs" if (src / "lib.rs").exists() else src / "main.rs"
        self.collect((), root)
        # A binary's main.rs beside a lib.rs is a crate of its own; its modules are checked too.
        if (src / "lib.rs").exists() and (src / "main.rs").exists():
            self.collect(("<bin>",), src / "main.rs")

    def collect(self, path: tuple[str, ...], file: Path) -> None:
        self.files[path] = file
        kids = set()
        text = strip_comments_and_strings(file.read_text())
        for m in re.finditer(r"(?:#\[path\s*=\s*\"\"\]\s*)?\bmod\s+(\w+)\s*;", text):
            name = m.group(1)
            base = file.parent if file.name in ("lib.rs", "main.rs", "mod.rs") else file.with_suffix("")
            for cand in (base / f"{name}.rs", base / name / "mod.rs"):
                if cand.exists():
                    kids.add(name)
                    self.collect(path + (name,), cand)
                    break
        self.children[path] = kids

    def resolve(self, segments: list[str]) -> tuple[str, ...]:
        """The deepest module on an absolute path (segments after `crate`)."""
        best: tuple[str, ...] = ()
        for k in range(1, len(segments) + 1):
            cand = tuple(segments[:k])
            if cand in self.files:
                best = cand
            else:
                break
        return best


def expand_use(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` → ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)

    def split_top(s: str) -> list[str]:
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def go(prefix: str, s: str) -> list[str]:
        i = s.find("{")
        if i < 0:
            return [prefix + s]
        head, inner = s[:i], s[i + 1 : s.rfind("}")]
        return [p for part in split_top(inner) for p in go(prefix + head, part)]

    return go("", tree)


def without_test_modules(text: str) -> str:
    """Source without inline `#[cfg(test)] mod x { ... }` blocks: tests may reach anywhere."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def module_edges(crate: Crate, here: tuple[str, ...]) -> set[tuple[str, ...]]:
    file = crate.files[here]
    text = without_test_modules(strip_comments_and_strings(file.read_text()))
    paths: list[str] = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths.extend(p.split(" as ")[0] for p in expand_use(m.group(1)))
    # Paths in code (not in `use`): crate::a::b, super::x, self::y, and child::item.
    for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", text):
        paths.append(m.group(1))
    for kid in crate.children.get(here, ()):
        if re.search(rf"(?<![\w:]){kid}::", text):
            paths.append(f"self::{kid}")
    targets = set()
    for p in paths:
        segs = [s for s in p.split("::") if s]
        if not segs:
            continue
        # Where this file's own module sits, for relative paths: a bin's modules are under <bin>.
        base = list(here)
        if segs[0] == "crate":
            abs_path = (["<bin>"] if here[:1] == ("<bin>",) else []) + segs[1:]
        elif segs[0] in ("super", "self"):
            cur = base
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    cur = cur[:-1]
                segs = segs[1:]
            abs_path = cur + segs
        elif segs[0] in crate.children.get(here, ()):
            abs_path = base + segs
        else:
            continue
        target = crate.resolve(abs_path)
        if target == here:
            continue
        # An edge to one's own ancestor is the child using its parent's shared items.
        if here[: len(target)] == target:
            continue
        targets.add(target)
    return targets


def cycles(crate: Crate) -> list[list[tuple[str, ...]]]:
    graph = {m: module_edges(crate, m) for m in crate.files}
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return out, graph


def self_test() -> int:
    """The checker finds a planted cycle and accepts its fix (so a green run means something)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "demo" / "src"
        (src / "handlers").mkdir(parents=True)
        (src / "lib.rs").write_text("pub mod server;\npub mod handlers;\n")
        (src / "server.rs").write_text("use crate::handlers::admin;\npub struct State;\n")
        (src / "handlers" / "mod.rs").write_text("pub mod admin;\n")
        (src / "handlers" / "admin.rs").write_text(
            "// crate::server in a comment is no edge\nfn f(s: &crate::server::State) { let _ = \"crate::x\"; }\n"
        )
        comps, _ = cycles(Crate(src))
        if [sorted("::".join(m) for m in c) for c in comps] != [["handlers::admin", "server"]]:
            print(f"self-test: expected the server <-> handlers::admin cycle, found {comps}")
            return 1
        (src / "handlers" / "admin.rs").write_text("fn f(s: &super::super::state::State) {}\n")
        (src / "state.rs").write_text("pub struct State;\n")
        (src / "lib.rs").write_text("pub mod server;\npub mod handlers;\npub mod state;\n")
        comps, _ = cycles(Crate(src))
        if comps:
            print(f"self-test: expected no cycle after the fix, found {comps}")
            return 1
    print("self-test: ok (a planted cycle is found, its fix passes)")
    return 0


def main(argv: list[str]) -> int:
    if argv == ["--self-test"]:
        return self_test()
    if argv:
        srcs = [Path(a) for a in argv]
    else:
        srcs = sorted(p.parent for p in ROOT.glob("*/src/lib.rs")) + sorted(
            p.parent for p in ROOT.glob("*/src/main.rs") if not (p.parent / "lib.rs").exists()
        )
    bad = 0
    for src in srcs:
        crate = Crate(src)
        comps, graph = cycles(crate)
        name = src.parent.name
        if not comps:
            print(f"ok: {name} ({len(crate.files)} modules, no import cycle)")
            continue
        for comp in comps:
            bad += 1
            print(f"CYCLE in {name}: " + " <-> ".join("::".join(m) or "crate" for m in comp))
            members = set(comp)
            for m in comp:
                for t in sorted(graph[m] & members):
                    print(f"    {crate.files[m]} -> {crate.files[t]}")
    if bad:
        print(f"{bad} import cycle(s): move what both sides need into a module below both.")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
