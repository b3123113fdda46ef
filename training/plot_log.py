"""Loss curves of a run: ``python -m training.plot_log runs/x [--out runs/x/loss.png]`` (log.jsonl -> PNG + text)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple


def read_log(run: Path) -> Dict[str, List[Tuple[int, float]]]:
    curves: Dict[str, List[Tuple[int, float]]] = {}
    for ln in (run / "log.jsonl").read_text().splitlines():
        r = json.loads(ln)
        if "loss" in r:
            curves.setdefault(r["stage"], []).append((r["samples"], r["loss"]))
    return curves


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.plot_log")
    ap.add_argument("run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    run = Path(args.run)
    curves = read_log(run)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5), squeeze=False)
    for ax, (stage, pts) in zip(axes[0], curves.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
        ax.set_yscale("log")
        ax.set_xlabel("samples")
        ax.set_ylabel("scale-invariant loss (lam 0.5)")
        ax.set_title(f"{stage} stage")
        ax.grid(True, which="both", alpha=0.3)
        print(f"{stage}: " + ", ".join(f"{s}:{l:.4g}" for s, l in pts))
    fig.tight_layout()
    out = Path(args.out) if args.out else run / "loss.png"
    fig.savefig(out, dpi=100)
    print(f"saved {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
