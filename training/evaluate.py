"""Evaluation of a model file on NYU Depth v2 / KITTI: the paper's table, under two protocols.

    python -m training.evaluate --checkpoint runs/nyu/model.pt --dataset nyu --data nyu_depth_v2_labeled.mat
    python -m training.evaluate --checkpoint runs/kitti/model.pt --dataset kitti --data KITTI_RAW \
        --split eigen_test_files.txt [--gt velodyne|official|auto --gt-root data_depth_annotated]

For each frame the RGB goes through the evaluation transform (mono_depth_ros.preprocess: resize +
centre crop), the network predicts log depth on its output map, and the prediction is upsampled
(bilinear) to the ground-truth resolution over the camera region the output map covers
(``Profile.output_region()`` mapped back through the transform).  Metrics (mono_depth_ros.metrics,
8 of the paper) are computed on ground-truth pixels that are valid, inside the protocol's crop,
inside the depth range and covered by the prediction (``--fill-outside`` extends the prediction to
the whole image by repeating its border instead).

Protocols: "paper" (no crop, depth within the profile's range) and "modern" (NYU: Eigen crop, 10 m
cap; KITTI: Garg crop, 80 m cap).  Rows: "coarse" and "coarse + fine" (when the file holds a
trained fine network), and the mean-depth baseline (a constant: the mean valid ground-truth depth
of the evaluated set under that protocol).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from mono_depth_ros import metrics as M
from mono_depth_ros.checkpoint import atomic_write_bytes
from mono_depth_ros.geometry import InputTransform, compute_transform, output_geometry, resample_to_camera
from mono_depth_ros.preprocess import crop_resized
from mono_depth_ros.profiles import Profile

from .augment import Normalizer
from .datasets import REPO, DatasetError, FrameSource, Subset, build_source
from .utils import colorize, colorize_error, hstack_panels

DEFAULT_SPLITS = {
    "nyu": REPO.parent / "shared" / "data" / "splits" / "nyu" / "nyudepthv2_test_files_with_gt_bts.txt",
    "kitti": REPO.parent / "shared" / "data" / "splits" / "kitti" / "eigen_test_files_monodepth2.txt",
}


@dataclass(frozen=True)
class Protocol:
    name: str
    crop: str
    min_depth: float
    max_depth: float
    description: str


def protocols_for(family: str, profile: Profile) -> List[Protocol]:
    paper = Protocol("paper", "none", max(profile.min_depth, 1e-3), profile.max_depth,
                     f"no crop, depth in ({max(profile.min_depth, 1e-3):g}, {profile.max_depth:g}) m")
    if family == "nyu":
        return [paper, Protocol("modern", "nyu_eigen", 1e-3, 10.0, "NYU Eigen crop, depth in (0.001, 10) m")]
    if family == "kitti":
        return [paper, Protocol("modern", "kitti_garg", 1e-3, 80.0, "KITTI Garg crop, depth in (0.001, 80) m")]
    return [paper]


# ---- geometry: output map -> camera (mono_depth_ros.geometry) -------------------------------------------
def prediction_to_camera(pred: np.ndarray, t: InputTransform, profile: Profile,
                         fill_outside: bool = False) -> np.ndarray:
    """Output-map depth (h, w) -> camera resolution (src_h, src_w): ``geometry.resample_to_camera`` (bilinear,
    NaN outside the region the output map covers unless ``fill_outside``: border repeated)."""
    h, w = pred.shape
    return resample_to_camera(pred, output_geometry(profile, t.src_w, t.src_h, (w, h)), fill_outside)


# ---- data --------------------------------------------------------------------------------------------
class EvalFrames:
    """Map-style dataset: (normalised input, full-resolution GT, name, size, [rgb]) per frame."""

    def __init__(self, source: FrameSource, profile: Profile, keep_rgb_first: int = 0):
        self.source, self.profile, self.keep_rgb_first = source, profile, keep_rgb_first
        self.normalize = Normalizer(profile)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        fr = self.source.frame(i, None, mask_min_max=False)
        t = compute_transform(fr.rgb.shape[1], fr.rgb.shape[0], self.profile)
        x = self.normalize(crop_resized(fr.rgb, t))
        gt = np.where(fr.valid, fr.depth, 0).astype(np.float32)
        return {"image": x, "gt": gt, "name": fr.name, "index": i, "transform": t,
                "rgb": fr.rgb if i < self.keep_rgb_first else None}


def _collate(items):
    import torch

    return {"image": torch.from_numpy(np.stack([it["image"] for it in items])), "items": items}


# ---- evaluation ------------------------------------------------------------------------------------
def _models_rows(model, stage: str) -> List[Tuple[str, str]]:
    return [("coarse", "coarse"), ("coarse + fine", "fine")] if stage == "fine" else [("coarse", "coarse")]


class _Accumulators:
    """Per protocol: the rows' metric accumulators and the valid ground truth for the mean-depth baseline."""

    KEEP_BYTES = 256 * 2 ** 20   # above this the GT values are not kept: the baseline reads the GT again

    def __init__(self, protos: List[Protocol], rows: List[Tuple[str, str]], mode: str):
        self.protos, self.rows, self.mode = protos, rows, mode
        self.acc = {p.name: {r: M.MetricAccumulator(mode=mode, min_depth=p.min_depth, max_depth=p.max_depth)
                             for r, _ in rows} for p in protos}
        self.gt_sum = {p.name: 0.0 for p in protos}
        self.gt_cnt = {p.name: 0 for p in protos}
        self.kept: Dict[str, List[np.ndarray]] = {p.name: [] for p in protos}
        self.kept_bytes, self.keep = 0, True

    def add(self, preds: Dict[str, np.ndarray], gt: np.ndarray, name: str) -> None:
        """One frame's predictions (stage -> camera-resolution depth, NaN outside the covered region)."""
        region = np.isfinite(next(iter(preds.values())))
        for p in self.protos:
            cm = M.crop_mask(p.crop, gt.shape)
            mask = region if cm is None else region & cm
            for r, st in self.rows:
                self.acc[p.name][r].add(preds[st], gt, mask, name=name)
            vals = gt[M.valid_mask(np.ones_like(gt), gt, mask, p.min_depth, p.max_depth)]
            self.gt_sum[p.name] += float(vals.sum(dtype=np.float64))
            self.gt_cnt[p.name] += int(vals.size)
            if self.keep:
                self.kept[p.name].append(vals.astype(np.float32))
                self.kept_bytes += vals.nbytes
                if self.kept_bytes > self.KEEP_BYTES:
                    self.keep = False
                    self.kept = {k: [] for k in self.kept}

    def baseline(self, p: Protocol, ds: "EvalFrames", fill_outside: bool) -> Dict[str, Any]:
        """The mean-depth baseline's row under ``p``: a constant, the mean valid GT depth of the set."""
        if self.gt_cnt[p.name] == 0:
            raise DatasetError(f"no valid ground-truth pixel under protocol {p.name!r} in {len(ds)} frames")
        c = self.gt_sum[p.name] / self.gt_cnt[p.name]
        base = M.MetricAccumulator(mode=self.mode, min_depth=p.min_depth, max_depth=p.max_depth)
        if self.keep:
            for vals in self.kept[p.name]:
                if vals.size:
                    base.add(np.full(vals.shape, c, np.float32)[None], vals[None])
                else:
                    base.skipped += 1
        else:
            profile = ds.profile
            ones = np.ones((profile.output_h, profile.output_w), np.float32)
            for i in range(len(ds)):
                item = ds[i]
                gt, t = item["gt"], item["transform"]
                region = np.isfinite(prediction_to_camera(ones, t, profile, fill_outside))
                cm = M.crop_mask(p.crop, gt.shape)
                base.add(np.full(gt.shape, c, np.float32), gt, region if cm is None else region & cm)
        return dict(base.result(), constant=c)


def _prepare_image_dir(image_dir: Optional[Path], n: int, overwrite: bool) -> None:
    if not image_dir:
        return
    clash = existing_side_by_side(Path(image_dir), n)
    if clash and not overwrite:
        raise FileExistsError(f"{clash[0]} exists ({len(clash)} side-by-side PNG(s) of this run's frames in "
                              f"{image_dir}); refusing to overwrite them (pass --overwrite or another --images)")
    Path(image_dir).mkdir(parents=True, exist_ok=True)


def _predict(model, x, stage: str) -> Dict[str, np.ndarray]:
    """stage -> (B, h, w) metres on the output map."""
    import torch

    with torch.no_grad():
        coarse = model.coarse(x)
        outs = {"coarse": coarse}
        if stage == "fine":
            outs["fine"] = model.fine(x, coarse)
        return {k: torch.exp(v.float()).cpu().numpy()[:, 0] for k, v in outs.items()}


def evaluate_model(model, source: FrameSource, family: str = "nyu", stage: Optional[str] = None,
                   device: str = "cpu", batch_size: int = 8, workers: int = 0, max_images: Optional[int] = None,
                   image_dir: Optional[Path] = None, num_images: int = 0, fill_outside: bool = False,
                   mode: str = "image", progress: bool = False, overwrite_images: bool = False) -> Dict[str, Any]:
    """Evaluate ``model`` (EigenDepthNet) on ``source``; returns the result dict (see module doc).

    ``image_dir``: side-by-side PNGs of the first ``num_images`` frames (``NNNN_<name>.png``); PNGs of
    those indices already in the folder are a FileExistsError (before any work) unless ``overwrite_images``.
    """
    from torch.utils.data import DataLoader

    profile = model.profile
    stage = stage or model.stage
    rows = _models_rows(model, stage)
    protos = protocols_for(family, profile)
    if max_images is not None and max_images < len(source):
        source = Subset(source, range(max_images))
    ds = EvalFrames(source, profile, keep_rgb_first=num_images if image_dir else 0)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate)
    accs = _Accumulators(protos, rows, mode)
    _prepare_image_dir(image_dir, min(num_images, len(ds)), overwrite_images)
    model = model.to(device).eval()
    t0 = time.perf_counter()
    for batch in (tqdm(loader, desc="evaluate", unit="batch") if progress else loader):
        outs = _predict(model, batch["image"].to(device), stage)
        for b, item in enumerate(batch["items"]):
            preds = {k: prediction_to_camera(v[b], item["transform"], profile, fill_outside) for k, v in outs.items()}
            accs.add(preds, item["gt"], item["name"])
            if image_dir and item["index"] < num_images:
                save_side_by_side(Path(image_dir), item, preds[rows[-1][1]], profile, overwrite=overwrite_images)
    results: Dict[str, Any] = {"images": len(ds), "family": family, "stage": stage, "mode": mode,
                               "fill_outside": fill_outside, "seconds": time.perf_counter() - t0, "protocols": {}}
    for p in protos:   # the mean-depth baseline over the evaluated set, per protocol
        prow = {r: accs.acc[p.name][r].result() for r, _ in rows}
        prow["mean-depth baseline"] = accs.baseline(p, ds, fill_outside)
        results["protocols"][p.name] = {"crop": p.crop, "min_depth": p.min_depth, "max_depth": p.max_depth,
                                        "description": p.description, "rows": prow}
    return results


def format_results(results: Dict[str, Any], title: str = "") -> str:
    out = []
    for name, pr in results["protocols"].items():
        rows = pr["rows"]
        first = next(iter(rows.values()))
        out.append(f"### {title}{' — ' if title else ''}{name} protocol: {pr['description']} "
                   f"({first['images']} images, {first['skipped']} without valid GT)\n")
        out.append(M.format_table(rows))
        out.append(f"\nmean-depth baseline constant: {rows['mean-depth baseline']['constant']:.3f} m\n")
    return "\n".join(out)


def existing_side_by_side(out_dir: Path, n: int) -> List[Path]:
    """PNGs in ``out_dir`` that save_side_by_side would write (or mix with) for frame indices < ``n``."""
    if n <= 0 or not out_dir.is_dir():
        return []
    found = []
    for q in sorted(out_dir.iterdir()):
        head, sep, _ = q.name.partition("_")
        if sep and q.suffix == ".png" and len(head) == 4 and head.isdigit() and int(head) < n:
            found.append(q)
    return found


def save_side_by_side(out_dir: Path, item: Dict[str, Any], pred: np.ndarray, profile: Profile,
                      overwrite: bool = False) -> Path:
    """RGB | GT | prediction | |log error| at camera resolution (max width 640 per panel).

    Refuses (FileExistsError) to replace an existing file unless ``overwrite``."""
    gt = item["gt"]
    rgb = item["rgb"]
    ok = gt > 0
    lo = float(np.percentile(gt[ok], 2)) if ok.any() else profile.min_depth
    hi = float(np.percentile(gt[ok], 98)) if ok.any() else profile.max_depth
    if ok.mean() < 0.2:  # sparse LiDAR: thicken the points so people can see them
        gt_vis = cv2.dilate(gt, np.ones((3, 3), np.uint8))
    else:
        gt_vis = gt
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(ok & np.isfinite(pred), np.abs(np.log(np.maximum(pred, 1e-6)) - np.log(np.where(ok, gt, 1))),
                       np.nan)
    if ok.mean() < 0.2:
        err = cv2.dilate(np.nan_to_num(err, nan=-1).astype(np.float32), np.ones((3, 3), np.uint8))
        err[err < 0] = np.nan
    panels = [rgb, colorize(gt_vis, lo, hi), colorize(pred, lo, hi), colorize_error(err)]
    h = min(rgb.shape[0], int(round(rgb.shape[0] * 640 / rgb.shape[1])))
    grid = hstack_panels(panels, height=h)
    name = str(item["name"]).replace("/", "_")
    path = out_dir / f"{item['index']:04d}_{name}.png"
    ok, png = cv2.imencode(".png", np.ascontiguousarray(grid[:, :, ::-1]))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    return atomic_write_bytes(path, png.tobytes(), overwrite=overwrite)


# ---- CLI ---------------------------------------------------------------------------------------------
def build_eval_source(dataset: str, data: str, split: Optional[str] = None, gt: str = "auto",
                      gt_root: Optional[str] = None, nyu_split: str = "test", extra: Optional[Dict] = None
                      ) -> Tuple[FrameSource, str]:
    """(source, protocol family) for ``--dataset`` nyu | kitti | kitti_object | synthetic | <type>."""
    extra = dict(extra or {})
    p = Path(data) if data else None
    if dataset == "nyu":
        if p is not None and p.suffix == ".mat":
            split_file = split or (str(DEFAULT_SPLITS["nyu"]) if DEFAULT_SPLITS["nyu"].is_file() else None)
            if nyu_split != "all" and split_file is None:
                raise DatasetError("NYU evaluation needs the official test split list: pass --split "
                                   "nyudepthv2_test_files_with_gt_bts.txt (654 lines '<scene>/rgb_NNNNN.jpg ...')")
            return build_source({"type": "nyu_mat", "path": data, "split": nyu_split, "split_file": split_file,
                                 **extra}), "nyu"
        return build_source({"type": "nyu_sync", "root": data, "list": split, "mask_min_max": False, **extra}), "nyu"
    if dataset == "kitti":
        split_file = split or (str(DEFAULT_SPLITS["kitti"]) if DEFAULT_SPLITS["kitti"].is_file() else None)
        return build_source({"type": "kitti_raw", "root": data, "list": split_file, "gt": gt, "gt_root": gt_root,
                             **extra}), "kitti"
    if dataset == "kitti_object":
        return build_source({"type": "kitti_object", "root": data, **extra}), "kitti"
    if dataset == "synthetic":
        return build_source({"type": "synthetic", **extra}), "synthetic"
    raise DatasetError(f"unknown --dataset {dataset!r}; expected nyu, kitti, kitti_object or synthetic")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="model file (model.pt, coarse.pt or a training checkpoint.pt)")
    ap.add_argument("--dataset", required=True, help="nyu | kitti | kitti_object | synthetic")
    ap.add_argument("--data", default=None, help="nyu: labelled .mat or sync-layout root; kitti: raw root")
    ap.add_argument("--split", default=None, help="split list (NYU official test list / KITTI Eigen test files)")
    ap.add_argument("--nyu-split", default="test", choices=["test", "train", "all"])
    ap.add_argument("--gt", default="auto", choices=["auto", "velodyne", "official"], help="KITTI ground truth")
    ap.add_argument("--gt-root", default=None, help="KITTI official depth ground truth (data_depth_annotated)")
    ap.add_argument("--synthetic", default=None, help="synthetic: JSON of SyntheticDataset arguments")
    ap.add_argument("--stage", default=None, choices=["coarse", "fine"], help="evaluate only this stage")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--mode", default="image", choices=["image", "pixel"], help="per-image mean or pooled pixels")
    ap.add_argument("--fill-outside", action="store_true",
                    help="extend the prediction beyond the region the network sees (border repeat)")
    ap.add_argument("--images", default=None, help="folder for side-by-side PNGs (RGB | GT | pred | error); "
                    "PNGs of the same frames already there are not replaced without --overwrite")
    ap.add_argument("--num-images", type=int, default=8)
    ap.add_argument("--out", default=None, help="JSON results file (default: <checkpoint>.eval-<dataset>.json)")
    ap.add_argument("--overwrite", action="store_true", help="replace the JSON file and the side-by-side PNGs")
    args = ap.parse_args(argv)

    import torch

    from mono_depth_ros.checkpoint import ModelFileError, load_model

    try:
        model, info = load_model(args.checkpoint)
        stage = args.stage or info["stage"]
        if stage == "fine" and info["stage"] == "coarse":
            raise ModelFileError(f"{args.checkpoint} holds only a coarse network; use --stage coarse")
        extra = json.loads(args.synthetic) if args.synthetic else None
        source, family = build_eval_source(args.dataset, args.data, args.split, args.gt, args.gt_root,
                                           args.nyu_split, extra)
    except (DatasetError, ModelFileError, FileNotFoundError, ValueError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out) if args.out else Path(str(args.checkpoint) + f".eval-{args.dataset}.json")
    if out.exists() and not args.overwrite:
        print(f"evaluate: error: {out} exists; pass --overwrite or another --out", file=sys.stderr)
        return 2
    if args.images and not args.overwrite:
        n = len(source) if args.max_images is None else min(args.max_images, len(source))
        clash = existing_side_by_side(Path(args.images), min(args.num_images, n))
        if clash:
            print(f"evaluate: error: {clash[0]} exists ({len(clash)} side-by-side PNG(s) in {args.images}); "
                  f"pass --overwrite or another --images", file=sys.stderr)
            return 2
    print(f"evaluating {args.checkpoint} (profile {model.profile.name}, stage {stage}) on {len(source)} "
          f"{args.dataset} frames ({type(source).__name__}) on {device}", file=sys.stderr)
    res = evaluate_model(model, source, family, stage, device, args.batch_size, args.workers, args.max_images,
                         Path(args.images) if args.images else None, args.num_images, args.fill_outside,
                         args.mode, progress=True, overwrite_images=args.overwrite)
    res.update({"checkpoint": str(args.checkpoint), "dataset": args.dataset, "data": args.data,
                "split": args.split, "profile": model.profile.to_dict()})
    print(format_results(res, title=args.dataset))
    atomic_write_bytes(out, json.dumps(res, indent=2).encode(), overwrite=True)
    print(f"results saved to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
