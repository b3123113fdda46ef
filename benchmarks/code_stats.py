"""Structure figures for mono_depth_ros/ and training/ (issue 12's before/after table).

    python benchmarks/code_stats.py            # tables: largest files, longest functions, most complex,
                                               # function-level imports, import circles, upward imports
    python benchmarks/code_stats.py --check    # exit 1 if a function is over 80 lines or complexity 20

Cyclomatic complexity is radon's (`radon.complexity.cc_visit`; `pip install radon`). Function length is
the number of source lines from `def` to the last line of the body (decorators excluded). Imports are
read from the code (module level and inside functions); a circle is a strongly connected component of
the module import graph; an upward import is one from the core or bag/ into ros/, or from the package
into training/.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mono_depth_ros", "training")
MAX_LINES, MAX_CC = 80, 20


def _modules() -> Dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def _resolve(module: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(mods: Dict[str, Path]) -> Tuple[Dict[str, Set[str]], int, int]:
    graph: Dict[str, Set[str]] = defaultdict(set)
    total = inside = 0
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        in_func = {id(n) for f in funcs for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node, path.name == "__init__.py")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            total += 1
            inside += id(node) in in_func
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph, total, inside


def _circles(graph: Dict[str, Set[str]], nodes: List[str]) -> List[List[str]]:
    """Tarjan's strongly connected components of size > 1."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def _layer(mod: str) -> str:
    if mod.startswith("training"):
        return "training"
    if mod.startswith("mono_depth_ros.ros"):
        return "ros"
    if mod.startswith("mono_depth_ros.bag"):
        return "bag"
    return "core"


def _functions(mods: Dict[str, Path]) -> List[Tuple[str, int, int]]:
    """(qualified name, lines, complexity) for every function and method."""
    try:
        from radon.complexity import cc_visit
    except ImportError:
        sys.exit("benchmarks/code_stats.py needs radon: pip install radon")
    rows = []
    seen: Set[Tuple[str, int]] = set()
    for name, path in mods.items():
        for block in cc_visit(path.read_text()):
            items = [block] + list(getattr(block, "methods", []) or [])
            for b in items:
                if type(b).__name__ == "Class":
                    continue
                qual = f"{name}:{b.classname + '.' if getattr(b, 'classname', None) else ''}{b.name}"
                if (qual, b.lineno) in seen:  # cc_visit lists methods both on their class and flat
                    continue
                seen.add((qual, b.lineno))
                rows.append((qual, b.endline - b.lineno + 1, b.complexity))
                for c in getattr(b, "closures", []) or []:
                    rows.append((f"{qual}.{c.name}", c.endline - c.lineno + 1, c.complexity))
    return rows


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    ap.add_argument("--check", action="store_true", help=f"exit 1 on functions over {MAX_LINES} lines or "
                    f"complexity {MAX_CC}")
    args = ap.parse_args(argv)
    mods = _modules()
    sizes = sorted(((len(p.read_text().splitlines()), n) for n, p in mods.items()), reverse=True)
    funcs = _functions(mods)
    graph, total, inside = _imports(mods)
    circles = _circles(graph, sorted(mods))
    upward = sorted((a, b) for a, bs in graph.items() for b in bs
                    if (_layer(b) == "ros" and _layer(a) in ("core", "bag"))
                    or (_layer(b) == "training" and _layer(a) != "training"))

    print(f"## Largest files (of {len(mods)} modules)\n\n| lines | module |\n|---|---|")
    for n, m in sizes[: args.top]:
        print(f"| {n} | {m} |")
    print("\n## Longest functions\n\n| lines | complexity | function |\n|---|---|---|")
    for q, n, c in sorted(funcs, key=lambda r: -r[1])[: args.top]:
        print(f"| {n} | {c} | {q} |")
    print("\n## Most complex functions (radon)\n\n| complexity | lines | function |\n|---|---|---|")
    for q, n, c in sorted(funcs, key=lambda r: -r[2])[: args.top]:
        print(f"| {c} | {n} | {q} |")
    over = [(q, n, c) for q, n, c in funcs if n > MAX_LINES or c > MAX_CC]
    print(f"\n## Summary\n\n- functions over {MAX_LINES} lines or complexity {MAX_CC}: {len(over)} of {len(funcs)}")
    print(f"- imports inside functions: {inside} of {total}")
    print(f"- import circles: {len(circles)}" + "".join(f"\n  - {' <-> '.join(c)}" for c in circles))
    print(f"- upward imports (core/bag -> ros, package -> training): {len(upward)}"
          + "".join(f"\n  - {a} -> {b}" for a, b in upward))
    if args.check and over:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
