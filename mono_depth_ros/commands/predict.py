"""``mono-depth predict``: depth for images, folders and videos, written as .npy / 16-bit PNG / colour PNG / PLY."""
from __future__ import annotations

import argparse
import io
import logging
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict", help="predict depth for images, folders and videos",
        description="Run the depth pipeline on images, folders of images and videos. For each image (or video "
                    "frame) NAME it writes NAME_depth.npy (float32 metres, NaN invalid), NAME_depth.png (uint16 "
                    "millimetres, 0 invalid), NAME_color.png (turbo, near = warm) and, when camera intrinsics are "
                    "given, NAME.ply (the point cloud, camera optical frame). Existing outputs are never replaced "
                    "without --overwrite.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (their images and videos), videos")
    p.add_argument("--model", default=None, help="model file: .pt checkpoint, .onnx, or .engine (default: the road model for KITTI-shaped "
                   "input, else the demo model)")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"])
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the backend's best)")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "fp16", "int8"])
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    p.add_argument("--output", default="camera", choices=["camera", "network"],
                   help="depth at the camera's resolution (default) or the network's output resolution")
    p.add_argument("--camera-info", default=None, help="ROS camera_calibration YAML with the camera intrinsics")
    p.add_argument("--fx", type=float, default=None, help="focal lengths in pixels (give --fx and --fy together)")
    p.add_argument("--fy", type=float, default=None)
    p.add_argument("--cx", type=float, default=None,
                   help="principal point in pixels (give --cx and --cy together; default: the image centre)")
    p.add_argument("--cy", type=float, default=None)
    p.add_argument("--min-depth", type=float, default=None, help="valid range (m); default: the model's")
    p.add_argument("--max-depth", type=float, default=None)
    p.add_argument("--scale", type=float, default=1.0, help="factor applied to the model's depth")
    p.add_argument("--stride", type=int, default=1, help="pixel stride of the PLY point cloud (>= 1)")
    p.add_argument("--every", type=int, default=1, help="videos: use every N-th frame")
    p.add_argument("--max-frames", type=int, default=None, help="videos: at most this many frames each")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


class _Frames:
    """An input expanded to (name, frame source) items; frames are read lazily."""

    def __init__(self, path: Path, kind: str, name: str):
        self.path, self.kind, self.name = path, kind, name


def _expand(inputs: List[str]) -> Tuple[List[_Frames], List[str]]:
    items: List[_Frames] = []
    errors: List[str] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            if not found:
                errors.append(f"{p}: folder has no images or videos")
            for q in found:
                items.append(_Frames(q, "video" if q.suffix.lower() in VIDEO_EXTS else "image", q.stem))
        elif p.is_file():
            items.append(_Frames(p, "video" if p.suffix.lower() in VIDEO_EXTS else "image", p.stem))
        else:
            errors.append(f"{p}: no such file or folder")
    # unique output names within this run
    seen: dict = {}
    for it in items:
        n = seen.get(it.name, 0)
        seen[it.name] = n + 1
        if n:
            it.name = f"{it.name}_{n + 1}"
    return items, errors


def _video_frames(path: Path, every: int, max_frames: Optional[int]) -> Iterator[Tuple[int, "object"]]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open video")
    try:
        k = n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if k % every == 0:
                yield k, frame
                n += 1
                if max_frames is not None and n >= max_frames:
                    break
            k += 1
        if k == 0:
            raise ValueError(f"{path}: no frame could be decoded")
    finally:
        cap.release()


def _video_frame_count(path: Path, every: int, max_frames: Optional[int]) -> Optional[int]:
    """Frames _video_frames will yield, from the container's frame count; None when cv2 does not know it."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()
    if not (count and count > 0 and count < 1e9):   # 0 / -1 / NaN: unknown (streams, some containers)
        return None
    n = (int(count) + every - 1) // every
    return min(n, max_frames) if max_frames is not None else n


def _progress_total(items: List["_Frames"], every: int, max_frames: Optional[int]) -> Optional[int]:
    """Images plus the frames of the videos; None (a counter without a total) when a video's count is unknown."""
    total = 0
    for it in items:
        if it.kind == "image":
            total += 1
            continue
        n = _video_frame_count(it.path, every, max_frames)
        if n is None:
            return None
        total += n
    return total


def _check_intrinsics_args(args: argparse.Namespace) -> None:
    """--fx/--fy/--cx/--cy: fx and fy together, cx and cy together (and only with fx/fy), finite, focal lengths > 0."""
    import math

    from ..cli import CLIError

    given = [n for n in ("fx", "fy", "cx", "cy") if getattr(args, n) is not None]
    if args.camera_info and given:
        raise CLIError("give either --camera-info or --fx/--fy/--cx/--cy, not both")
    if not given:
        return
    if (args.fx is None) != (args.fy is None):
        raise CLIError("--fx and --fy go together: give both focal lengths (in pixels) or neither")
    if (args.cx is None) != (args.cy is None):
        raise CLIError("--cx and --cy go together: give both (the principal point, in pixels) or neither "
                       "(the image centre)")
    if args.fx is None:
        raise CLIError("--cx/--cy need --fx and --fy")
    for n in given:
        v = getattr(args, n)
        if not math.isfinite(v):
            raise CLIError(f"--{n} must be a finite number, got {v}")
    for n in ("fx", "fy"):
        if getattr(args, n) <= 0:
            raise CLIError(f"--{n} must be a positive focal length in pixels, got {getattr(args, n)}")


def _intrinsics(args: argparse.Namespace, width: int, height: int):
    from ..camera import CameraIntrinsics

    if args.camera_info:
        return args._camera  # loaded once; the pipeline rescales it to other image sizes
    if args.fx is None or args.fy is None:
        return None
    fx, fy = args.fx, args.fy
    cx = args.cx if args.cx is not None else (width - 1) / 2.0
    cy = args.cy if args.cy is not None else (height - 1) / 2.0
    cam = CameraIntrinsics(width, height, fx, fy, cx, cy)
    cam.validate()
    return cam


def _outputs(out: Path, name: str, with_ply: bool) -> List[Path]:
    paths = [out / f"{name}_depth.npy", out / f"{name}_depth.png", out / f"{name}_color.png"]
    if with_ply:
        paths.append(out / f"{name}.ply")
    return paths


def _write_frame(pipe, builder, rgb, cam, out: Path, name: str, args: argparse.Namespace) -> None:
    import cv2
    import numpy as np

    from ..checkpoint import atomic_write_bytes
    from ..colorize import colorize_depth
    from ..pointcloud import write_ply

    paths = _outputs(out, name, cam is not None)
    if not args.overwrite:
        existing = [str(p) for p in paths if p.exists()]
        if existing:
            raise FileExistsError(f"{existing[0]} exists; refusing to overwrite it (pass --overwrite)")
    res = pipe.infer_rgb(rgb, cam)
    depth = res.depth
    buf = io.BytesIO()
    np.save(buf, depth.astype(np.float32, copy=True))
    atomic_write_bytes(paths[0], buf.getvalue(), overwrite=True)
    mm = np.nan_to_num(depth * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
    mm = np.clip(np.rint(mm), 0, 65535).astype(np.uint16)
    ok, png = cv2.imencode(".png", mm)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    atomic_write_bytes(paths[1], png.tobytes(), overwrite=True)
    col = colorize_depth(depth, pipe.min_depth, pipe.max_depth)
    ok, png = cv2.imencode(".png", cv2.cvtColor(col, cv2.COLOR_RGB2BGR))
    atomic_write_bytes(paths[2], png.tobytes(), overwrite=True)
    if cam is not None:
        cloud = builder.build(depth, res.intrinsics, rgb=res.rgb, organized=False, stride=args.stride)
        write_ply(paths[3], cloud)


def run(args: argparse.Namespace) -> int:
    import cv2

    from ..camera import CameraIntrinsics
    from ..cli import CLIError
    from ..pipeline import DepthPipeline
    from ..pointcloud import CloudBuilder

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    _check_intrinsics_args(args)
    if args.every < 1:
        raise CLIError(f"--every must be >= 1, got {args.every}")
    if args.stride < 1:
        raise CLIError(f"--stride must be >= 1 (the PLY's pixel step), got {args.stride}")
    if args.max_frames is not None and args.max_frames < 1:
        raise CLIError(f"--max-frames must be >= 1, got {args.max_frames}")
    args._camera = CameraIntrinsics.from_yaml(args.camera_info) if args.camera_info else None
    items, errors = _expand(args.inputs)
    for e in errors:
        print(f"mono-depth predict: error: {e}", file=sys.stderr)
    if not items:
        raise CLIError("no readable inputs")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model is None:   # no --model: the shipped model for this camera (mono_depth_ros.default_models)
        from ..default_models import default_model_for_files

        model, why = default_model_for_files([it.path for it in items])
        print(why, file=sys.stderr)
    pipe = DepthPipeline(model, backend=args.backend, device=args.device, precision=args.precision,
                         output=args.output, min_depth=args.min_depth, max_depth=args.max_depth, scale=args.scale,
                         threads=args.threads)
    print(f"model {pipe.spec.describe()} on {pipe.backend.describe()}; output {args.output} resolution"
          + ("" if pipe.metric else "; depth is RELATIVE (not metric)"), file=sys.stderr)
    builder = CloudBuilder()
    from tqdm import tqdm

    total = None if args.quiet else _progress_total(items, args.every, args.max_frames)
    single = total == 1 or (total is None and len(items) == 1 and items[0].kind == "image")
    bar = tqdm(total=total, unit="frame", disable=args.quiet or single or None, file=sys.stderr)
    failures = len(errors)
    written = 0
    try:
        for it in items:
            try:
                if it.kind == "image":
                    bgr = cv2.imread(str(it.path), cv2.IMREAD_COLOR)
                    if bgr is None:
                        raise ValueError(f"{it.path}: cannot read image (corrupt or unsupported format)")
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    _write_frame(pipe, builder, rgb, _intrinsics(args, rgb.shape[1], rgb.shape[0]), out, it.name,
                                 args)
                    written += 1
                    bar.update(1)
                else:
                    for k, bgr in _video_frames(it.path, args.every, args.max_frames):
                        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                        _write_frame(pipe, builder, rgb, _intrinsics(args, rgb.shape[1], rgb.shape[0]), out,
                                     f"{it.name}_{k:06d}", args)
                        written += 1
                        bar.set_postfix_str(f"{it.path.name} frame {k}", refresh=False)
                        bar.update(1)
            except (ValueError, FileExistsError, OSError) as exc:
                failures += 1
                bar.write(f"mono-depth predict: error: {exc}", file=sys.stderr)
    finally:
        bar.close()
        pipe.close()
    print(f"wrote depth for {written} image(s)/frame(s) to {out}"
          + (f"; {failures} input(s) failed" if failures else ""), file=sys.stderr)
    return 1 if failures else 0
