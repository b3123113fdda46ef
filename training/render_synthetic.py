"""Render a synthetic training set once, to disk, in the KITTI object layout (``type: kitti_object``).

    python -m training.render_synthetic --kind street --n 8000 --seed 0 --width 311 --height 94 \
        --out data/street_311x94_s0 --jobs 2

Frame ``i`` is ``mono_depth_ros.synthetic.render_frame(kind, seed, width, height, index=i)``, written as
``image_2/<i:06d>.png`` (RGB) and ``proj_depth_velodyne/<i:06d>.png`` (uint16, metres x 256, 0 = invalid:
sky / beyond the far limit), the layout ``training.datasets.KittiObject`` reads with ``gt: png``.  Rendering
a street frame costs tens of milliseconds; training decodes a PNG pair in about one, so a run that sees
every frame many times renders each once here instead of once per loader worker and stage.

The folder is written under ``<out>.partial`` and renamed at the end; an existing ``--out`` is never
touched.  Deterministic: same arguments, same bytes.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from mono_depth_ros.synthetic import render_frame


def _render_range(args: Tuple[str, int, int, int, int, int, str]) -> int:
    kind, seed, width, height, start, stop, out = args
    root = Path(out)
    for i in range(start, stop):
        f = render_frame(kind, seed, width, height, index=i)
        mm = np.where(f.valid, np.clip(np.rint(f.depth_or(0.0) * 256.0), 1, 65535), 0).astype(np.uint16)
        cv2.imwrite(str(root / "proj_depth_velodyne" / f"{i:06d}.png"), mm)
        cv2.imwrite(str(root / "image_2" / f"{i:06d}.png"), cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR))
    return stop - start


def render_dataset(out: Path, kind: str, n: int, seed: int, width: int, height: int, jobs: int = 1,
                   progress: bool = True) -> Path:
    if out.exists():
        raise FileExistsError(f"{out} exists; not overwritten")
    tmp = Path(str(out) + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in ("image_2", "proj_depth_velodyne"):
        (tmp / sub).mkdir(parents=True)
    chunk = 100
    tasks = [(kind, seed, width, height, s, min(s + chunk, n), str(tmp)) for s in range(0, n, chunk)]
    t0, done = time.perf_counter(), 0
    if jobs > 1:
        with mp.get_context("fork").Pool(jobs) as pool:
            for k in pool.imap_unordered(_render_range, tasks):
                done += k
                if progress:
                    print(f"\r{done}/{n} frames, {done / (time.perf_counter() - t0):.1f}/s", end="", file=sys.stderr)
    else:
        for t in tasks:
            done += _render_range(t)
            if progress:
                print(f"\r{done}/{n} frames, {done / (time.perf_counter() - t0):.1f}/s", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    (tmp / "RENDERED.txt").write_text(
        f"mono_depth_ros.synthetic.render_frame({kind!r}, seed={seed}, {width}x{height}, index=0..{n - 1}); "
        f"depth PNG: metres x 256, 0 = invalid\n")
    os.replace(tmp, out)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.render_synthetic", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", default="street", choices=["indoor", "outdoor", "street"])
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    if args.n < 1 or args.width < 16 or args.height < 16 or args.jobs < 1 or args.seed < 0:
        print("render_synthetic: error: --n, --jobs >= 1, --seed >= 0, --width/--height >= 16", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        out = render_dataset(Path(args.out), args.kind, args.n, args.seed, args.width, args.height, args.jobs)
    except FileExistsError as exc:
        print(f"render_synthetic: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} frames to {out} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
