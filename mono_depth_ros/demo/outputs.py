"""Step 3 of the demo: the depth bag read back into files (depth PNG/NPY, colourised depth, side-by-side
images, PLY clouds) and the metrics against the input's ground truth."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from ..bag import io as bio
from ..colorize import colorize_depth
from ..frame_files import write_frame_files
from ..msgs import conversions as conv
from ..pointcloud import CloudBuilder
from .common import FRAME_ID, GT_TOPIC, NAMESPACE, TRAIN_MEAN_DEPTH, _progress
from .evaluation import baseline_rows, metrics_markdown


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = np.ascontiguousarray(img)
    scale = max(img.shape[1] / 640.0, 0.35)
    th = max(1, int(round(scale * 2)))
    (tw, tht), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
    cv2.rectangle(img, (0, 0), (tw + 6, tht + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (3, tht + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), th, cv2.LINE_AA)
    return img


def side_by_side(rgb: np.ndarray, pred: np.ndarray, gt: Optional[np.ndarray], lo: float, hi: float,
                 max_rel_err: float = 0.5) -> np.ndarray:
    """RGB | GT | prediction | |pred - gt| / gt (turbo, 0 .. ``max_rel_err``; black = no value)."""
    panels = [_label(rgb.copy(), "RGB")]
    if gt is not None:
        panels.append(_label(colorize_depth(gt, lo, hi), f"ground truth {lo:.1f}-{hi:.1f} m"))
    panels.append(_label(colorize_depth(pred, lo, hi), "prediction"))
    if gt is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(pred - gt) / gt
            # colorize_depth paints small values warm: flip so that large errors are red, small ones blue
            flipped = np.where(np.isfinite(err), max_rel_err + 1e-3 - np.minimum(err, max_rel_err), np.nan)
        panels.append(_label(colorize_depth(flipped.astype(np.float32), 1e-3, max_rel_err + 1e-3),
                             f"abs rel error 0 (blue) - {max_rel_err:g} (red)"))
    return np.concatenate(panels, axis=1)


def _depth_frames(reader: Any, bio: Any, conv: Any) -> Iterator[Tuple[int, np.ndarray, Any, Optional[np.ndarray]]]:
    """(stamp, depth, intrinsics or None, colourised depth or None) per frame of a depth bag, in bag order,
    holding one frame at a time (its messages share the stamp and are written together)."""
    topics = [f"{NAMESPACE}/image", f"{NAMESPACE}/camera_info", f"{NAMESPACE}/colored"]
    cur: Optional[int] = None
    parts: Dict[str, Any] = {}

    def frame() -> Tuple[int, np.ndarray, Any, Optional[np.ndarray]]:
        assert cur is not None
        return cur, parts["image"], parts.get("camera_info"), parts.get("colored")

    for topic, _, m in reader.messages(topics):
        s = bio.stamp_to_ns(m.header.stamp)
        if s != cur:
            if cur is not None and "image" in parts:
                yield frame()
            cur, parts = s, {}
        kind = topic.rsplit("/", 1)[1]
        if kind == "image":
            parts[kind] = conv.image_msg_to_depth(m).astype(np.float32, copy=False)
        elif kind == "camera_info":
            parts[kind] = conv.camera_info_to_intrinsics(m)
        else:
            parts[kind] = conv.image_msg_to_rgb(m)
    if cur is not None and "image" in parts:
        yield frame()


class _InputByStamp:
    """The input bag's camera image (and ground truth) for a stamp, read forward in step with the depth
    bag (same order); at most ``keep`` unmatched stamps are held (the frames the depth run skipped)."""

    def __init__(self, reader: Any, topic: str, gt_topic: Optional[str], keep: int = 32) -> None:
        self._bio, self._conv, self._topic, self._gt, self._keep = bio, conv, topic, gt_topic, keep
        self._it = iter(reader.raw_messages([topic] + ([gt_topic] if gt_topic else [])))
        self._reader = reader
        self._held: "Dict[int, Dict[str, Any]]" = {}   # insertion order = bag order

    def _complete(self, s: int) -> bool:
        got = self._held.get(s, {})
        return "rgb" in got and (self._gt is None or "gt" in got)

    def get(self, s: int) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        bio, conv = self._bio, self._conv
        while not self._complete(s):
            nxt = next(self._it, None)
            if nxt is None:
                break
            conn, _, raw = nxt
            m = self._reader.deserialize(raw, conn)
            t = bio.stamp_to_ns(m.header.stamp)
            slot = self._held.setdefault(t, {})
            if conn.topic == self._topic:
                slot["rgb"] = conv.compressed_msg_to_rgb(m) if conn.msgtype == bio.COMPRESSED_IMAGE \
                    else conv.image_msg_to_rgb(m)
            else:
                slot["gt"] = bio.depth_image_to_metres(m, self._gt)
            while len(self._held) > self._keep:   # frames without depth (skipped by the run): let them go
                oldest = next(iter(self._held))
                if oldest == s:
                    break
                del self._held[oldest]
        if s not in self._held:
            return None, None
        for t in list(self._held):   # read before s: earlier frames the depth run skipped
            if t == s:
                break
            del self._held[t]
        got = self._held.pop(s)
        return got.get("rgb"), got.get("gt")


def export_outputs(out: Path, input_bag: Path, depth_bag: Path, with_gt: bool, model_name: str,
                   image_topic: Optional[str] = None, train_mean: float = TRAIN_MEAN_DEPTH,
                   progress: bool = True) -> Tuple[Dict[str, List[Path]], Optional[Dict[str, Dict[str, float]]], str]:
    """Read the depth bag (and the input bag's images / ground truth) back into files; returns
    (files by kind, metric rows or None, markdown)."""
    dirs = {k: out / k for k in ("depth", "color", "side_by_side", "clouds")}
    for sub in dirs.values():
        sub.mkdir(parents=True, exist_ok=True)
    files: Dict[str, List[Path]] = {k: [] for k in ("depth_png", "depth_npy", "color", "side_by_side", "ply")}
    builder = CloudBuilder()
    preds, gt_list = [], []
    # One frame at a time (memory does not grow with the bag): the depth bag's messages of one input image
    # share its stamp and log time, and come in the input's order, so both bags are read side by side.
    with bio.BagReader(depth_bag) as dr, bio.BagReader(input_bag) as ir:
        topic = image_topic or bio.detect_image_topic(ir.topics, input_bag)
        inputs = _InputByStamp(ir, topic, GT_TOPIC if with_gt else None)
        total = dr.topics[f"{NAMESPACE}/image"].count if f"{NAMESPACE}/image" in dr.topics else 0
        frames = _depth_frames(dr, bio, conv)
        for i, (s, d, intr, col) in enumerate(_progress(frames, total, "write outputs", progress)):
            name = f"frame_{i:04d}"
            write_frame_files(d, npy=dirs["depth"] / f"{name}.npy", png=dirs["depth"] / f"{name}.png",
                              color=col, color_png=dirs["color"] / f"{name}.png")
            files["depth_npy"].append(dirs["depth"] / f"{name}.npy")
            files["depth_png"].append(dirs["depth"] / f"{name}.png")
            if col is not None:
                files["color"].append(dirs["color"] / f"{name}.png")
            rgb, gt = inputs.get(s)
            if rgb is not None and rgb.shape[:2] != d.shape:
                rgb = cv2.resize(rgb, (d.shape[1], d.shape[0]), interpolation=cv2.INTER_AREA)
            if gt is not None and gt.shape != d.shape:
                gt = None  # (the demo's own bags are pixel-aligned; a foreign GT would need resampling)
            if rgb is not None:
                sbs = side_by_side(rgb, d, gt, *_color_limits(d, gt))
                cv2.imwrite(str(dirs["side_by_side"] / f"{name}.png"), cv2.cvtColor(sbs, cv2.COLOR_RGB2BGR))
                files["side_by_side"].append(dirs["side_by_side"] / f"{name}.png")
            if intr is not None:
                write_frame_files(d, cloud=builder.build(d, intr, rgb=rgb, organized=False),
                                  ply=dirs["clouds"] / f"{name}.ply")
                files["ply"].append(dirs["clouds"] / f"{name}.ply")
            if gt is not None:   # the metrics need every frame: only with ground truth (the synthetic sequence)
                preds.append(d)
                gt_list.append(gt)
    if not preds:
        return files, None, ""
    rows, md = _write_metrics(out, preds, gt_list, model_name, train_mean)
    files["metrics"] = [out / "metrics.md", out / "metrics.json"]
    return files, rows, md


def _color_limits(d: np.ndarray, gt: Optional[np.ndarray]) -> Tuple[float, float]:
    """The colour range of a side-by-side image: the ground truth's 1-99 % depth percentiles, else the
    prediction's."""
    fin = d[np.isfinite(d)]
    if gt is not None and np.isfinite(gt).any():
        lo, hi = float(np.nanpercentile(gt, 1)), float(np.nanpercentile(gt, 99))
    elif fin.size:
        lo, hi = float(np.percentile(fin, 1)), float(np.percentile(fin, 99))
    else:
        lo, hi = 0.0, 1.0
    return lo, max(hi, lo + 1e-3)


def _write_metrics(out: Path, preds: List[np.ndarray], gts: List[np.ndarray], model_name: str,
                   train_mean: float) -> Tuple[Dict[str, Dict[str, float]], str]:
    """metrics.md and metrics.json: the model against the mean-depth baselines; returns (rows, markdown)."""
    rows = baseline_rows(preds, gts, train_mean)
    md = metrics_markdown(rows, model_name, train_mean)
    (out / "metrics.md").write_text(f"# Demo metrics\n\n{md}")
    (out / "metrics.json").write_text(json.dumps({
        "model": model_name, "train_mean_depth_m": train_mean, "frames": len(preds),
        "rows": {"model": rows["model"], "mean_depth_baseline": rows["mean"],
                 "per_image_mean_baseline": rows["image_mean"]},
        "abs_rel_improvement_over_mean_baseline": 1.0 - rows["model"]["abs_rel"] / rows["mean"]["abs_rel"],
    }, indent=2, sort_keys=True) + "\n")
    return rows, md


def _depth_frame_id(depth_bag: Path) -> str:
    """The frame_id of the depth bag's first depth image (the input camera's frame), else FRAME_ID."""
    with bio.BagReader(depth_bag) as r:
        for _, _, m in r.messages([f"{NAMESPACE}/image"]):
            return str(m.header.frame_id) or FRAME_ID
    return FRAME_ID
