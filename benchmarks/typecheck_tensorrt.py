#!/usr/bin/env python3
"""Type-check the TensorRT backend against tensorrt-stubs (TensorRT itself is not installable here).

tensorrt-stubs 10.13.0.35.1 ships ``tensorrt/__init__.pyi`` and ``tensorrt_bindings/*.pyi`` without a
py.typed marker and with five lines that are not valid Python (parameters named ``in``; a parameter
without default after defaulted ones), so mypy cannot use them as installed.  This script copies them
to ``.mypy_cache/tensorrt-stubs-fixed/`` (mypy.ini's ``mypy_path``), repairs exactly those lines
(``in`` -> ``in_``; missing default -> ``= ...``), checks that every stub file now parses, and runs mypy.

    .venv/bin/python benchmarks/typecheck_tensorrt.py            # mypy TARGETS (TensorRT runner, build, export)
    .venv/bin/python benchmarks/typecheck_tensorrt.py --stubs-only
"""
from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".mypy_cache" / "tensorrt-stubs-fixed"
# the TensorRT runner, the engine build (which imports trt_engine, checked too via mypy.ini) and the
# engine-export call sites
TARGETS = ["mono_depth_ros/backends/tensorrt_backend.py", "mono_depth_ros/trt_build.py", "mono_depth_ros/export.py",
           "mono_depth_ros/commands/export.py", "mono_depth_ros/commands/export_run.py"]


def _site_dir() -> Path:
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        raise SystemExit("tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs==10.13.0.35.1)")
    return Path(spec.origin).resolve().parents[1]


def _fix_def(line: str) -> str:
    """Repair one ``def`` line that does not parse."""
    fixed = re.sub(r"([(,]\s*)in:", r"\1in_:", line)
    try:
        ast.parse(fixed.strip() + "\n    ...")
        return fixed
    except SyntaxError:
        pass
    # A parameter without default after a defaulted one: give it "= ..." (valid in a stub).
    m = re.match(r"(\s*def \w+\()(.*)(\)\s*->.*)$", fixed)
    if not m:
        return fixed
    params, seen_default = [], False
    for p in m.group(2).split(", "):
        if "=" in p:
            seen_default = True
        elif seen_default and not p.startswith("*"):
            p += " = ..."
        params.append(p)
    return m.group(1) + ", ".join(params) + m.group(3)


def make_stubs() -> Path:
    site = _site_dir()
    stamp = (site / "tensorrt_bindings" / "tensorrt.pyi").stat().st_mtime_ns
    marker = OUT / ".source"
    if marker.is_file() and marker.read_text() == f"{site}:{stamp}":
        return OUT
    for pkg in ("tensorrt", "tensorrt_bindings"):
        for src in sorted((site / pkg).glob("*.pyi")):
            lines = src.read_text().splitlines(keepends=True)
            for i, line in enumerate(lines):
                if line.lstrip().startswith("def "):
                    try:
                        ast.parse(line.strip() + "\n    ...")
                    except SyntaxError:
                        lines[i] = _fix_def(line.rstrip("\n")) + "\n"
            text = "".join(lines)
            ast.parse(text, filename=str(src))  # raises if a line is still broken
            dst = OUT / pkg / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text)
    marker.write_text(f"{site}:{stamp}")
    return OUT


def main(argv: list[str]) -> int:
    make_stubs()
    if "--stubs-only" in argv:
        print(f"fixed TensorRT stubs in {OUT}")
        return 0
    targets = [a for a in argv if not a.startswith("-")] or TARGETS
    return subprocess.call([sys.executable, "-m", "mypy", *targets], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
