"""Score a KITTI-geometry model on every real KITTI frame with LiDAR ground truth in ../shared/data.

    python -m training.eval_kitti_real                                  # the shipped road model
    python -m training.eval_kitti_real --model runs/road/model.pt --json scores.json --per-image

Frames: the KITTI object-layout frames (``kitti_object_lidar``: RGB + single-scan Velodyne depth
projected with each frame's own P2 . R0_rect . Tr_velo_to_cam) and the raw-layout drive
(``kitti_raw_layout_repackaged``: the same kind of frames with the real 2011_09_26 raw calibration,
Velodyne projected through calib_velo_to_cam + R_rect_00 + P_rect_02).  The real frames are
evaluation only: nothing here trains or tunes anything.

Protocol: Garg crop, ground truth in (0.001, 80] m, predictions clamped to [0.001, 80] m, metrics per
image then averaged over images (mono_depth_ros.metrics).  The network's output map covers the bottom
rows of its input crop; the prediction is upsampled (bilinear) to the camera and its border repeated
over the few Garg-crop pixels it does not cover, so every row scores exactly the same pixels.

Rows:
* the model, coarse + fine and coarse only (the same file, the fine network switched off);
* ground plane only: each pixel's depth if it were road: a camera ``--camera-height`` (1.65 m, KITTI's)
  above a flat road with the frame's own calibration (fy, cy): Z = h fy / (v - cy) below the horizon,
  infinite at and above it, clamped to 80 m;
* mean-depth baseline: one constant, the mean valid depth of the *training* set (synthetic street frames
  of the training config, inside the Garg crop, <= 80 m), stored in the road model file
  (``meta.train_mean_depth``, written by ``training.ship_model``) or recomputed with ``--train-mean-frames N``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mono_depth_ros import metrics as M
from mono_depth_ros.text import plural
from mono_depth_ros.preprocess import compute_transform, crop_resized

from .datasets import REPO, DatasetError, FrameSource, KittiObject, KittiRaw

SHARED = REPO.parent / "shared" / "data"
OBJECT_ROOT = SHARED / "kitti_object_lidar"
RAW_ROOT = SHARED / "kitti_raw_layout_repackaged"
MAX_DEPTH = 80.0
MIN_DEPTH = 1e-3


class EvalError(RuntimeError):
    """A user-facing error (missing data, bad model file)."""


def frame_sets(object_root: Path = OBJECT_ROOT, raw_root: Path = RAW_ROOT) -> List[Tuple[str, FrameSource]]:
    """(label, source) of every KITTI frame set with LiDAR ground truth that exists."""
    sets: List[Tuple[str, FrameSource]] = []
    if object_root.is_dir():
        sets.append(("object", KittiObject(object_root, gt="velodyne")))
    if raw_root.is_dir():
        sets.append(("raw", KittiRaw(raw_root, gt="velodyne")))
    if not sets:
        raise EvalError(f"no KITTI frames found under {object_root} or {raw_root}")
    return sets


def frame_calibration(source: FrameSource, i: int) -> Tuple[float, float]:
    """(fy, cy) of frame i's rectified colour camera (P2), from the frame's own calibration file."""
    from mono_depth_ros import kitti

    if isinstance(source, KittiObject):
        cal = kitti.load_object_calibration(source.root / "calib" / f"{source.ids[i]}.txt")
    else:
        cal = source.calibration(source.items[i])                # type: ignore[attr-defined]
    K = cal.K
    return float(K[1, 1]), float(K[1, 2])


def ground_plane_depth(height: int, width: int, fy: float, cy: float, camera_height: float = 1.65,
                       max_depth: float = MAX_DEPTH) -> np.ndarray:
    """Depth (H, W) of a flat road ``camera_height`` below a level camera: h fy / (v - cy) for rows below
    the horizon, infinite (clamped to ``max_depth``) at and above it."""
    v = np.arange(height, dtype=np.float64) - cy
    with np.errstate(divide="ignore"):
        z = np.where(v > 0, camera_height * fy / np.where(v > 0, v, 1.0), np.inf)
    z = np.minimum(z, max_depth).astype(np.float32)
    return np.repeat(z[:, None], width, axis=1)


def predict(model: Any, rgb: np.ndarray, stage: str, fill_outside: bool = True) -> np.ndarray:
    """Depth (metres) at the camera resolution from ``model`` run as ``stage`` (bilinear; border repeated
    outside the region the output map covers)."""
    import torch

    from .augment import Normalizer
    from .evaluate import prediction_to_camera

    p = model.profile
    t = compute_transform(rgb.shape[1], rgb.shape[0], p)
    x = torch.from_numpy(Normalizer(p)(crop_resized(rgb, t)))[None]
    with torch.no_grad():
        logd = model(x, stage)[0, 0].float().numpy()
    return prediction_to_camera(np.exp(logd), t, p, fill_outside=fill_outside)


def _train_mean(meta: Dict[str, Any], model_path: Path, train_mean: Optional[float],
                train_mean_frames: int) -> Tuple[float, str]:
    """The mean-depth baseline's constant and where it came from: given, the model file's
    ``meta.train_mean_depth``, or recomputed from the first training frames named by its config."""
    if train_mean is not None:
        return train_mean, "given"
    if train_mean_frames <= 0 and "train_mean_depth" in meta:
        return float(meta["train_mean_depth"]), "meta.train_mean_depth of the model file"
    from .ship_model import train_mean_depth

    cfg = (meta.get("config") or {}).get("data", {}).get("train") or {}
    if not cfg:
        raise EvalError(f"{model_path} names no training set; give --train-mean")
    n = train_mean_frames or 500
    return train_mean_depth(cfg, n), f"recomputed from the first {n} training frames"


def _score_frame(model: Any, stages: Sequence[str], rows: Dict[str, Any], fr: Any, name: str, fy: float, cy: float,
                 camera_height: float, train_mean: float, covered_only: bool) -> Dict[str, Any]:
    """Add one frame to every row's accumulator; its per-image metrics."""
    h, w = fr.depth.shape
    gt = np.where(fr.valid & (fr.depth > 0), fr.depth, 0).astype(np.float32)
    mask = M.kitti_garg_crop_mask((h, w))
    preds = {s: predict(model, fr.rgb, s, fill_outside=not covered_only) for s in stages}
    if covered_only:      # as depth_node / bag --eval: only the pixels the network's output covers
        mask &= np.isfinite(preds[stages[0]])
    rec: Dict[str, Any] = {"frame": name, "size": [w, h], "fy": fy, "cy": cy}
    for s in stages:
        rec[STAGE_ROWS[s]] = rows[STAGE_ROWS[s]].add(preds[s], gt, mask, name)
    rec["ground plane only"] = rows["ground plane only"].add(
        ground_plane_depth(h, w, fy, cy, camera_height), gt, mask, name)
    rec["mean-depth baseline"] = rows["mean-depth baseline"].add(
        np.full((h, w), train_mean, np.float32), gt, mask, name)
    return rec


STAGE_ROWS = {"coarse": "model, coarse only", "fine": "model, coarse + fine"}


def evaluate(model_path: Path, camera_height: float = 1.65, train_mean: Optional[float] = None,
             train_mean_frames: int = 0, object_root: Path = OBJECT_ROOT, raw_root: Path = RAW_ROOT,
             covered_only: bool = False, synthetic: Optional[FrameSource] = None) -> Dict[str, Any]:
    """The table on the real KITTI frames (or, with ``synthetic``, on those synthetic frames instead)."""
    from mono_depth_ros.checkpoint import ModelFileError, load_model

    try:
        model, info = load_model(model_path)
    except (ModelFileError, FileNotFoundError, OSError) as exc:
        raise EvalError(str(exc)) from None
    train_mean, mean_src = _train_mean(info.get("meta") or {}, model_path, train_mean, train_mean_frames)
    stages = ["coarse", "fine"] if info.get("stage") == "fine" else ["coarse"]
    rows = {STAGE_ROWS[s]: M.MetricAccumulator(min_depth=MIN_DEPTH, max_depth=MAX_DEPTH) for s in reversed(stages)}
    rows["ground plane only"] = M.MetricAccumulator(min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    rows["mean-depth baseline"] = M.MetricAccumulator(min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    frames: List[Dict[str, Any]] = []
    for label, src in (frame_sets(object_root, raw_root) if synthetic is None else [("synthetic", synthetic)]):
        for i in range(len(src)):
            fr = src.frame(i, None, mask_min_max=False)
            fy, cy = frame_calibration(src, i) if synthetic is None else \
                (synthetic.ds.frame(i).fy, synthetic.ds.frame(i).cy)        # type: ignore[attr-defined]
            frames.append(_score_frame(model, stages, rows, fr, f"{label}/{fr.name}", fy, cy, camera_height,
                                       train_mean, covered_only))
    table = {k: acc.result() for k, acc in rows.items()}
    return {"model": str(model_path), "profile": model.profile.name, "stage": info.get("stage"),
            "train_mean_depth": train_mean, "train_mean_source": mean_src, "camera_height": camera_height,
            "protocol": "Garg crop" + (" (only pixels the output map covers)" if covered_only else "")
                        + ", GT in (0.001, 80] m, predictions clamped to [0.001, 80] m, mean of per-image metrics",
            "table": table, "frames": frames}


# ---- pictures (docs/demo.md) ------------------------------------------------------------------------
def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def depth_figure(rgb: np.ndarray, pred: np.ndarray, gt: np.ndarray, width: int = 621, name: str = "model") -> np.ndarray:
    """RGB / predicted depth / LiDAR ground truth (dilated for visibility), one colour scale (turbo, 3-60 m,
    log-spaced via colorize's scale), each resized to ``width``; black = no value."""
    from mono_depth_ros.colorize import colorize_depth

    h = int(round(rgb.shape[0] * width / rgb.shape[1]))
    g = cv2.dilate(np.where(gt > 0, gt, 0).astype(np.float32), np.ones((3, 3), np.uint8))
    g = np.where(g > 0, g, np.nan)
    rows = [_label(cv2.resize(rgb, (width, h), interpolation=cv2.INTER_AREA), "real KITTI frame (never trained on)"),
            _label(cv2.resize(colorize_depth(pred, 3.0, 60.0), (width, h), interpolation=cv2.INTER_AREA),
                   f"{name} depth (3 m red ... 60 m blue)"),
            _label(cv2.resize(colorize_depth(g, 3.0, 60.0), (width, h), interpolation=cv2.INTER_NEAREST),
                   "LiDAR ground truth (same scale)")]
    return np.concatenate(rows, axis=0)


def cloud_figure(rgb: np.ndarray, pred: np.ndarray, gt: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                 size: Tuple[int, int] = (420, 380), extent: float = 40.0, name: str = "model") -> np.ndarray:
    """Two bird's-eye views (x right, z forward, 0-``extent`` m, 10 m rings, same scale): the predicted point
    cloud (pixels coloured by the image) and the LiDAR ground truth; metric errors show as displaced structures."""
    w, h = size
    s = (h - 24) / extent                                             # pixels per metre
    ox, oz = w / 2.0, h - 6.0

    def panel(depth: np.ndarray, stride: int, colors: Optional[np.ndarray], title: str) -> np.ndarray:
        img = np.full((h, w, 3), 20, np.uint8)
        for r in range(10, int(extent) + 1, 10):
            cv2.circle(img, (int(ox), int(oz)), int(r * s), (80, 80, 80), 1, cv2.LINE_AA)
            cv2.putText(img, f"{r} m", (int(ox) + 3, int(oz - r * s) + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (140, 140, 140), 1, cv2.LINE_AA)
        v, u = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride]
        z = depth[::stride, ::stride]
        ok = np.isfinite(z) & (z > 0) & (z < extent)
        x = (u[ok] - cx) / fx * z[ok]
        y = (v[ok] - cy) / fy * z[ok]
        keep = y > -2.5                                               # drop points > 4 m above the road
        px = np.round(ox + x[keep] * s).astype(int)
        pz = np.round(oz - z[ok][keep] * s).astype(int)
        inside = (px >= 0) & (px < w) & (pz >= 0) & (pz < h)
        if colors is None:
            img[pz[inside], px[inside]] = (255, 255, 255)
        else:
            c = colors[::stride, ::stride][ok][keep][inside].astype(np.float32)
            img[pz[inside], px[inside]] = np.clip(c * 1.6 + 30, 0, 255).astype(np.uint8)   # brightened
        return _label(img, title)

    left = panel(pred, 2, rgb, f"{name}: top view of its cloud")
    right = panel(np.where(gt > 0, gt, np.nan), 1, None, "LiDAR ground truth: top view")
    return np.concatenate([left, np.full((h, 4, 3), 255, np.uint8), right], axis=1)


def write_figures(model: Any, out: Path, names: Sequence[str], object_root: Path = OBJECT_ROOT,
                  label: str = "model") -> List[Path]:
    """For each object-layout frame in ``names``: ``<name>_depth.png`` and ``<name>_cloud.png`` (palette PNGs)."""
    from PIL import Image

    from mono_depth_ros import kitti

    src = KittiObject(object_root, ids=list(names), gt="velodyne")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, name in enumerate(src.ids):
        fr = src.frame(i, None, mask_min_max=False)
        gt = np.where(fr.valid, fr.depth, 0).astype(np.float32)
        pred = predict(model, fr.rgb, "fine" if model.stage == "fine" else "coarse")
        K = kitti.load_object_calibration(object_root / "calib" / f"{name}.txt").K
        figs = {"depth": depth_figure(fr.rgb, pred, gt, name=label),
                "cloud": cloud_figure(fr.rgb, pred, gt, K[0, 0], K[1, 1], K[0, 2], K[1, 2], name=label)}
        for kind, fig in figs.items():
            path = out / f"{name}_{kind}.png"
            if path.exists():
                raise FileExistsError(f"{path} exists (not overwritten)")
            Image.fromarray(fig).quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
            written.append(path)
    return written


def _relative(abs_rel: float, baseline: float) -> str:
    """``31.6 % below`` / ``12.0 % above`` / ``level with``: the model's AbsRel against a baseline's."""
    pct = 100 * (1 - abs_rel / baseline)
    if round(pct, 1) == 0:
        return "level with"
    return f"{abs(pct):.1f} % {'below' if pct > 0 else 'above'}"


def target_verdicts(best: Dict[str, float], mean_base: float, plane_base: float) -> List[str]:
    """One line per target of the road model (models/README.md), each with its verdict: AbsRel at least 30 %
    below the mean-depth baseline's, below the ground plane's, and delta1 >= 0.5."""
    a = best["abs_rel"]
    met = {True: "met", False: "not met"}
    return [f"AbsRel {a:.3f}: {_relative(a, mean_base)} the mean-depth baseline's {mean_base:.3f} "
            f"(target: >= 30 % below): {met[a <= 0.7 * mean_base]}",
            f"AbsRel {a:.3f}: {_relative(a, plane_base)} the ground plane's {plane_base:.3f} (target: below): "
            f"{met[a < plane_base]}",
            f"delta1 {best['delta1']:.3f} (target >= 0.5): {met[best['delta1'] >= 0.5]}"]


def format_report(res: Dict[str, Any], per_image: bool = False) -> str:
    t = res["table"]
    kind = "synthetic held-out street" if res["frames"] and res["frames"][0]["frame"].startswith("synthetic/") \
        else "real KITTI"
    lines = [f"model {res['model']} (profile {res['profile']}, stage {res['stage']})",
             f"{plural(len(res['frames']), kind + ' frame')} ({', '.join(f['frame'] for f in res['frames'][:8])}"
             f"{', ...' if len(res['frames']) > 8 else ''}); "
             f"{res['protocol']}",
             f"mean-depth baseline: {res['train_mean_depth']:.3f} m ({res['train_mean_source']}); "
             f"ground plane: camera {res['camera_height']:.2f} m above a flat road, each frame's fy/cy",
             "", M.format_table(t)]
    best = t.get("model, coarse + fine") or t.get("model, coarse only")
    if best:
        lines += [""] + target_verdicts(best, t["mean-depth baseline"]["abs_rel"], t["ground plane only"]["abs_rel"])
        if "model, coarse only" in t and "model, coarse + fine" in t:
            c, f = t["model, coarse only"]["abs_rel"], t["model, coarse + fine"]["abs_rel"]
            lines.append(f"coarse + fine vs coarse only: AbsRel {f:.3f} vs {c:.3f} "
                         f"({'better' if f < c else 'NOT better'})")
    if per_image:
        lines += ["", "| frame | pixels | " + " | ".join(t) + " |", "|---|---|" + "---|" * len(t)]
        for fr in res["frames"]:
            cells = [f"{fr[k]['abs_rel']:.3f}" if fr.get(k) else "-" for k in t]
            n = next((fr[k]["n"] for k in t if fr.get(k)), 0)
            lines.append(f"| {fr['frame']} | {n} | " + " | ".join(cells) + " |")
        lines.append("(per-image AbsRel)")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mono_depth_ros.default_models import ROAD_MODEL

    ap = argparse.ArgumentParser(prog="python -m training.eval_kitti_real", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROAD_MODEL), help="model file (default: the shipped road model)")
    ap.add_argument("--camera-height", type=float, default=1.65, help="ground-plane baseline: camera height (m)")
    ap.add_argument("--train-mean", type=float, default=None, help="mean-depth baseline constant (m)")
    ap.add_argument("--train-mean-frames", type=int, default=0,
                    help="recompute the training-set mean from this many training frames")
    ap.add_argument("--object-root", default=str(OBJECT_ROOT), help="KITTI object-layout frames")
    ap.add_argument("--raw-root", default=str(RAW_ROOT), help="KITTI raw-layout root")
    ap.add_argument("--per-image", action="store_true", help="also print per-image AbsRel")
    ap.add_argument("--synthetic-heldout", type=int, default=0, metavar="N",
                    help="score N held-out synthetic street frames (seed 1, 621x188: scenes the model never saw) "
                         "with the same protocol instead of the real frames (model selection without real data)")
    ap.add_argument("--covered-only", action="store_true",
                    help="score only Garg-crop pixels the network's output covers (as bag --eval / the node do) "
                         "instead of repeating the output's border over the few it does not")
    ap.add_argument("--json", default=None, help="also write the full result (per image) to this JSON file")
    ap.add_argument("--figures", default=None, metavar="DIR",
                    help="also write depth and top-view cloud pictures of --figure-frames into DIR")
    ap.add_argument("--figure-frames", default="cvml_000114", help="comma-separated object-layout frame ids")
    args = ap.parse_args(argv)
    if not args.camera_height > 0 or (args.train_mean is not None and not args.train_mean > 0):
        print("eval_kitti_real: error: --camera-height and --train-mean must be > 0", file=sys.stderr)
        return 2
    if args.json and Path(args.json).exists():
        print(f"eval_kitti_real: error: {args.json} exists (not overwritten)", file=sys.stderr)
        return 2
    try:
        synthetic = None
        if args.synthetic_heldout > 0:
            from .datasets import SyntheticScenes

            synthetic = SyntheticScenes("street", args.synthetic_heldout, 1, 621, 188)
        res = evaluate(Path(args.model), args.camera_height, args.train_mean, args.train_mean_frames,
                       Path(args.object_root), Path(args.raw_root), covered_only=args.covered_only,
                       synthetic=synthetic)
    except (EvalError, DatasetError, ValueError) as exc:
        print(f"eval_kitti_real: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(res, args.per_image))
    if args.figures:
        from mono_depth_ros.checkpoint import load_model

        model, _ = load_model(args.model)
        try:
            for p in write_figures(model, Path(args.figures), [f for f in args.figure_frames.split(",") if f],
                                   Path(args.object_root), label=Path(args.model).name):
                print(f"wrote {p} ({p.stat().st_size} bytes)", file=sys.stderr)
        except (FileExistsError, DatasetError) as exc:
            print(f"eval_kitti_real: error: {exc}", file=sys.stderr)
            return 2
    if args.json:
        from mono_depth_ros.checkpoint import atomic_write_bytes

        atomic_write_bytes(args.json, (json.dumps(res, indent=1, default=float) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
