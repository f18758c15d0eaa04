#!/usr/bin/env python3
"""Check that the crate's module graph has no import cycle.

Reads every ``src/**/*.rs`` (without ``tests.rs`` files and ``#[cfg(test)]`` modules, comments
and string literals), collects the ``crate::``, ``super::`` and ``self::`` paths each module
names, resolves each to the longest module path that exists, and looks for cycles. A module's
use of its own submodules is not an edge (it declares them); a submodule's use of its parent
is. One registry may close a cycle, and its edges to what it registers are left out:
``format::registry``, the table of formats, names every format module (those that implement
``DumpFormat``), which implement the trait of ``format``.

Exit status 0 when the graph is acyclic, 1 (printing each cycle) otherwise.
Usage: tools/check_modules.py [SRC_DIR]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REGISTRY = "format::registry"


def module_of(src: Path, path: Path) -> str:
    """``src/a/b.rs`` -> ``a::b``; ``src/a/mod.rs`` -> ``a``; ``src/lib.rs`` -> ``crate``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod" or parts == ["lib"]:
        parts = parts[:-1]
    return "::".join(parts) or "crate"


def strip(code: str, keep_strings: bool = False) -> str:
    """The code without comments, and without string/char literals (kept as empty literals)
    unless `keep_strings`."""
    out = []
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
        elif code.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if code.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif code.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif m := re.match(r'b?r(#*)"', code[i:]):
            end = code.find('"' + m.group(1), i + m.end())
            stop = n if end < 0 else end + 1 + len(m.group(1))
            out.append(code[i:stop] if keep_strings else '""')
            i = stop
        elif c == '"' or (c == "b" and code.startswith('b"', i)):
            start = i
            i += 2 if c == "b" else 1
            while i < n and code[i] != '"':
                i += 2 if code[i] == "\\" else 1
            i += 1
            out.append(code[start:i] if keep_strings else '""')
        elif c == "'" and (m := re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'", code[i:])):
            out.append("' '")
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_modules(code: str) -> str:
    """Remove ``#[cfg(test)]`` items (``mod tests { ... }`` blocks and ``mod tests;``)."""
    while m := re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*([;{])", code):
        if m.group(3) == ";":
            code = code[: m.start()] + code[m.end() :]
            continue
        depth, i = 1, m.end()
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        code = code[: m.start()] + code[i:]
    return code


def expand(prefix: str, body: str) -> list[str]:
    """``a::{b, c::{d}}`` paths, flattened (``body`` is the text after ``prefix::{``)."""
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    paths = []
    for it in (s.strip() for s in items):
        if not it:
            continue
        if (k := it.find("::{")) >= 0:
            paths += expand(f"{prefix}::{it[:k]}", it[k + 3 :])
        else:
            paths.append(f"{prefix}::{it}")
    return paths


PATH = re.compile(r"(?<![\w:$])((?:crate|super|self)(?:::(?:super|\w+))*)(::\{)?")


def references(code: str) -> list[str]:
    refs = []
    for m in PATH.finditer(code):
        if m.group(2):
            refs += expand(m.group(1), code[m.end() :])
        else:
            refs.append(m.group(1))
    return refs


def resolve(ref: str, here: str, modules: set[str]) -> str | None:
    """The module `ref` (written in module `here`) names: its longest prefix that is one."""
    parts = [p.strip() for p in ref.split("::")]
    parts = [p.split(" as ")[0].strip() for p in parts]
    base = [] if here == "crate" else here.split("::")
    if parts[0] == "crate":
        cur, parts = [], parts[1:]
    else:
        cur = base[:]
        # `super` in a/b.rs names a; `self` names the file's own module.
        while parts and parts[0] in ("super", "self"):
            if parts.pop(0) == "super":
                if not cur:
                    return None
                cur = cur[:-1]
    best = "::".join(cur) or "crate"
    for p in parts:
        if p in ("self", "*"):
            break
        cur = cur + [p]
        name = "::".join(cur)
        if name in modules:
            best = name
        else:
            break
    return best


def graph(src: Path) -> tuple[dict[str, set[str]], set[str]]:
    files = [p for p in sorted(src.rglob("*.rs")) if p.name != "tests.rs"]
    modules = {module_of(src, p) for p in files}
    code = {module_of(src, p): drop_test_modules(strip(p.read_text())) for p in files}
    formats = {m for m, c in code.items() if re.search(r"\bimpl\s+(\w+::)*DumpFormat\s+for\b", c)}
    # A format module's ancestors are the format too (kdump for kdump::backend).
    formats |= {"::".join(m.split("::")[:k]) for m in formats for k in range(1, m.count("::") + 1)}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for here, c in code.items():
        for ref in references(c):
            to = resolve(ref, here, modules)
            if to is None or to == here or to == "crate":
                continue
            if here == "crate" or to.startswith(here + "::"):
                continue  # a module using its own submodules
            if here == REGISTRY and to in formats:
                continue  # the table of formats (the allowed registry -> formats edges)
            edges[here].add(to)
    return edges, formats


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
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
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    out = []
    for comp in comps:
        members = set(comp)
        # A shortest cycle through the component's first module (breadth-first).
        start = comp[0]
        prev: dict[str, str] = {}
        queue = [start]
        found = None
        while queue and found is None:
            nxt = []
            for v in queue:
                for w in sorted(edges[v] & members):
                    if w == start:
                        found = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found:
                    break
            queue = nxt
        path = [start]
        v = found
        while v is not None and v != start:
            path.insert(1, v)
            v = prev.get(v)
        out.append(path + [start])
    return out


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "src"
    edges, formats = graph(src)
    found = cycles(edges)
    n_edges = sum(len(e) for e in edges.values())
    if found:
        for c in found:
            print("import cycle: " + " -> ".join(c))
        print(f"{len(found)} import cycle(s) among {len(edges)} modules ({n_edges} edges)")
        return 1
    print(f"module graph: {len(edges)} modules, {n_edges} edges, no cycle (left out: {REGISTRY} -> {', '.join(sorted(formats))})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
