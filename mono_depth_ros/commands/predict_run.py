"""``mono-depth predict`` at work: inputs expanded and checked from their headers, then each frame's depth
written as one set of files (NAME_depth.npy, NAME_depth.png, NAME_color.png, NAME.ply); the parser is
:mod:`mono_depth_ros.commands.predict`."""
from __future__ import annotations

import argparse
import logging
import math
import os
import re
import signal
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np
import tqdm

from ..camera import CameraIntrinsics
from ..cli import CLIError
from . import model_folder_problem, threads_problem
from ..colorize import colorize_depth
from ..default_models import default_model_for_files
from ..frame_files import write_frame_files
from ..image_files import DEFAULT_MAX_PIXELS, NotACameraImage, read_camera_image, read_header, too_large_message
from ..model_spec import geometry_note
from ..pipeline import DepthPipeline
from ..pointcloud import CloudBuilder

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}


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
        self.got = False
        try:
            self.old = signal.signal(signal.SIGINT, self._note)
        except ValueError:   # not the main thread: nothing to hold
            self.old = None
        return self

    def _note(self, signum, frame):
        self.got = True

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            if self.got and exc[0] is None:
                raise KeyboardInterrupt
        return False


def _color_range(depth, args: argparse.Namespace) -> Tuple[float, float]:
    """--color-min/--color-max, else the frame's 2-98 % depth percentiles (street and room alike get colours)."""
    lo, hi = args.color_min, args.color_max
    if lo is None or hi is None:
        finite = depth[np.isfinite(depth)]
        p2, p98 = (float(v) for v in np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)
        lo = p2 if lo is None else lo
        hi = p98 if hi is None else hi
    return float(lo), float(max(hi, lo + 1e-3))


def _write_frame(pipe, builder, rgb, cam, out: Path, name: str, args: argparse.Namespace) -> None:
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


def _check_counts(args: argparse.Namespace) -> None:
    """--every, --stride, --max-frames (>= 1) and --threads (0-64)."""
    if args.every < 1:
        raise CLIError(f"--every must be >= 1, got {args.every}")
    if args.stride < 1:
        raise CLIError(f"--stride must be >= 1 (the PLY's pixel step), got {args.stride}")
    if args.max_frames is not None and args.max_frames < 1:
        raise CLIError(f"--max-frames must be >= 1, got {args.max_frames}")
    problem = threads_problem(args.threads)
    if problem:
        raise CLIError(problem)


def _check_numbers(args: argparse.Namespace) -> None:
    _check_intrinsics_args(args)
    _check_counts(args)
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


def _check_out(args: argparse.Namespace, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder (--out takes the output folder)")
    for raw in args.inputs:
        if Path(raw).is_dir() and _same(out, Path(raw)):
            raise CLIError(f"--out {out} is the input folder {raw}: the outputs would mix with (and could replace) "
                           "the inputs; choose another --out")


def _load_camera(args: argparse.Namespace) -> Optional[CameraIntrinsics]:
    if not args.camera_info:
        return None
    try:
        return CameraIntrinsics.from_yaml(args.camera_info)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CLIError(f"--camera-info {args.camera_info}: {exc}") from None


def _plan(args: argparse.Namespace, out: Path, max_pixels: int) -> Tuple[List[_Frames], List[str], int, bool]:
    """(the inputs to run, the errors met, depth maps skipped, with a PLY); raises CLIError when nothing can
    run or outputs would be replaced."""
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
    return items, errors, skipped_depth, with_ply


def _open_pipeline(args: argparse.Namespace, items: List[_Frames]) -> DepthPipeline:
    model = args.model
    if model is None:   # no --model: the shipped model for this camera (mono_depth_ros.default_models)
        model, why = default_model_for_files([it.path for it in items])
        print(why)   # an info line: stdout (stderr is for errors and warnings)
    pipe = DepthPipeline(model, backend=args.backend, device=args.device, precision=args.precision,
                         output=args.output, min_depth=args.min_depth, max_depth=args.max_depth, scale=args.scale,
                         threads=args.threads or None)
    print(f"model {pipe.spec.describe()} on {pipe.backend.describe()}; output {args.output} resolution"
          + ("" if pipe.metric else "; depth is RELATIVE (not metric)"))
    return pipe


class _Predictor:
    """Runs the pipeline over the inputs, one set of files per image or video frame, with a progress bar."""

    def __init__(self, args: argparse.Namespace, pipe: DepthPipeline, out: Path, max_pixels: int, bar):
        self.args, self.pipe, self.out, self.max_pixels, self.bar = args, pipe, out, max_pixels, bar
        self.builder = CloudBuilder()
        self.written = 0
        self.warned: set = set()

    def frame(self, rgb, name: str) -> None:
        h, w = rgb.shape[:2]
        if (w, h) not in self.warned:
            self.warned.add((w, h))
            note = geometry_note(self.pipe.profile, w, h)
            if note:
                self.bar.write(f"mono-depth predict: warning: {note}", file=sys.stderr)
        before = self.args._skipped
        _write_frame(self.pipe, self.builder, rgb, _intrinsics(self.args, w, h), self.out, name, self.args)
        self.written += self.args._skipped == before

    def item(self, it: _Frames) -> None:
        if it.kind == "image":
            rgb = read_camera_image(it.path, max_pixels=self.max_pixels)
            self.frame(rgb, it.name)
            del rgb
            self.bar.update(1)
            return
        for k, bgr in _video_frames(it.path, self.args.every, self.args.max_frames):
            self.frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"{it.name}_{k:06d}")
            self.bar.set_postfix_str(f"{it.path.name} frame {k}", refresh=False)
            self.bar.update(1)

    def run(self, items: List[_Frames]) -> int:
        """Failed inputs (reported on stderr, the others still run)."""
        failures = 0
        for it in items:
            try:
                self.item(it)
            except (NotACameraImage, ValueError, FileExistsError, OSError) as exc:
                failures += 1
                self.bar.write(f"mono-depth predict: error: {exc}", file=sys.stderr)
        return failures


def run_predict(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # everything is checked before the model is loaded and before anything is written
    _check_numbers(args)
    problem = model_folder_problem(args.model)   # said before the inputs are read
    if problem:
        raise CLIError(problem)
    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else int(args.max_pixels)
    args._skipped = 0
    out = Path(args.out)
    _check_out(args, out)
    args._camera = _load_camera(args)
    items, errors, skipped_depth, _ = _plan(args, out, max_pixels)
    for e in errors:
        print(f"mono-depth predict: error: {e}", file=sys.stderr)
    pipe = _open_pipeline(args, items)
    if skipped_depth:
        print(f"skipped {skipped_depth} single-channel 16-bit image(s) (depth maps) found in the input folder(s)")
    total = None if args.quiet else _progress_total(items, args.every, args.max_frames)
    single = total == 1 or (total is None and len(items) == 1 and items[0].kind == "image")
    bar = tqdm.tqdm(total=total, unit="frame", disable=args.quiet or single or None, file=sys.stderr)
    predictor = _Predictor(args, pipe, out, max_pixels, bar)
    try:
        failures = len(errors) + predictor.run(items)
    except KeyboardInterrupt:
        bar.close()
        raise CLIError(f"interrupted after {predictor.written} frame(s) written to {out} (each frame's files are "
                       "complete); finish with the same command plus --skip-existing", code=130) from None
    finally:
        bar.close()
        pipe.close()
    print(f"wrote depth for {predictor.written} image(s)/frame(s) to {out}"
          + (f"; skipped {args._skipped} already done" if args._skipped else "")
          + (f"; {failures} input(s) failed" if failures else ""))
    return 1 if failures else 0
