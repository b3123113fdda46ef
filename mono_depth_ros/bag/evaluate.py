"""Depth evaluation against LiDAR (or depth-image) ground truth: ROS-agnostic core.

Shared by ``mono-depth bag --eval`` (offline) and the live evaluator node
(``mono_depth_ros/ros/evaluator_node.py``): both turn messages into numpy arrays and call this.

Ground truth from LiDAR (:func:`lidar_to_depth`): the scan's points are moved into the camera's
optical frame with a 4x4 transform (from the bag's ``/tf_static``, or a calibration file), projected
with the camera's 3x3 intrinsics, nearest point per pixel -- the same projection as
:func:`mono_depth_ros.kitti.project_points_to_depth` (0 = no depth).

Protocols (:data:`PROTOCOLS`), each with the paper's eight metrics (mono_depth_ros.metrics):

* ``paper`` -- Eigen et al. 2014's own: every pixel with ground truth (depth > 1e-3 m) where the
  prediction is valid, no crop, no cap.
* ``garg80`` -- what later KITTI work reports: Garg et al.'s crop, depth in (1e-3, 80) m, the
  prediction clamped to that range.

Valid pixels also need a valid prediction: pixels the network does not see (NaN in a REP 118 depth
image) are not counted. The prediction handed in should therefore *not* be range-masked: a depth
the node publishes as NaN because it lies outside [min_depth, max_depth] is a wrong prediction, and
is scored clamped to the protocol's range (``mono-depth bag --eval`` does that; the live evaluator
only sees the published, masked depth). Each protocol also reports its *coverage*: evaluated pixels
/ ground-truth pixels (the protocol's crop and depth range). Dataset figures are the mean of per-frame metrics (``mode="image"``, the
monodepth2 / BTS convention) or pooled pixels (``mode="pixel"``). ``median_scaling`` rescales each
frame by median(gt) / median(pred) (for relative-depth models). A *mean-depth baseline* row (the
paper's: one constant, the mean ground-truth depth over the evaluated pixels of all frames, predicted
everywhere) is computed on exactly the same pixels as the model.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .. import metrics as M
from ..kitti import project_points_to_depth
from ..msgs.fields import camera_info_K  # noqa: F401  (moved to the message layer)
from ..text import plural


@dataclass(frozen=True)
class Protocol:
    name: str
    crop: str                      # a metrics.CROPS name
    min_depth: float
    max_depth: Optional[float]
    description: str


PROTOCOLS: Dict[str, Protocol] = {
    "paper": Protocol("paper", "none", 1e-3, None,
                      "Eigen et al. 2014: all pixels with ground truth > 1e-3 m, no crop, no cap"),
    "garg80": Protocol("garg80", "kitti_garg", 1e-3, 80.0,
                       "KITTI Garg crop, ground truth in (1e-3, 80) m, prediction clamped to it"),
    "eigen80": Protocol("eigen80", "kitti_eigen", 1e-3, 80.0,
                        "KITTI Eigen crop, ground truth in (1e-3, 80) m"),
    "nyu10": Protocol("nyu10", "nyu_eigen", 1e-3, 10.0, "NYU Eigen crop, ground truth in (1e-3, 10) m"),
}
DEFAULT_PROTOCOLS = ("paper", "garg80")


def get_protocols(names: Sequence[str]) -> List[Protocol]:
    out = []
    for n in names:
        if n not in PROTOCOLS:
            raise ValueError(f"unknown protocol {n!r}; known: {', '.join(PROTOCOLS)}")
        out.append(PROTOCOLS[n])
    if not out:
        raise ValueError("at least one protocol is needed")
    return out


# ---- ground truth -------------------------------------------------------------------------
def lidar_to_depth(points: np.ndarray, T_cam_lidar: np.ndarray, K: np.ndarray, width: int, height: int,
                   min_depth: float = 1e-3) -> np.ndarray:
    """Sparse depth (H, W) float32 (0 = none) of LiDAR points (N x >=3, in the LiDAR frame) seen by a
    camera with intrinsics ``K`` (3x3; or a CameraInfo P whose 3x3 part is used) placed by
    ``T_cam_lidar`` (4x4, maps LiDAR coordinates to the camera's optical frame)."""
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    T = np.asarray(T_cam_lidar, dtype=np.float64)
    cam = pts @ T[:3, :3].T + T[:3, 3]
    K = np.asarray(K, dtype=np.float64)
    K3 = K[:, :3] if K.shape == (3, 4) else K
    return project_points_to_depth(cam, K3, int(width), int(height), min_depth=min_depth)


# ---- evaluation -----------------------------------------------------------------------------
@dataclass
class FrameRecord:
    index: int
    stamp_ns: Optional[int]
    name: str
    metrics: Dict[str, Optional[Dict[str, float]]]   # protocol -> metrics (None: no valid pixel)
    extra: Dict[str, Any] = field(default_factory=dict)
    gt_pixels: Dict[str, int] = field(default_factory=dict)  # protocol -> ground-truth pixels (crop, range)


EVAL_FILES = {"csv": "{prefix}_frames.csv", "json": "{prefix}.json", "md": "{prefix}.md"}
PLOT_FILES = {"plot": "{prefix}_per_frame.png", "worst": "{prefix}_worst_frame.png"}


NO_PLOTS = "no plots: matplotlib is not installed (pip install matplotlib)"


def plots_available() -> bool:
    """Whether :meth:`DepthEvaluator.write` can draw its plots (matplotlib importable)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def eval_output_paths(out_dir: "str | Path", prefix: str = "eval", plots: bool = True) -> Dict[str, Path]:
    """Every file :meth:`DepthEvaluator.write` may create in ``out_dir`` (the plots only with ``plots``)."""
    names = dict(EVAL_FILES, **(PLOT_FILES if plots else {}))
    return {k: Path(out_dir) / v.format(prefix=prefix) for k, v in names.items()}


def check_eval_outputs(out_dir: "str | Path", prefix: str = "eval", plots: bool = True, overwrite: bool = False,
                       protect: Sequence[Tuple[str, "str | Path"]] = ()) -> Dict[str, Path]:
    """Refuse to write evaluation files that exist (unless ``overwrite``), into a path that is not a
    directory, over something that is not a regular file, or into/onto a protected path (``protect``:
    (label, path) pairs such as the input and output bags: the files may not land inside them).
    Call before any work is done. Returns the paths. Raises ``FileExistsError`` / ``ValueError``."""
    out = Path(out_dir)
    out_r = out.resolve()
    for label, p in protect:
        q = Path(p).resolve()
        if out_r == q or q in out_r.parents:
            raise ValueError(f"evaluation directory {out} is inside the {label} {p}: choose another --eval-dir")
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise ValueError(f"evaluation directory {out} exists and is not a directory")
    paths = eval_output_paths(out, prefix, plots)
    for p in paths.values():
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise ValueError(f"evaluation output {p} exists and is not a regular file: not replacing it")
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"evaluation output {existing[0]} exists"
                              + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else "")
                              + "; refusing to overwrite it (pass --overwrite, or choose another --eval-dir)")
    return paths


class DepthEvaluator:
    """Accumulates per-frame metrics under several protocols; writes CSV / JSON / markdown / plots."""

    def __init__(self, protocols: Sequence[str] = DEFAULT_PROTOCOLS, median_scaling: bool = False,
                 mode: str = "image", baseline: bool = True):
        self.protocols = get_protocols(protocols)
        self.median_scaling = median_scaling
        self.mode = mode
        self.baseline = baseline
        self.acc = {p.name: M.MetricAccumulator(mode=mode, min_depth=p.min_depth, max_depth=p.max_depth,
                                                median_scaling=median_scaling) for p in self.protocols}
        self.frames: List[FrameRecord] = []
        self._gt_values: Dict[str, List[np.ndarray]] = {p.name: [] for p in self.protocols}
        self._worst: Optional[Dict[str, Any]] = None
        self._masks: Dict[Tuple[str, Tuple[int, int]], Optional[np.ndarray]] = {}

    @property
    def primary(self) -> str:
        return self.protocols[0].name

    def _mask(self, proto: Protocol, shape: Tuple[int, int]) -> Optional[np.ndarray]:
        key = (proto.crop, shape)
        if key not in self._masks:
            self._masks[key] = M.crop_mask(proto.crop, shape)
        return self._masks[key]

    def add(self, pred: np.ndarray, gt: np.ndarray, stamp_ns: Optional[int] = None, name: Optional[str] = None,
            rgb: Optional[np.ndarray] = None, extra: Optional[Dict[str, Any]] = None) -> FrameRecord:
        """Evaluate one frame. ``pred``: depth in metres, NaN/<=0 = invalid (resized bilinearly to the
        ground truth's size if it differs); ``gt``: metres, 0/NaN = none."""
        gt = np.asarray(gt, dtype=np.float32)
        pred = np.asarray(pred, dtype=np.float32)
        if pred.shape != gt.shape:
            pred = M.upsample_prediction(pred, gt.shape)
        idx = len(self.frames)
        name = name if name is not None else f"frame_{idx:06d}"
        per: Dict[str, Optional[Dict[str, float]]] = {}
        n_gt: Dict[str, int] = {}
        ones = np.ones_like(gt)
        for p in self.protocols:
            mask = self._mask(p, gt.shape)
            m = self.acc[p.name].add(pred, gt, mask=mask, name=name)
            per[p.name] = m
            n_gt[p.name] = int(np.count_nonzero(M.valid_mask(ones, gt, mask, p.min_depth, p.max_depth)))
            if m is not None and self.baseline:
                valid = M.valid_mask(pred, gt, mask, p.min_depth, p.max_depth)
                self._gt_values[p.name].append(gt[valid].astype(np.float32))
        rec = FrameRecord(idx, stamp_ns, name, per, dict(extra or {}), n_gt)
        self.frames.append(rec)
        m0 = per[self.primary]
        if m0 is not None and (self._worst is None or m0["abs_rel"] > self._worst["abs_rel"]):
            self._worst = {"abs_rel": m0["abs_rel"], "index": idx, "name": name, "stamp_ns": stamp_ns,
                           "pred": pred.copy(), "gt": gt.copy(), "rgb": None if rgb is None else np.array(rgb)}
        return rec

    def __len__(self) -> int:
        return len(self.frames)

    # ---- results ----
    def totals(self) -> Dict[str, Dict[str, float]]:
        """protocol -> dataset metrics (+ images, skipped, pixels, gt_pixels, coverage = pixels /
        gt_pixels, over all frames); protocols with no valid frame omitted."""
        out = {}
        for p in self.protocols:
            if len(self.acc[p.name]):
                r = self.acc[p.name].result()
                n_gt = int(sum(f.gt_pixels.get(p.name, 0) for f in self.frames))
                r["gt_pixels"] = n_gt
                r["coverage"] = r["pixels"] / n_gt if n_gt else 0.0
                out[p.name] = r
        return out

    def baseline_totals(self) -> Dict[str, Dict[str, float]]:
        """The mean-depth baseline (constant = mean valid ground truth of all frames) on the same pixels."""
        out: Dict[str, Dict[str, float]] = {}
        if not self.baseline:
            return out
        for p in self.protocols:
            vals = self._gt_values[p.name]
            if not vals:
                continue
            total = float(sum(float(v.sum(dtype=np.float64)) for v in vals))
            count = int(sum(v.size for v in vals))
            c = total / count
            acc = M.MetricAccumulator(mode=self.mode, min_depth=p.min_depth, max_depth=p.max_depth,
                                      median_scaling=self.median_scaling)
            for v in vals:
                acc.add(np.full((1, v.size), c, dtype=np.float64), v.reshape(1, -1).astype(np.float64))
            r = acc.result()
            r["constant"] = c
            out[p.name] = r
        return out

    def markdown(self, title: str = "model") -> str:
        totals, base = self.totals(), self.baseline_totals()
        lines = []
        for p in self.protocols:
            if p.name not in totals:
                lines.append(f"**{p.name}** ({p.description}): no frame with valid ground truth\n")
                continue
            t = totals[p.name]
            rows = {title: t}
            if p.name in base:
                rows[f"mean-depth baseline ({base[p.name]['constant']:.2f} m)"] = base[p.name]
            lines.append(f"**{p.name}** -- {p.description}; {plural(t['images'], 'frame')} ({t['skipped']} without ground "
                         f"truth), {t['pixels']} of {t['gt_pixels']} ground-truth pixels evaluated (coverage "
                         f"{100 * t['coverage']:.1f} %), {self.mode} mean"
                         + (", median scaling" if self.median_scaling else "") + "\n")
            lines.append(M.format_table(rows) + "\n")
        return "\n".join(lines)

    def config(self) -> Dict[str, Any]:
        return {"protocols": [asdict(p) for p in self.protocols], "median_scaling": self.median_scaling,
                "mode": self.mode}

    def _columns(self) -> List[str]:
        extra_keys: List[str] = []
        for f in self.frames:
            for k in f.extra:
                if k not in extra_keys:
                    extra_keys.append(k)
        cols = ["frame", "name", "stamp_ns", "time_s"]
        for p in self.protocols:
            cols += [f"{p.name}_n"] + [f"{p.name}_{k}" for k in M.METRIC_NAMES]
            if self.median_scaling:
                cols.append(f"{p.name}_scale")
            cols += [f"{p.name}_gt_n", f"{p.name}_coverage"]
        return cols + extra_keys

    def frame_rows(self) -> List[Dict[str, Any]]:
        t0 = next((f.stamp_ns for f in self.frames if f.stamp_ns is not None), None)
        rows = []
        for f in self.frames:
            r: Dict[str, Any] = {"frame": f.index, "name": f.name, "stamp_ns": f.stamp_ns,
                                 "time_s": None if f.stamp_ns is None or t0 is None else (f.stamp_ns - t0) * 1e-9}
            for p in self.protocols:
                m = f.metrics[p.name]
                r[f"{p.name}_n"] = 0 if m is None else m["n"]
                for k in M.METRIC_NAMES:
                    r[f"{p.name}_{k}"] = None if m is None else m[k]
                if self.median_scaling:
                    r[f"{p.name}_scale"] = None if m is None else m["scale"]
                n_gt = f.gt_pixels.get(p.name, 0)
                r[f"{p.name}_gt_n"] = n_gt
                r[f"{p.name}_coverage"] = (r[f"{p.name}_n"] / n_gt) if n_gt else None
            r.update(f.extra)
            rows.append(r)
        return rows

    def summary(self, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        worst = None
        if self._worst is not None:
            worst = {k: self._worst[k] for k in ("index", "name", "stamp_ns", "abs_rel")}
        return {"config": self.config(), "frames_evaluated": len(self.frames), "totals": self.totals(),
                "mean_depth_baseline": self.baseline_totals(), "worst_frame": worst, **(extra or {})}

    def write(self, out_dir: "str | Path", prefix: str = "eval", extra: Optional[Dict[str, Any]] = None,
              plots: bool = True, title: str = "model", overwrite: bool = True) -> Dict[str, Path]:
        """Write ``<prefix>_frames.csv``, ``<prefix>.json`` (totals + per-frame), ``<prefix>.md`` and
        (with matplotlib) ``<prefix>_per_frame.png`` and ``<prefix>_worst_frame.png``.

        With ``overwrite=False`` nothing is written if any of them exists (``FileExistsError``; see
        :func:`check_eval_outputs`, which callers should run before the work). Files of these names
        that this call does not produce (e.g. plots of an earlier run) are removed, so the directory
        never mixes two runs."""
        out = Path(out_dir)
        check_eval_outputs(out, prefix, plots=True, overwrite=overwrite)
        out.mkdir(parents=True, exist_ok=True)
        written = self._write_files(out, prefix, extra, plots, title)
        for p in eval_output_paths(out, prefix, plots=True).values():
            if p not in written.values() and p.is_file() and not p.is_symlink():
                p.unlink()
        return written

    def _write_files(self, out: Path, prefix: str, extra: Optional[Dict[str, Any]], plots: bool,
                     title: str) -> Dict[str, Path]:
        paths: Dict[str, Path] = {}
        rows = self.frame_rows()
        cols = self._columns()
        paths["csv"] = _atomic_text(out / f"{prefix}_frames.csv", _csv_text(rows, cols))
        doc = self.summary(extra)
        doc["frames"] = rows
        paths["json"] = _atomic_text(out / f"{prefix}.json", json.dumps(_jsonable(doc), indent=2))
        md = f"# Depth evaluation\n\n{self.markdown(title)}\n"
        if extra:
            md += "\n" + "\n".join(f"- {k}: {v}" for k, v in extra.items() if not isinstance(v, (dict, list))) + "\n"
        paths["md"] = _atomic_text(out / f"{prefix}.md", md)
        if plots:
            if not plots_available():
                return paths  # plots are optional: the callers say so (NO_PLOTS)
            if rows:
                paths["plot"] = plot_per_frame(rows, self.protocols, out / f"{prefix}_per_frame.png")
            if self._worst is not None:
                paths["worst"] = plot_worst_frame(self._worst, out / f"{prefix}_worst_frame.png", self.primary)
        return paths


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _csv_text(rows: List[Dict[str, Any]], cols: List[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r[k]))
                    for k in cols})
    return buf.getvalue()


def _atomic_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _save_fig(fig: Any, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return path


def plot_per_frame(rows: List[Dict[str, Any]], protocols: Sequence[Protocol], path: Path) -> Path:
    """Per-frame AbsRel, RMSE, delta1 and sc-inv over time (Agg backend; no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    use_time = all(r["time_s"] is not None for r in rows)
    x = [r["time_s"] if use_time else r["frame"] for r in rows]
    fig = Figure(figsize=(10, 7), constrained_layout=True)
    keys = ["abs_rel", "rmse", "delta1", "si_log"]
    axes = fig.subplots(len(keys), 1, sharex=True)
    for ax, k in zip(axes, keys):
        for p in protocols:
            y = [np.nan if r[f"{p.name}_{k}"] is None else r[f"{p.name}_{k}"] for r in rows]
            ax.plot(x, y, marker="o" if len(rows) < 50 else None, ms=3, lw=1, label=p.name)
        ax.set_ylabel(M.LABELS[k])
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("time since first frame (s)" if use_time else "frame")
    fig.suptitle("per-frame depth metrics")
    return _save_fig(fig, path)


def plot_worst_frame(worst: Dict[str, Any], path: Path, protocol: str) -> Path:
    """The worst frame (highest AbsRel): image, prediction, ground truth, per-pixel relative error."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    pred, gt, rgb = worst["pred"], worst["gt"], worst["rgb"]
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    hi = float(np.nanpercentile(gt[valid], 98)) if valid.any() else 1.0
    err = np.full(gt.shape, np.nan, dtype=np.float32)
    err[valid] = np.abs(pred[valid] - gt[valid]) / gt[valid]
    # dilate the sparse maps a little so single LiDAR pixels are visible
    k = np.ones((3, 3), np.uint8)
    gt_show = cv2.dilate(np.nan_to_num(gt, nan=0.0).astype(np.float32), k)
    err_show = cv2.dilate(np.nan_to_num(err, nan=0.0), k)
    gt_show = np.where(gt_show > 0, gt_show, np.nan)
    err_show = np.where(err_show > 0, err_show, np.nan)
    panels = ([("image", rgb, None, None, None)] if rgb is not None else []) + [
        ("prediction (m)", pred, "turbo", 0, hi), ("ground truth (m)", gt_show, "turbo", 0, hi),
        ("|pred - gt| / gt", err_show, "magma", 0, 1.0)]
    fig = Figure(figsize=(10, 2.6 * len(panels)), constrained_layout=True)
    axes = fig.subplots(len(panels), 1)
    for ax, (title, img, cmap, lo, up) in zip(np.atleast_1d(axes), panels):
        im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=up, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        cb = fig.colorbar(im, ax=ax, fraction=0.02)  # also for the image, so that all panels align
        if cmap is None:
            cb.ax.set_visible(False)
    fig.suptitle(f"worst frame {worst['index']} ({worst['name']}): {protocol} AbsRel {worst['abs_rel']:.3f}")
    return _save_fig(fig, path)


# ---- stream helpers (offline bag runs and the live evaluator node) ------------------------------
class StampMatcher:
    """Pairs each image with the ground-truth message nearest in stamp (within ``max_dt_ns``), for
    streams in (roughly) time order: an image is resolved once a ground-truth stamp beyond
    ``image + max_dt`` has arrived (nothing nearer can come), or at :meth:`finish`."""

    def __init__(self, max_dt_ns: int):
        self.max_dt = int(max_dt_ns)
        self.gt: List[Tuple[int, Any]] = []
        self.pending: List[Tuple[int, Any]] = []
        self.latest_gt = -(2 ** 62)
        # live: the oldest stamp whose image may still come (a camera frame still being processed);
        # ground truth near it is kept although a later one has arrived
        self.hold_from: Optional[int] = None

    def add_gt(self, stamp: int, payload: Any) -> List[Tuple[Any, Optional[Any]]]:
        self.gt.append((int(stamp), payload))
        self.latest_gt = max(self.latest_gt, int(stamp))
        return self._resolve(final=False)

    def add_image(self, stamp: int, item: Any) -> List[Tuple[Any, Optional[Any]]]:
        self.pending.append((int(stamp), item))
        return self._resolve(final=False)

    def finish(self) -> List[Tuple[Any, Optional[Any]]]:
        return self._resolve(final=True)

    def _resolve(self, final: bool) -> List[Tuple[Any, Optional[Any]]]:
        done: List[Tuple[Any, Optional[Any]]] = []
        keep = []
        for stamp, item in self.pending:
            if final or self.latest_gt > stamp + self.max_dt:
                best, best_dt = None, self.max_dt + 1
                for s, g in self.gt:
                    if abs(s - stamp) < best_dt:
                        best, best_dt = g, abs(s - stamp)
                done.append((item, best))
            else:
                keep.append((stamp, item))
        self.pending = keep
        if not final:  # forget ground truth that no pending or later image can use
            waiting = [s for s, _ in self.pending] + ([self.hold_from] if self.hold_from is not None else [])
            horizon = min(waiting, default=self.latest_gt) - self.max_dt
            self.gt = [(s, g) for s, g in self.gt if s >= horizon] or self.gt[-1:]
        return done


class LiveEvaluation:
    """The evaluator node's logic without ROS: feed it input-image stamps, depth images and LiDAR
    scans as they arrive; it pairs depth with LiDAR (nearest stamp), evaluates, and measures
    end-to-end latency and dropped frames.

    * latency of a depth frame = (wall time the depth image arrived) - (wall time its input image,
      same stamp, arrived): publish-to-receive included, clock-independent (works under
      ``ros2 bag play`` whose stamps are from the recording). ``stamp_latency`` = receive time -
      header stamp is also kept when the caller passes ``now_ns`` (meaningful live or with sim time).
    * dropped = input images with no depth image within ``drop_timeout`` seconds.
    ``transform(target_frame, source_frame)`` -> 4x4 (LiDAR -> camera) is supplied by the caller
    (tf2 in the node; a StaticTransforms or a calibration offline).
    """

    def __init__(self, evaluator: DepthEvaluator, transform: Any, gt_max_dt: float = 0.05,
                 drop_timeout: float = 2.0, keep_rgb: int = 30):
        self.evaluator = evaluator
        self.transform = transform
        self.matcher = StampMatcher(int(gt_max_dt * 1e9))
        self.drop_timeout = drop_timeout
        self.images: Dict[int, float] = {}       # stamp -> wall time, awaiting their depth
        self.rgb: Dict[int, Any] = {}            # stamp -> (lazy) rgb for the worst-frame figure
        self.early_depth: Dict[int, float] = {}  # stamp -> wall time: depth seen before its input image
        self.keep_rgb = keep_rgb
        self.n_images = self.n_depth = self.dropped = self.no_gt = self.unmatched_depth = self.errors = 0
        self.last_error = ""
        self.latencies: List[float] = []
        self.stamp_latencies: List[float] = []

    def on_image(self, stamp_ns: int, wall_s: float, rgb: Any = None) -> None:
        self.n_images += 1
        if self.early_depth.pop(int(stamp_ns), None) is not None:
            # its depth came first (the two travel separately): served, not dropped; no latency figure
            self.unmatched_depth -= 1
        else:
            self.images[int(stamp_ns)] = wall_s
        if rgb is not None:
            self.rgb[int(stamp_ns)] = rgb
            while len(self.rgb) > self.keep_rgb:
                self.rgb.pop(next(iter(self.rgb)))
        self._expire(wall_s)

    def _expire(self, wall_s: float) -> None:
        old = [s for s, t in self.images.items() if wall_s - t > self.drop_timeout]
        for s in old:
            del self.images[s]
            self.dropped += 1

    def on_depth(self, stamp_ns: int, wall_s: float, depth: np.ndarray, K: np.ndarray, frame_id: str,
                 now_ns: Optional[int] = None) -> List[FrameRecord]:
        self.n_depth += 1
        t_img = self.images.pop(int(stamp_ns), None)
        if t_img is not None:
            self.latencies.append(wall_s - t_img)
        else:
            self.unmatched_depth += 1
            self.early_depth[int(stamp_ns)] = wall_s
            while len(self.early_depth) > 100:
                self.early_depth.pop(next(iter(self.early_depth)))
        if now_ns is not None:
            self.stamp_latencies.append((now_ns - int(stamp_ns)) * 1e-9)
        self._expire(wall_s)
        item = {"stamp": int(stamp_ns), "depth": np.array(depth, dtype=np.float32), "K": np.asarray(K),
                "frame_id": frame_id, "latency_s": None if t_img is None else wall_s - t_img}
        self._hold()
        return self._evaluate(self.matcher.add_image(stamp_ns, item))

    def on_lidar(self, stamp_ns: int, points: np.ndarray, frame_id: str) -> List[FrameRecord]:
        self._hold()
        return self._evaluate(self.matcher.add_gt(stamp_ns, (np.asarray(points, dtype=np.float32)[:, :3], frame_id)))

    def _hold(self) -> None:
        """Depth comes after its camera image (the node's processing time) and often after the next
        LiDAR scan: keep the scans that camera images still awaiting their depth may need."""
        self.matcher.hold_from = min(self.images) if self.images else None

    def finish(self) -> List[FrameRecord]:
        recs = self._evaluate(self.matcher.finish())
        self.dropped += len(self.images)
        self.images.clear()
        return recs

    def _evaluate(self, pairs: List[Tuple[Any, Optional[Any]]]) -> List[FrameRecord]:
        out = []
        for item, gt in pairs:
            if gt is None:
                self.no_gt += 1
                continue
            points, lidar_frame = gt
            d = item["depth"]
            try:
                T = self.transform(item["frame_id"], lidar_frame)
                gt_depth = lidar_to_depth(points, T, item["K"], d.shape[1], d.shape[0])
            except Exception as exc:  # noqa: BLE001 - e.g. no tf yet: skip the frame, keep evaluating
                self.errors += 1
                self.last_error = f"frame {item['stamp']}: {type(exc).__name__}: {exc}"
                continue
            rgb = self.rgb.get(item["stamp"])
            if callable(rgb):
                rgb = rgb()
            if rgb is not None and np.asarray(rgb).shape[:2] != d.shape:
                rgb = None
            extra = {"latency_s": item["latency_s"]}
            out.append(self.evaluator.add(d, gt_depth, stamp_ns=item["stamp"], rgb=rgb, extra=extra))
        return out

    def stats(self, expected_images: int = 0) -> Dict[str, Any]:
        """Counts, latency figures and ``frame_coverage``: frames evaluated / ``expected_images`` (the camera
        images of the played bag, when known) or / camera images received (0.0 when there were none)."""
        lat = np.asarray(self.latencies, dtype=np.float64)
        total = int(expected_images) or self.n_images
        out: Dict[str, Any] = {"input_images": self.n_images, "depth_images": self.n_depth,
                               "dropped_frames": self.dropped, "frames_without_ground_truth": self.no_gt,
                               "depth_without_input_image": self.unmatched_depth,
                               "evaluation_errors": self.errors,
                               "frames_evaluated": len(self.evaluator),
                               "bag_images": int(expected_images),
                               "frame_coverage": (len(self.evaluator) / total) if total else 0.0}
        if lat.size:
            out.update({"latency_mean_ms": float(lat.mean() * 1e3), "latency_p50_ms": float(np.percentile(lat, 50) * 1e3),
                        "latency_p90_ms": float(np.percentile(lat, 90) * 1e3), "latency_max_ms": float(lat.max() * 1e3)})
        if self.stamp_latencies:
            out["stamp_latency_mean_ms"] = float(np.mean(self.stamp_latencies) * 1e3)
        return out
