"""Depth evaluation metrics of Eigen et al. (2014) and the protocols later work uses.

All functions take depth in metres (not log depth) as numpy arrays of the same shape.

Valid pixels: ground truth finite and inside (min_depth, max_depth), prediction finite and > 0,
and the optional mask.  The cap is exclusive by default (``gt < max_depth``), as the reference
evaluation code of monodepth2 and BTS has it, so published figures compare: ground truth exactly at
the cap (a saturated sensor, e.g. NYU's 10.000 m, about a fifth of the valid pixels of some frames)
is dropped; ``cap_inclusive=True`` keeps it (``gt <= max_depth``).  Zero / NaN / inf ground truth is *excluded*, never a NaN in the result.
An image with no valid pixel has no metrics: :func:`depth_metrics` returns ``None`` and the
:class:`MetricAccumulator` counts it under ``skipped``.

Dataset-level figures (:class:`MetricAccumulator`): by default each image's metrics are computed
over its valid pixels and the per-image values are averaged ("image" mean), as the public Eigen
split evaluations (monodepth2, BTS, AdaBins) do.  ``mode="pixel"`` pools all valid pixels of the
dataset instead (every pixel weighs the same); for si_log the pooled value is the pixel-weighted
mean of the per-image scale-invariant errors D_i (each image keeps its own scale), then sqrt.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import cv2
import numpy as np

METRIC_NAMES: Tuple[str, ...] = ("delta1", "delta2", "delta3", "abs_rel", "sq_rel", "rmse", "rmse_log", "si_log")
HIGHER_IS_BETTER = {"delta1", "delta2", "delta3"}
LABELS = {"delta1": "δ<1.25", "delta2": "δ<1.25²", "delta3": "δ<1.25³", "abs_rel": "AbsRel", "sq_rel": "SqRel",
          "rmse": "RMSE", "rmse_log": "RMSE log", "si_log": "sc-inv"}


# ---- crops and masks ------------------------------------------------------------------
def nyu_eigen_crop_mask(shape: Tuple[int, int]) -> np.ndarray:
    """Eigen crop of NYU: rows 45:471, cols 41:601 of 480x640 (scaled to other resolutions)."""
    h, w = shape
    m = np.zeros((h, w), dtype=bool)
    m[int(round(45 * h / 480)):int(round(471 * h / 480)), int(round(41 * w / 640)):int(round(601 * w / 640))] = True
    return m


def kitti_garg_crop_mask(shape: Tuple[int, int]) -> np.ndarray:
    """Garg et al. crop of KITTI: rows 0.40810811H:0.99189189H, cols 0.03594771W:0.96405229W."""
    h, w = shape
    m = np.zeros((h, w), dtype=bool)
    m[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    return m


def kitti_eigen_crop_mask(shape: Tuple[int, int]) -> np.ndarray:
    """Eigen et al. crop of KITTI: rows 0.3324324H:0.91351351H, cols 0.0359477W:0.96405229W."""
    h, w = shape
    m = np.zeros((h, w), dtype=bool)
    m[int(0.3324324 * h):int(0.91351351 * h), int(0.0359477 * w):int(0.96405229 * w)] = True
    return m


CROPS = {"none": None, "nyu_eigen": nyu_eigen_crop_mask, "kitti_garg": kitti_garg_crop_mask,
         "kitti_eigen": kitti_eigen_crop_mask}


def crop_mask(name: str, shape: Tuple[int, int]) -> Optional[np.ndarray]:
    try:
        fn = CROPS[name]
    except KeyError:
        raise KeyError(f"unknown crop {name!r}; known: {', '.join(CROPS)}") from None
    return None if fn is None else fn(shape)


def valid_mask(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
               min_depth: float = 1e-3, max_depth: Optional[float] = None, cap_inclusive: bool = False) -> np.ndarray:
    """gt finite, min_depth < gt < max_depth (``<=`` with ``cap_inclusive``), pred finite and > 0, mask."""
    with np.errstate(invalid="ignore"):
        v = np.isfinite(gt) & (gt > min_depth) & np.isfinite(pred) & (pred > 0)
        if max_depth is not None:
            v &= (gt <= max_depth) if cap_inclusive else (gt < max_depth)
    if mask is not None:
        if mask.shape != gt.shape:
            raise ValueError(f"mask shape {mask.shape} != ground-truth shape {gt.shape}")
        v &= mask.astype(bool)
    return v


def median_scale(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """Per-image median scaling factor median(gt) / median(pred) over valid pixels."""
    if not valid.any():
        return 1.0
    return float(np.median(gt[valid]) / np.median(pred[valid]))


def upsample_prediction(pred: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a depth prediction to the ground-truth resolution (H, W)."""
    if pred.shape == tuple(shape):
        return pred
    return cv2.resize(pred.astype(np.float32), (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)


# ---- per-image metrics -------------------------------------------------------------------
def _sums(p: np.ndarray, g: np.ndarray) -> Dict[str, float]:
    p = p.astype(np.float64)
    g = g.astype(np.float64)
    ratio = np.maximum(p / g, g / p)
    d = np.log(p) - np.log(g)
    err = p - g
    return {
        "n": float(p.size),
        "delta1": float(np.count_nonzero(ratio < 1.25)),
        "delta2": float(np.count_nonzero(ratio < 1.25 ** 2)),
        "delta3": float(np.count_nonzero(ratio < 1.25 ** 3)),
        "abs_rel": float(np.sum(np.abs(err) / g)),
        "sq_rel": float(np.sum(err * err / g)),
        "sq_err": float(np.sum(err * err)),
        "sq_log": float(np.sum(d * d)),
        "d_sum": float(np.sum(d)),
    }


def _from_sums(s: Dict[str, float]) -> Dict[str, float]:
    n = s["n"]
    d_var = max(s["sq_log"] / n - (s["d_sum"] / n) ** 2, 0.0)
    return {
        "delta1": s["delta1"] / n, "delta2": s["delta2"] / n, "delta3": s["delta3"] / n,
        "abs_rel": s["abs_rel"] / n, "sq_rel": s["sq_rel"] / n, "rmse": math.sqrt(s["sq_err"] / n),
        "rmse_log": math.sqrt(s["sq_log"] / n), "si_log": math.sqrt(d_var),
    }


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
                  min_depth: float = 1e-3, max_depth: Optional[float] = None,
                  median_scaling: bool = False, clamp_pred: bool = True,
                  cap_inclusive: bool = False) -> Optional[Dict[str, float]]:
    """The eight metrics of one image over its valid pixels, or ``None`` if it has none.

    ``pred`` is resized to ``gt``'s shape if they differ.  With ``clamp_pred`` the prediction is
    clamped to [min_depth, max_depth] (as the standard evaluations do) after optional median scaling.
    The result also carries ``n`` (valid pixels) and ``scale`` (the median-scaling factor, 1 if off).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 2 or gt.ndim != 2:
        raise ValueError(f"expected 2-D depth maps, got pred {pred.shape} and gt {gt.shape}")
    if pred.shape != gt.shape:
        pred = upsample_prediction(pred, gt.shape).astype(np.float64)
    valid = valid_mask(pred, gt, mask, min_depth, max_depth, cap_inclusive)
    if not valid.any():
        return None
    p = pred[valid]
    g = gt[valid]
    scale = 1.0
    if median_scaling:
        scale = float(np.median(g) / np.median(p))
        p = p * scale
    if clamp_pred:
        p = np.clip(p, min_depth, max_depth if max_depth is not None else np.inf)
    out = _from_sums(_sums(p, g))
    out["n"] = int(valid.sum())
    out["scale"] = scale
    return out


def _image_sums(pred, gt, mask, min_depth, max_depth, median_scaling, clamp_pred, cap_inclusive=False):
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        pred = upsample_prediction(pred, gt.shape).astype(np.float64)
    valid = valid_mask(pred, gt, mask, min_depth, max_depth, cap_inclusive)
    if not valid.any():
        return None, 1.0
    p, g = pred[valid], gt[valid]
    scale = float(np.median(g) / np.median(p)) if median_scaling else 1.0
    p = p * scale
    if clamp_pred:
        p = np.clip(p, min_depth, max_depth if max_depth is not None else np.inf)
    return _sums(p, g), scale


# ---- dataset accumulation ---------------------------------------------------------------
@dataclass
class MetricAccumulator:
    """Accumulates per-image metrics; ``result()`` gives the dataset-level table row.

    mode="image": mean over images of per-image metrics (default; monodepth2/BTS convention).
    mode="pixel": all valid pixels of the dataset pooled.
    """

    mode: str = "image"
    min_depth: float = 1e-3
    max_depth: Optional[float] = None
    median_scaling: bool = False
    clamp_pred: bool = True
    cap_inclusive: bool = False        # False: gt < max_depth (monodepth2 / BTS); True: gt <= max_depth
    per_image: List[Dict[str, float]] = field(default_factory=list)
    skipped: int = 0
    _pooled: Dict[str, float] = field(default_factory=dict)
    _si_pooled: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("image", "pixel"):
            raise ValueError(f"mode must be 'image' or 'pixel', got {self.mode!r}")

    def add(self, pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
            name: Optional[str] = None) -> Optional[Dict[str, float]]:
        sums, scale = _image_sums(pred, gt, mask, self.min_depth, self.max_depth, self.median_scaling,
                                  self.clamp_pred, self.cap_inclusive)
        if sums is None:
            self.skipped += 1
            return None
        m = _from_sums(sums)
        m["n"] = int(sums["n"])
        m["scale"] = scale
        if name is not None:
            m["name"] = name  # type: ignore[assignment]
        self.per_image.append(m)
        for k, v in sums.items():
            self._pooled[k] = self._pooled.get(k, 0.0) + v
        self._si_pooled += m["si_log"] ** 2 * sums["n"]
        return m

    def __len__(self) -> int:
        return len(self.per_image)

    def result(self) -> Dict[str, float]:
        """Dataset-level metrics plus ``images`` (evaluated) and ``skipped`` (no valid pixel)."""
        if not self.per_image:
            raise ValueError(f"no image with valid ground truth was evaluated ({self.skipped} skipped)")
        if self.mode == "image":
            out = {k: float(np.mean([m[k] for m in self.per_image])) for k in METRIC_NAMES}
        else:
            out = _from_sums(self._pooled)
            out["si_log"] = math.sqrt(self._si_pooled / self._pooled["n"])
        out["images"] = len(self.per_image)
        out["skipped"] = self.skipped
        out["pixels"] = int(sum(m["n"] for m in self.per_image))
        return out


# ---- presentation ----------------------------------------------------------------------
def format_table(rows: Dict[str, Dict[str, float]], digits: int = 3) -> str:
    """A markdown table, one row per named result (e.g. 'model', 'mean-depth baseline')."""
    head = "| | " + " | ".join(LABELS[k] for k in METRIC_NAMES) + " |"
    sep = "|---|" + "---|" * len(METRIC_NAMES)
    lines = [head, sep]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[k]:.{digits}f}" for k in METRIC_NAMES) + " |")
    return "\n".join(lines)


def to_json(rows: Dict[str, Dict[str, float]]) -> str:
    return json.dumps(rows, indent=2, sort_keys=True)


def mean_depth_baseline(gt_images: Iterable[np.ndarray], masks: Optional[Iterable[Optional[np.ndarray]]] = None,
                        min_depth: float = 1e-3, max_depth: Optional[float] = None,
                        cap_inclusive: bool = False) -> float:
    """The constant the paper's mean-depth baseline predicts: mean valid GT depth over a set."""
    total, count = 0.0, 0
    masks = list(masks) if masks is not None else None
    for i, gt in enumerate(gt_images):
        gt = np.asarray(gt, dtype=np.float64)
        m = valid_mask(np.ones_like(gt), gt, None if masks is None else masks[i], min_depth, max_depth, cap_inclusive)
        total += float(gt[m].sum())
        count += int(m.sum())
    if count == 0:
        raise ValueError("no valid ground-truth pixel to compute the mean depth from")
    return total / count
