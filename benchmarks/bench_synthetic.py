#!/usr/bin/env python3
"""Throughput of the synthetic RGB-D renderer (mono_depth_ros.synthetic).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_synthetic.py            # default table
    .venv/bin/python benchmarks/bench_synthetic.py --sizes 304x228 576x172 --frames 200 --workers 2

Rows per kind and size (best of --repeat runs): wall-clock frames/s and ms/frame, and the CPU time of
this process per frame (robust to other load on a shared machine; frames/CPU-s = one core's throughput):
  frame     render_frame(kind, seed, index=i): new random scene + render (what SyntheticDataset does)
  render    render() only, scenes generated beforehand
  sequence  render_sequence(): one scene, the camera moving (a camera stream)
  no-cull   render(cull=False): every box ray-cast over the whole image (what screen-space culling saves)
  dataset   SyntheticDataset items through a multiprocessing pool of --workers processes (if > 1)
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mono_depth_ros import synthetic as S  # noqa: E402


def _best(fn, n: int, repeat: int) -> tuple:
    """(wall, cpu): best wall time and best CPU time of this process (s) per item over ``repeat`` runs
    of fn(n).  CPU time is what one core spends per frame, robust to other load on a shared machine."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(n)
        best = min(best, (time.perf_counter() - t0) / n)
        best_cpu = min(best_cpu, (time.process_time() - c0) / n)
    return best, best_cpu


_DS = None


def _init_worker(kind: str, w: int, h: int) -> None:
    global _DS
    _DS = S.SyntheticDataset(kind, n=10 ** 9, seed=0, width=w, height=h)


def _item(i: int) -> int:
    rgb, depth, valid = _DS[i]  # type: ignore[index]
    return int(valid.sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["304x228", "576x172", "640x480"])
    ap.add_argument("--kinds", nargs="+", default=list(S.KINDS), choices=list(S.KINDS))
    ap.add_argument("--frames", type=int, default=60, help="frames per measurement")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="processes for the dataset row (1: skip it)")
    ap.add_argument("--no-cull-row", action="store_true", help="also time render(cull=False)")
    args = ap.parse_args(argv)

    print(f"python {platform.python_version()}, numpy {S.np.__version__}, {os.cpu_count()} CPUs visible, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {platform.processor() or platform.machine()}")
    print(f"{'kind':8s} {'size':>8s} {'what':11s} {'frames/s':>9s} {'ms/frame':>9s} {'CPU ms/frame':>13s} "
          f"{'frames/CPU-s':>13s}")
    for size in args.sizes:
        w, h = (int(x) for x in size.lower().split("x"))
        for kind in args.kinds:
            n = args.frames
            rows = []
            rows.append(("frame", _best(lambda k: [S.render_frame(kind, 0, w, h, index=i) for i in range(k)],
                                        n, args.repeat)))
            scenes = [S._make_scene(kind, 0, i)[0] for i in range(n)]
            intr = S.make_intrinsics(w, h, hfov_deg=S.DEFAULT_HFOV_DEG[kind])
            for sc in scenes:
                sc.compiled()
            rows.append(("render", _best(lambda k: [S.render(sc, None, intr) for sc in scenes[:k]], n, args.repeat)))
            rows.append(("sequence", _best(lambda k: S.render_sequence(kind, 0, k, w, h), n, args.repeat)))
            if args.no_cull_row:
                rows.append(("no-cull", _best(lambda k: [S.render(sc, None, intr, cull=False) for sc in scenes[:k]],
                                              n, args.repeat)))
            if args.workers > 1:
                import multiprocessing as mp

                with mp.get_context("fork").Pool(args.workers, _init_worker, (kind, w, h)) as pool:
                    pool.map(_item, range(args.workers * 2))  # warm up
                    t = _best(lambda k: pool.map(_item, range(k), chunksize=4), n * 2, args.repeat)
                rows.append((f"dataset/{args.workers}p", (t[0], float("nan"))))  # workers' CPU not counted
            for what, (t, cpu) in rows:
                print(f"{kind:8s} {size:>8s} {what:11s} {1.0 / t:9.1f} {t * 1e3:9.2f} {cpu * 1e3:13.2f} "
                      f"{1.0 / cpu:13.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
