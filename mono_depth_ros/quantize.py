"""Int8 quantisation of an exported ONNX model for the CPU (ONNX Runtime) path, and calibration data.

``quantize_onnx`` runs ONNX Runtime's static quantisation in QDQ format with per-channel int8
weights and uint8 activations, calibrated on real images passed through the project's
:class:`~mono_depth_ros.preprocess.Preprocessor` (the evaluation transform, exactly as inference
sees them).  The output ``<model>.int8.onnx`` carries the same ``metadata_props`` (profile, output
kind, metric) plus ``mono_depth_ros.quantization``, so it configures the pipeline like the fp32 file.

``mode="dynamic"`` (``quantize_dynamic``, int8 weights only for the fully connected layers C6/C7,
which hold ~99 % of the parameters) is kept for comparison; on the 2-core AVX-512 VNNI reference
machine static QDQ is both faster and about as accurate (docs/performance.md).

:func:`load_calibration_frames` is shared with the TensorRT INT8 calibrator.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import cv2
import numpy as np

from .checkpoint import atomic_write_bytes
from .preprocess import Preprocessor
from .profiles import Profile, get_profile

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
META_PROFILE = "mono_depth_ros.profile"
META_QUANT = "mono_depth_ros.quantization"


# ---- calibration data ----------------------------------------------------------------------------
def find_images(sources: "str | os.PathLike[str] | Sequence[str | os.PathLike[str]]", limit: Optional[int] = None,
                ) -> List[Path]:
    """Image files from files and/or folders (searched recursively), sorted, skipping depth maps."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found: List[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"calibration source {p} does not exist")
    # Depth / label maps are not camera images: skip the obvious ones (uint16 PNGs, *_depth*).
    keep = [q for q in found if "depth" not in q.name.lower() and "depth" not in q.parent.name.lower()]
    return keep[:limit] if limit else keep


def read_rgb(path: "str | os.PathLike[str]") -> np.ndarray:
    """An 8-bit camera image as RGB uint8 (grey -> RGB, alpha dropped); 16-bit single-channel files
    (depth maps) are refused."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    if img.dtype != np.uint8:
        raise ValueError(f"{path} is {img.dtype}, not an 8-bit camera image (a depth map?)")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(img, code)


def synthetic_frames(n: int, width: int = 640, height: int = 480, seed: int = 0) -> List[np.ndarray]:
    """Smooth random RGB frames (gradients + blobs), a stand-in when no real images are available."""
    rng = np.random.default_rng(seed)
    frames = []
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(n):
        base = rng.uniform(0, 255, 3)[None, None, :] * (0.4 + 0.6 * yy[..., None] / height)
        noise = cv2.resize(rng.uniform(-80, 80, (height // 32, width // 32, 3)).astype(np.float32),
                           (width, height), interpolation=cv2.INTER_CUBIC)
        frames.append(np.clip(base + noise + rng.normal(0, 4, (height, width, 3)), 0, 255).astype(np.uint8))
    return frames


def augmented_views(rgb: np.ndarray) -> Iterator[np.ndarray]:
    """The image, its mirror, and two brightness changes: more calibration samples from few images."""
    yield rgb
    yield np.ascontiguousarray(rgb[:, ::-1])
    yield np.clip(rgb.astype(np.float32) * 0.8, 0, 255).astype(np.uint8)
    yield np.clip(rgb.astype(np.float32) * 1.2, 0, 255).astype(np.uint8)


def load_calibration_frames(profile: "Profile | str", sources: Optional[Iterable[Any]] = None,
                            limit: int = 32, augment: bool = True, synthetic_fallback: bool = True,
                            ) -> List[np.ndarray]:
    """Normalised network inputs (1, 3, H, W) float32 for calibration, through the Preprocessor.

    ``sources``: image files/folders, or RGB uint8 arrays. Without any readable image, ``synthetic_fallback``
    gives synthetic frames (logged as such), else it is an error.
    """
    profile = get_profile(profile)
    pre = Preprocessor(profile)
    rgbs: List[np.ndarray] = []
    paths: List[Any] = []
    for s in list(sources or []):
        if isinstance(s, np.ndarray):
            rgbs.append(s)
        else:
            paths.append(s)
    if paths:
        for p in find_images(paths):
            try:
                rgbs.append(read_rgb(p))
            except ValueError as exc:
                log.warning("skipping calibration image: %s", exc)
    if not rgbs:
        if not synthetic_fallback:
            raise ValueError("no calibration images found")
        log.warning("no calibration images: calibrating on synthetic frames (accuracy will be worse than "
                    "with real images of the deployment scene)")
        rgbs = synthetic_frames(min(limit, 8))
    views: Iterable[np.ndarray] = (v for rgb in rgbs for v in augmented_views(rgb)) if augment else iter(rgbs)
    out = []
    for v in views:
        x, _ = pre(v)
        out.append(x.copy())
        if len(out) >= limit:
            break
    return out


def frames_digest(frames: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()[:16]


# ---- ONNX helpers --------------------------------------------------------------------------------
def _load_graph(path: "str | os.PathLike[str]") -> Any:
    import onnx

    return onnx.load(str(path), load_external_data=False)


def _metadata(m: Any) -> Dict[str, str]:
    return {p.key: p.value for p in m.metadata_props}


def read_metadata(path: "str | os.PathLike[str]") -> Dict[str, str]:
    return _metadata(_load_graph(path))


def _input_name_and_profile(path: Path, m: Any, profile: "Profile | str | None") -> "tuple[str, Profile]":
    name = m.graph.input[0].name
    meta = _metadata(m)
    if profile is None:
        if META_PROFILE not in meta:
            raise ValueError(f"{path} has no {META_PROFILE} metadata (not exported by `mono-depth export`): "
                             "quantise models exported by it, or pass profile= to quantize_onnx()")
        profile = get_profile(json.loads(meta[META_PROFILE]))
    return name, get_profile(profile)


def _set_metadata(path: Path, meta: Dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    atomic_write_bytes(path, m.SerializeToString(), overwrite=True)


def output_layers(path: "str | os.PathLike[str]") -> List[str]:
    """Names of the Conv/Gemm/MatMul nodes that write a graph output (the model's last linear layer)."""
    return _output_layers(_load_graph(path))


def _output_layers(m: Any) -> List[str]:
    outs = {o.name for o in m.graph.output}
    return [n.name for n in m.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and set(n.output) & outs]


@dataclass
class QuantizeResult:
    path: Path
    mode: str
    calibration: str   # description of the calibration set
    n_frames: int


def quantize_onnx(model: "str | os.PathLike[str]", out: "str | os.PathLike[str] | None" = None,
                  calib: Optional[Iterable[Any]] = None, mode: str = "static", profile: "Profile | str | None" = None,
                  n_frames: int = 32, per_channel: bool = True, overwrite: bool = False,
                  synthetic_fallback: bool = True, keep_output_layer_fp32: bool = True,
                  nodes_to_exclude: Sequence[str] = ()) -> QuantizeResult:
    """Quantise ``model`` (fp32 ONNX) to int8; returns where it was written (default ``<model>.int8.onnx``).

    mode ``static``: QDQ, per-channel int8 weights, uint8 activations, MinMax calibration on ``calib``
    images (files, folders or RGB arrays) through the Preprocessor.  mode ``dynamic``: int8 weights of
    MatMul/Gemm only (C6/C7), activations quantised at run time; needs no calibration data.

    ``keep_output_layer_fp32``: leave the layer that produces the model output (F4, a 64 -> 1 conv:
    0.2 % of the FLOPs) in fp32; on the NYU network this halves the int8 error for ~0.5 ms.
    ``nodes_to_exclude``: further node names to keep in fp32.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = Path(model)
    if not src.is_file():
        raise FileNotFoundError(f"ONNX model {src} does not exist")
    dst = Path(out) if out is not None else src.with_name(src.stem + ".int8.onnx")
    if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(dst, src)):
        raise ValueError(f"the output {dst} is the input model {src}: quantising would replace the fp32 "
                         f"source (even with --overwrite); choose another --out (default <model>.int8.onnx)")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} exists; refusing to overwrite it (pass --overwrite)")
    if mode not in ("static", "dynamic"):
        raise ValueError(f"mode must be static or dynamic, got {mode!r}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    graph = _load_graph(src)   # read once: metadata, input name, profile, output layer
    meta = _metadata(graph)
    input_name, prof = _input_name_and_profile(src, graph, profile)
    exclude = list(nodes_to_exclude) + (_output_layers(graph) if keep_output_layer_fp32 else [])
    del graph

    with tempfile.TemporaryDirectory(prefix="mono_depth_quant.", dir=str(dst.parent)) as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Shape inference + graph cleanup, as ORT recommends before quantising.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        tmp_out = Path(tmp) / "q.onnx"
        if mode == "static":
            frames = load_calibration_frames(prof, calib, limit=n_frames, synthetic_fallback=synthetic_fallback)
            desc = f"{len(frames)} frames, digest {frames_digest(frames)}"

            class Reader(CalibrationDataReader):  # type: ignore[misc]
                def __init__(self) -> None:
                    self._it = iter(frames)

                def get_next(self) -> Optional[Dict[str, np.ndarray]]:
                    x = next(self._it, None)
                    return None if x is None else {input_name: x}

            quantize_static(str(pre), str(tmp_out), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude)
            n = len(frames)
        else:
            quantize_dynamic(str(pre), str(tmp_out), weight_type=QuantType.QInt8, per_channel=per_channel,
                             op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=exclude)
            desc, n = "none (dynamic)", 0
        meta[META_QUANT] = json.dumps({"mode": mode, "format": "QDQ" if mode == "static" else "dynamic",
                                       "per_channel": per_channel, "calibration": desc, "source": src.name,
                                       "fp32_nodes": exclude})
        _set_metadata(tmp_out, meta)
        if dst.exists():
            dst.unlink()
        os.replace(tmp_out, dst)
    log.info("quantised %s -> %s (%s, calibration: %s)", src, dst, mode, desc)
    return QuantizeResult(dst, mode, desc, n)


# ---- accuracy --------------------------------------------------------------------------------------
def compare_log_depth(ref: np.ndarray, test: np.ndarray) -> Dict[str, float]:
    """Accuracy of ``test`` against ``ref`` (both log depth): abs log diff, relative depth error, delta1.

    delta1 = fraction of pixels with max(d/d_ref, d_ref/d) < 1.25; ``spread`` = std of ``ref`` per
    frame (mean), the scale the errors should be read against (a near-constant output hides errors).
    """
    ref = np.asarray(ref, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    d = test - ref
    ratio = np.exp(np.abs(d))
    spread = float(np.mean([r.std() for r in ref.reshape(ref.shape[0], -1)])) if ref.ndim > 1 else float(ref.std())
    return {"max_abs_log": float(np.abs(d).max()), "mean_abs_log": float(np.abs(d).mean()),
            "abs_rel": float(np.mean(np.abs(np.expm1(d)))), "max_rel": float(np.abs(np.expm1(d)).max()),
            "delta1": float(np.mean(ratio < 1.25)), "spread_log": spread}
