"""``mono-depth predict``: depth for images, folders and videos, written as .npy / 16-bit PNG / colour PNG / PLY."""
from __future__ import annotations

import argparse
import logging
import os
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
    p.add_argument("--color-min", type=float, default=None,
                   help="depth (m) at the warm end of NAME_color.png (default: each frame's 2 %% depth percentile)")
    p.add_argument("--color-max", type=float, default=None,
                   help="depth (m) at the cool end of NAME_color.png (default: each frame's 98 %% depth percentile)")
    p.add_argument("--max-pixels", type=float, default=None,
                   help="refuse images larger than this many pixels (default 50e6, read from the file header "
                        "before decoding; memory grows ~25 bytes per pixel, ~150 with a point cloud); 0: no limit")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--skip-existing", action="store_true",
                   help="skip frames whose outputs are all there (resume an interrupted run); incomplete sets "
                        "are redone")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


class _Frames:
    """An input expanded to (name, frame source) items; frames are read lazily."""

    def __init__(self, path: Path, kind: str, name: str, in_folder: bool = False):
        self.path, self.kind, self.name, self.in_folder = path, kind, name, in_folder


def _expand(inputs: List[str]) -> Tuple[List[_Frames], List[str]]:
    items: List[_Frames] = []
    errors: List[str] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            # a folder of earlier predict outputs: its colourised depth (NAME_color.png beside NAME_depth.npy) is
            # no camera image (NAME_depth.png, 16-bit, is skipped as a depth map later)
            found = [q for q in found if not (q.name.endswith("_color.png")
                                              and (q.parent / (q.name[:-len("_color.png")] + "_depth.npy")).is_file())]
            if not found:
                errors.append(f"{p}: folder has no images or videos")
            for q in found:
                items.append(_Frames(q, "video" if q.suffix.lower() in VIDEO_EXTS else "image", q.stem, True))
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


class _SetWriter:
    """One frame's files written as a set: each into a hidden temporary file beside its target, then all
    renamed together with SIGINT held back, so an interrupted run never leaves a frame with part of its
    files (and never a half-written file)."""

    def __init__(self, out: Path):
        self.out = out
        self.tmps: List[Tuple[Path, Path]] = []

    def path(self, final: Path) -> Path:
        tmp = final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")
        self.tmps.append((tmp, final))
        return tmp

    def commit(self) -> None:
        with _sigint_held():
            for tmp, final in self.tmps:
                os.replace(tmp, final)
        self.tmps = []

    def discard(self) -> None:
        for tmp, _ in self.tmps:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
        self.tmps = []


class _sigint_held:
    """Defers SIGINT (Ctrl-C) over a few renames; re-raised as KeyboardInterrupt right after."""

    def __enter__(self):
        import signal

        self.got = False
        try:
            self.old = signal.signal(signal.SIGINT, self._note)
        except ValueError:   # not the main thread: nothing to hold
            self.old = None
        return self

    def _note(self, signum, frame):
        self.got = True

    def __exit__(self, *exc):
        import signal

        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            if self.got and exc[0] is None:
                raise KeyboardInterrupt
        return False


def _color_range(depth, args: argparse.Namespace) -> Tuple[float, float]:
    """--color-min/--color-max, else the frame's 2-98 % depth percentiles (street and room alike get colours)."""
    import numpy as np

    lo, hi = args.color_min, args.color_max
    if lo is None or hi is None:
        finite = depth[np.isfinite(depth)]
        p2, p98 = (float(v) for v in np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)
        lo = p2 if lo is None else lo
        hi = p98 if hi is None else hi
    return float(lo), float(max(hi, lo + 1e-3))


def _write_frame(pipe, builder, rgb, cam, out: Path, name: str, args: argparse.Namespace) -> None:
    from ..colorize import colorize_depth
    from ..frame_files import write_frame_files

    paths = _outputs(out, name, cam is not None)
    if not args.overwrite:
        present = [p for p in paths if p.exists()]
        if present and args.skip_existing and len(present) == len(paths):
            args._skipped += 1
            return
        if present and not args.skip_existing:
            raise FileExistsError(f"{present[0]} exists; refusing to overwrite it (pass --skip-existing or "
                                  "--overwrite)")
    res = pipe.infer_rgb(rgb, cam)
    depth = res.depth
    out.mkdir(parents=True, exist_ok=True)
    w = _SetWriter(out)
    try:
        lo, hi = _color_range(depth, args)
        cloud = None
        if cam is not None:
            cloud = builder.build(depth, res.intrinsics, rgb=res.rgb, organized=False, stride=args.stride)
        write_frame_files(depth, npy=w.path(paths[0]), png=w.path(paths[1]), color=colorize_depth(depth, lo, hi),
                          color_png=w.path(paths[2]), color_in_place=True,
                          cloud=cloud, ply=w.path(paths[3]) if cam is not None else None)
        w.commit()
    finally:
        w.discard()


def _existing_outputs(out: Path, items: List["_Frames"], with_ply: bool) -> Tuple[int, Optional[Path]]:
    """(how many inputs already have output files in ``out``, the first such file)."""
    import re

    if not out.is_dir():
        return 0, None
    names = set(os.listdir(out))
    n, first = 0, None
    for it in items:
        if it.kind == "image":
            hits = [p for p in _outputs(out, it.name, with_ply) if p.name in names]
        else:
            rx = re.compile(re.escape(it.name) + r"_\d{6}(_depth\.npy|_depth\.png|_color\.png|\.ply)$")
            hits = [out / x for x in sorted(names) if rx.match(x)]
        if hits:
            n += 1
            first = first or hits[0]
    return n, first


def _check_numbers(args: argparse.Namespace) -> None:
    import math

    from ..cli import CLIError

    _check_intrinsics_args(args)
    if args.every < 1:
        raise CLIError(f"--every must be >= 1, got {args.every}")
    if args.stride < 1:
        raise CLIError(f"--stride must be >= 1 (the PLY's pixel step), got {args.stride}")
    if args.max_frames is not None and args.max_frames < 1:
        raise CLIError(f"--max-frames must be >= 1, got {args.max_frames}")
    for n in ("min_depth", "max_depth", "color_min", "color_max"):
        v = getattr(args, n)
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise CLIError(f"--{n.replace('_', '-')} must be a finite number >= 0, got {v}")
    if args.min_depth is not None and args.max_depth is not None and not args.min_depth < args.max_depth:
        raise CLIError(f"--min-depth {args.min_depth} must be below --max-depth {args.max_depth}")
    if args.color_min is not None and args.color_max is not None and not args.color_min < args.color_max:
        raise CLIError(f"--color-min {args.color_min} must be below --color-max {args.color_max}")
    if not (math.isfinite(args.scale) and args.scale > 0):
        raise CLIError(f"--scale must be a positive number, got {args.scale}")
    if args.max_pixels is not None and not (math.isfinite(args.max_pixels) and args.max_pixels >= 0):
        raise CLIError(f"--max-pixels must be >= 0 (0: no limit), got {args.max_pixels}")


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _vet_inputs(items: List["_Frames"], args: argparse.Namespace, max_pixels: int) -> Tuple[List["_Frames"], List[str], int]:
    """Checks every input from its header before the model is loaded: oversized images and depth maps
    (16-bit single channel) are errors when named, skipped when found in a folder; videos' frame size."""
    from ..image_files import read_header, too_large_message

    keep: List[_Frames] = []
    errors: List[str] = []
    skipped = 0
    for it in items:
        if it.kind == "image":
            h = read_header(it.path)
            if h is not None and h.depth_map_like:
                if it.in_folder:
                    skipped += 1
                    continue
                errors.append(f"{it.path} is a single-channel {h.bits}-bit image (a depth map?), not a camera image")
                continue
            if h is not None and max_pixels and h.pixels > max_pixels:
                errors.append(too_large_message(it.path, h.width, h.height, max_pixels))
                continue
        else:
            import cv2

            cap = cv2.VideoCapture(str(it.path))
            try:
                if not cap.isOpened():
                    errors.append(f"{it.path}: cannot open video (corrupt, truncated or unsupported format)")
                    continue
                w, hh = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            finally:
                cap.release()
            if max_pixels and w * hh > max_pixels:
                errors.append(too_large_message(it.path, w, hh, max_pixels))
                continue
        keep.append(it)
    return keep, errors, skipped


def run(args: argparse.Namespace) -> int:
    from ..camera import CameraIntrinsics
    from ..cli import CLIError
    from ..image_files import DEFAULT_MAX_PIXELS, NotACameraImage, read_camera_image
    from ..model_spec import geometry_note
    from ..pipeline import DepthPipeline
    from ..pointcloud import CloudBuilder

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # everything is checked before the model is loaded and before anything is written
    _check_numbers(args)
    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else int(args.max_pixels)
    args._skipped = 0
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder (--out takes the output folder)")
    for raw in args.inputs:
        if Path(raw).is_dir() and _same(out, Path(raw)):
            raise CLIError(f"--out {out} is the input folder {raw}: the outputs would mix with (and could replace) "
                           "the inputs; choose another --out")
    if args.camera_info:
        try:
            args._camera = CameraIntrinsics.from_yaml(args.camera_info)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CLIError(f"--camera-info {args.camera_info}: {exc}") from None
    else:
        args._camera = None
    items, errors = _expand(args.inputs)
    items, more, skipped_depth = _vet_inputs(items, args, max_pixels)
    errors += more
    with_ply = args._camera is not None or args.fx is not None
    inputs = [it.path for it in items]
    for it in items:
        for o in _outputs(out, it.name, with_ply):
            if any(_same(o, q) for q in inputs if q.name == o.name):
                raise CLIError(f"output {o} would replace the input {o}; choose another --out")
    if not items:
        for e in errors[:-1]:
            print(f"mono-depth predict: error: {e}", file=sys.stderr)
        if errors:
            raise CLIError(errors[-1])
        raise CLIError("no camera images among the inputs" + (f" ({skipped_depth} depth map(s) skipped)"
                                                               if skipped_depth else ""))
    if not args.overwrite and not args.skip_existing:
        n, first = _existing_outputs(out, items, with_ply)
        if n:
            raise CLIError(f"{n} of the {len(items)} input(s) already have outputs in {out} (first {first}); "
                           "refusing to overwrite them: pass --skip-existing to do only the missing frames, or "
                           "--overwrite to redo them")
    for e in errors:
        print(f"mono-depth predict: error: {e}", file=sys.stderr)
    model = args.model
    if model is None:   # no --model: the shipped model for this camera (mono_depth_ros.default_models)
        from ..default_models import default_model_for_files

        model, why = default_model_for_files([it.path for it in items])
        print(why)   # an info line: stdout (stderr is for errors and warnings)
    pipe = DepthPipeline(model, backend=args.backend, device=args.device, precision=args.precision,
                         output=args.output, min_depth=args.min_depth, max_depth=args.max_depth, scale=args.scale,
                         threads=args.threads)
    print(f"model {pipe.spec.describe()} on {pipe.backend.describe()}; output {args.output} resolution"
          + ("" if pipe.metric else "; depth is RELATIVE (not metric)"))
    if skipped_depth:
        print(f"skipped {skipped_depth} single-channel 16-bit image(s) (depth maps) found in the input folder(s)")
    builder = CloudBuilder()
    from tqdm import tqdm

    total = None if args.quiet else _progress_total(items, args.every, args.max_frames)
    single = total == 1 or (total is None and len(items) == 1 and items[0].kind == "image")
    bar = tqdm(total=total, unit="frame", disable=args.quiet or single or None, file=sys.stderr)
    failures = len(errors)
    written = 0
    warned: set = set()

    def one(rgb, name: str) -> None:
        nonlocal written
        h, w = rgb.shape[:2]
        if (w, h) not in warned:
            warned.add((w, h))
            note = geometry_note(pipe.profile, w, h)
            if note:
                bar.write(f"mono-depth predict: warning: {note}", file=sys.stderr)
        before = args._skipped
        _write_frame(pipe, builder, rgb, _intrinsics(args, w, h), out, name, args)
        written += args._skipped == before

    try:
        for it in items:
            try:
                if it.kind == "image":
                    rgb = read_camera_image(it.path, max_pixels=max_pixels)
                    one(rgb, it.name)
                    del rgb
                    bar.update(1)
                else:
                    for k, bgr in _video_frames(it.path, args.every, args.max_frames):
                        import cv2

                        one(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"{it.name}_{k:06d}")
                        bar.set_postfix_str(f"{it.path.name} frame {k}", refresh=False)
                        bar.update(1)
            except (NotACameraImage, ValueError, FileExistsError, OSError) as exc:
                failures += 1
                bar.write(f"mono-depth predict: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        bar.close()
        raise CLIError(f"interrupted after {written} frame(s) written to {out} (each frame's files are complete); "
                       "finish with the same command plus --skip-existing", code=130) from None
    finally:
        bar.close()
        pipe.close()
    print(f"wrote depth for {written} image(s)/frame(s) to {out}"
          + (f"; skipped {args._skipped} already done" if args._skipped else "")
          + (f"; {failures} input(s) failed" if failures else ""))
    return 1 if failures else 0
