"""The demo (``make demo`` / ``mono-depth demo``): the main job end to end on a machine with nothing on it.

Steps (each a function, so tests can run them on a few small frames):

1. :func:`write_synthetic_bag` -- render a short synthetic camera sequence (:func:`mono_depth_ros.synthetic.
   render_sequence`, exact ground-truth depth) and write it as a ROS 2 bag (rosbag2, MCAP): ``/camera/image_raw``
   (sensor_msgs/Image rgb8), ``/camera/camera_info``, ``/camera/depth/ground_truth`` (32FC1 metres, NaN invalid)
   and ``/tf`` (the camera's pose in ``map``).  Or, with ``--input``, a user's bag (used as it is), an image
   folder, an image or a video (written into a bag first; no ground truth then).
2. :func:`run_depth_bag` -- that bag through ``mono-depth bag`` (:func:`mono_depth_ros.bag.run.run_bag`): the
   ROS node's own processing (DepthPipeline + ros.conversions, same headers), into a depth bag with
   ``/depth/image``, ``/depth/camera_info``, ``/depth/points``, ``/depth/colored`` (+ the input's topics).
3. :func:`export_outputs` -- the depth bag read back into files: depth (16-bit PNG in mm, 0 = invalid, and .npy
   float32 metres, NaN = invalid), colourised depth, side-by-side PNGs (RGB | GT | prediction | error), PLY
   point clouds (valid pixels, coloured), and the metrics vs ground truth and vs the mean-depth baselines
   (``metrics.md`` + ``metrics.json``).

:func:`run_demo` does all three into an output directory that it owns: the directory is marked with
:data:`MARKER`; an existing directory without the marker is never written into (unless ``overwrite``), and
only the demo's own entries are ever replaced.

``python -m mono_depth_ros.demo --heldout`` evaluates a model on held-out synthetic sequences (the table in
``mono_depth_ros/models/README.md``).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

MARKER = ".mono-depth-demo"
DEFAULT_OUT = Path("out") / "demo"
MODELS_DIR = Path(__file__).resolve().parent / "models"
from .model_spec import DEMO_MODEL  # noqa: E402 - the one definition (re-exported here)

# The scene the demo renders: indoor, like the demo model's training set, but a seed the model never saw
# (it was trained on SyntheticDataset("indoor", seed=0) frames; seeds give disjoint scene sets).
DEMO_KIND = "indoor"
DEMO_SEED = 2           # picked by content (a furnished room with a window), not by the metrics
DEMO_FRAMES = 24
DEMO_SIZE = (320, 240)    # the demo model's camera size (its profile resizes 320x240 -> 168x126 -> crop 160x120)
DEMO_FPS = 10.0
# The paper's mean-depth baseline predicts one constant everywhere: the mean valid ground-truth depth of the
# *training* set. For the demo model's training set (synthetic indoor, seed 0, frames 0-1999 at 168x126):
HELDOUT_SEEDS0 = 100      # the held-out sequences of models/README.md: seeds 100, 101, ...
HELDOUT_SEQUENCES = 10    # how many of them `make demo` evaluates after the demo sequence
TRAIN_MEAN_DEPTH = 3.651  # metres; reproduced by train_mean_depth() (see models/README.md)
# When the user's images have no camera_info: the intrinsics of a 62 deg horizontal field of view (the
# synthetic indoor camera's, Kinect-like), principal point at the centre.
DEFAULT_HFOV_DEG = 62.0

FRAME_ID = "camera_optical_frame"
WORLD_FRAME = "map"
IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"
GT_TOPIC = "/camera/depth/ground_truth"
TF_TOPIC = "/tf"
NAMESPACE = "/depth"
STAMP0_NS = 1_700_000_000 * 1_000_000_000   # the sequence's first stamp (2023-11-14 22:13:20 UTC)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")

# Everything the demo writes in its directory (only these are ever replaced).
ENTRIES = ("input_bag", "depth_bag", "depth_bag_eval", "depth", "color", "side_by_side", "clouds",
           "metrics.md", "metrics.json", "README.md", MARKER)


class DemoError(ValueError):
    """A user-facing demo error (bad --input, an output directory the demo does not own)."""


Log = Callable[[str], None]


# ---- the output directory ---------------------------------------------------------------------
def check_out_dir(out: "str | Path", overwrite: bool = False) -> Path:
    """The checks of :func:`prepare_out_dir`, writing nothing: ``out`` is missing, empty, the demo's own
    (it holds :data:`MARKER`), or (with ``overwrite``) any directory; never a file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(True for _ in out.iterdir()) and not (out / MARKER).is_file() and not overwrite:
        raise DemoError(f"--out {out} exists and was not made by the demo (no {MARKER} file in it); "
                        "refusing to write into it. Choose another --out, or pass --overwrite (it then "
                        f"replaces only the demo's own entries: {', '.join(ENTRIES[:-1])})")
    return out


def _as_made_by_mkdir(path: Path) -> None:
    """mkdtemp makes 0700 folders; give ``path`` the mode ``mkdir`` would (0777 less the umask), so a demo
    output moved into place is as readable as any folder the user makes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)


def _swap_in(staging: Path, out: Path, log: Log) -> None:
    """Move the finished demo output from ``staging`` into ``out``: only the demo's own entries of ``out``
    are replaced (other files stay); on any failure the previous entries are put back."""
    if not out.exists():
        os.replace(staging, out)
        return
    if any(True for _ in out.iterdir()):
        log(f"replacing the previous demo output in {out}" if (out / MARKER).is_file() else
            f"--overwrite: writing the demo's entries into {out} (other files are left alone)")
    import tempfile

    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.demo-old-", dir=str(out.parent)))
    old: List[str] = []
    new: List[str] = []
    try:
        for name in ENTRIES:
            p = out / name
            if p.exists() or p.is_symlink():
                os.replace(p, trash / name)
                old.append(name)
        for child in sorted(staging.iterdir()):
            os.replace(child, out / child.name)
            new.append(child.name)
    except BaseException:
        for name in new:   # roll back: the new entries go, the previous ones come back
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists() or p.is_symlink():
                p.unlink()
        for name in old:
            os.replace(trash / name, out / name)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)


def prepare_out_dir(out: "str | Path", overwrite: bool = False, log: Log = print) -> Path:
    """Make ``out`` the demo's directory. A directory the demo made (it holds :data:`MARKER`) is reused: its
    demo entries are removed. An empty or missing one is created. Anything else is refused unless
    ``overwrite`` (even then only the demo's own entries are replaced; nothing else is touched)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out} exists and is not a directory")
    if out.is_dir():
        contents = [p for p in out.iterdir()]
        if contents and not (out / MARKER).is_file():
            if not overwrite:
                raise DemoError(f"--out {out} exists and was not made by the demo (no {MARKER} file in it); "
                                "refusing to write into it. Choose another --out, or pass --overwrite (it then "
                                f"replaces only the demo's own entries: {', '.join(ENTRIES[:-1])})")
            log(f"--overwrite: writing the demo's entries into {out} (other files are left alone)")
        elif contents:
            log(f"replacing the previous demo output in {out}")
        for name in ENTRIES:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"made_by": "mono-depth demo", "time": time.time()}) + "\n")
    return out


# ---- step 1: the input bag -------------------------------------------------------------------
def default_intrinsics(width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG):
    from .camera import CameraIntrinsics

    f = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return CameraIntrinsics(width, height, float(f), float(f), (width - 1) / 2.0, (height - 1) / 2.0)


def _progress(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame", file=sys.stderr)


def write_synthetic_bag(path: "str | Path", n_frames: int = DEMO_FRAMES, width: int = DEMO_SIZE[0],
                        height: int = DEMO_SIZE[1], kind: str = DEMO_KIND, seed: int = DEMO_SEED,
                        fps: float = DEMO_FPS, progress: bool = True) -> Dict[str, Any]:
    """Render ``n_frames`` of a synthetic camera sequence into a rosbag2 at ``path`` (see the module doc).
    Returns {"frames", "stamps" (ns), "topics" (counts)}."""
    from .bag import io as bio
    from .synthetic import render_sequence

    if n_frames < 1:
        raise DemoError(f"--frames must be >= 1, got {n_frames}")
    frames = render_sequence(kind, seed=seed, n_frames=n_frames, width=width, height=height, fps=fps)
    stamps: List[int] = []
    with bio.BagWriter(path, overwrite=False) as w:
        fac = w.factory
        w.add_topic(IMAGE_TOPIC, bio.IMAGE)
        w.add_topic(INFO_TOPIC, bio.CAMERA_INFO)
        w.add_topic(GT_TOPIC, bio.IMAGE)
        w.add_topic(TF_TOPIC, bio.TF_MESSAGE, qos=bio.qos_profile(depth=100))
        dt = int(round(1e9 / fps))
        for i, f in enumerate(_progress(frames, len(frames), "render + write input bag", progress)):
            t = STAMP0_NS + i * dt
            stamps.append(t)
            hdr = fac.header(t, FRAME_ID)
            w.write(TF_TOPIC, t, fac.tf_message([fac.transform_stamped(t, WORLD_FRAME, FRAME_ID, f.pose.matrix())]))
            w.write(IMAGE_TOPIC, t, fac.image(hdr, f.rgb, "rgb8"))
            w.write(INFO_TOPIC, t, fac.camera_info(hdr, f.width, f.height, f.K))
            w.write(GT_TOPIC, t, fac.image(hdr, f.depth.astype(np.float32), "32FC1"))
        counts = dict(w.counts)
    return {"frames": len(frames), "stamps": stamps, "topics": counts}


def _read_image(path: Path) -> np.ndarray:
    from .image_files import read_camera_image

    try:
        return read_camera_image(path, flag="the demo's limit")
    except ValueError as exc:
        msg = str(exc)
        if "cannot read image" in msg or "no such file" in msg:
            msg = f"{path}: cannot read it as an image"
        raise DemoError(f"--input {msg}") from None


class InputFrames:
    """The frames of an image folder, an image or a video, read one at a time (memory does not grow with the
    input); the constructor checks the input (the first frame decoded, the folder's image headers) without
    writing anything."""

    def __init__(self, path: Path, max_frames: Optional[int]):
        from .image_files import read_header

        self.path, self.max_frames = path, max_frames
        self.files: List[Path] = []
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
            if not files:
                raise DemoError(f"--input {path}: the folder has no images ({', '.join(IMAGE_EXTS)}) and is not a "
                                "bag (no metadata.yaml / .mcap / .db3)")
            self.files = files[:max_frames] if max_frames else files
            sizes = {}
            for f in self.files:
                h = read_header(f)
                if h is not None:
                    sizes.setdefault((h.width, h.height), f)
            if len(sizes) > 1:
                raise DemoError(f"--input {path}: the images differ in size "
                                f"({', '.join(f'{w}x{h}' for w, h in sorted(sizes))}); one camera stream has one size")
            self.kind = "images"
        elif path.suffix.lower() in VIDEO_EXTS:
            self.kind = "video"
        elif path.suffix.lower() in IMAGE_EXTS:
            self.files = [path]
            self.kind = "images"
        else:
            raise DemoError(f"--input {path}: not a bag (directory with metadata.yaml, .mcap or .db3), an image "
                            f"folder, an image ({', '.join(IMAGE_EXTS)}) or a video ({', '.join(VIDEO_EXTS)})")
        first = next(iter(self), None)
        if first is None:
            raise DemoError(f"--input {path}: no frame could be read from the video")
        self.first = first

    def __iter__(self):
        import cv2

        from .image_files import DEFAULT_MAX_PIXELS, too_large_message

        shape = None
        if self.kind == "images":
            for f in self.files:
                im = _read_image(f)
                if shape is not None and im.shape != shape:
                    raise DemoError(f"--input {self.path}: {f.name} is {im.shape[1]}x{im.shape[0]}, the first image "
                                    f"{shape[1]}x{shape[0]}; one camera stream has one size")
                shape = im.shape
                yield im
            return
        cap = cv2.VideoCapture(str(self.path))
        n = 0
        try:
            while cap.isOpened() and (not self.max_frames or n < self.max_frames):
                ok, bgr = cap.read()
                if not ok:
                    break
                if bgr.shape[0] * bgr.shape[1] > DEFAULT_MAX_PIXELS:
                    raise DemoError(f"--input {too_large_message(self.path, bgr.shape[1], bgr.shape[0], DEFAULT_MAX_PIXELS, 'the demo limit')}")
                n += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()


def _input_images(path: Path, max_frames: Optional[int]) -> List[np.ndarray]:
    """All frames of an image folder / image / video (kept for library users; the demo streams them)."""
    return list(InputFrames(path, max_frames))


def write_images_bag(path: "str | Path", images: "Sequence[np.ndarray] | InputFrames", fps: float = DEMO_FPS,
                     hfov_deg: float = DEFAULT_HFOV_DEG) -> Dict[str, Any]:
    """User images / video frames (a sequence, or :class:`InputFrames` read one at a time) -> a rosbag2 with
    ``/camera/image_raw`` + ``/camera/camera_info`` (assumed intrinsics: ``hfov_deg`` horizontal field of view)."""
    from .bag import io as bio

    h, w = (images.first if isinstance(images, InputFrames) else images[0]).shape[:2]
    K = default_intrinsics(w, h, hfov_deg).K()
    stamps = []
    with bio.BagWriter(path, overwrite=False) as wr:
        wr.add_topic(IMAGE_TOPIC, bio.IMAGE)
        wr.add_topic(INFO_TOPIC, bio.CAMERA_INFO)
        dt = int(round(1e9 / fps))
        for i, im in enumerate(images):
            if im.shape[:2] != (h, w):
                raise DemoError(f"frame {i} is {im.shape[1]}x{im.shape[0]}, the first {w}x{h}; one camera stream "
                                "has one size")
            t = STAMP0_NS + i * dt
            stamps.append(t)
            hdr = wr.factory.header(t, FRAME_ID)
            wr.write(IMAGE_TOPIC, t, wr.factory.image(hdr, im, "rgb8"))
            wr.write(INFO_TOPIC, t, wr.factory.camera_info(hdr, w, h, K))
        counts = dict(wr.counts)
    return {"frames": len(stamps), "stamps": stamps, "topics": counts}


def is_bag(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in (".mcap", ".db3")
    return path.is_dir() and ((path / "metadata.yaml").is_file() or any(
        p.suffix in (".mcap", ".db3") for p in path.iterdir()))


# ---- step 2: the node's pipeline over the bag ---------------------------------------------------
def run_depth_bag(input_bag: Path, output_bag: Path, model: Optional[str], with_gt: bool,
                  image_topic: Optional[str] = None, camera_info_topic: Optional[str] = None,
                  max_frames: Optional[int] = None, copy: str = "all", backend: str = "auto",
                  threads: int = 0, progress: bool = True, log: Log = print) -> Any:
    """``mono-depth bag INPUT --out OUTPUT [--eval --gt-topic GT_TOPIC]`` (the node's processing)."""
    from .bag.run import BagRunOptions, run_bag
    from .params import NodeConfig

    cfg = NodeConfig.from_mapping({"backend": backend, "threads": int(threads)})
    opts = BagRunOptions(input=Path(input_bag), output=Path(output_bag), model=model, image_topic=image_topic,
                         camera_info_topic=camera_info_topic, config=cfg, namespace=NAMESPACE, copy=copy,
                         overwrite=False, max_frames=max_frames, progress=progress, evaluate=with_gt,
                         gt_topic=GT_TOPIC if with_gt else None, eval_dir=Path(str(output_bag) + "_eval"),
                         protocols=("paper",), plots=False)
    return run_bag(opts, log=log)


# ---- step 3: files and metrics ------------------------------------------------------------------
def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

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
    from .colorize import colorize_depth

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


def baseline_rows(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], train_mean: float
                  ) -> Dict[str, Dict[str, float]]:
    """The model's metrics and the two mean-depth baselines', on the same pixels (where the model gives
    depth and the ground truth is valid): the training set's mean depth everywhere (the paper's baseline),
    and each image's own mean ground-truth depth (an oracle constant per image)."""
    from .metrics import MetricAccumulator

    acc = {k: MetricAccumulator() for k in ("model", "mean", "image_mean")}
    for p, g in zip(preds, gts):
        m = np.isfinite(p) & np.isfinite(g) & (g > 1e-3)
        if not m.any():
            continue
        acc["model"].add(p, g)
        acc["mean"].add(np.where(m, np.float32(train_mean), np.nan), g)
        acc["image_mean"].add(np.where(m, np.float32(g[m].mean()), np.nan), g)
    return {k: a.result() for k, a in acc.items()}


def metrics_markdown(rows: Dict[str, Dict[str, float]], model_name: str, train_mean: float) -> str:
    from .metrics import format_table

    named = {model_name: rows["model"], f"mean-depth baseline ({train_mean:.2f} m, training set)": rows["mean"],
             "per-image mean depth (oracle)": rows["image_mean"]}
    imp = 1.0 - rows["model"]["abs_rel"] / rows["mean"]["abs_rel"]
    return (f"{format_table(named)}\n\n{rows['model']['images']} frames, {rows['model']['pixels']} pixels "
            "(every pixel with ground truth where the model gives depth; mean of per-frame metrics). "
            f"AbsRel {100 * imp:.0f} % below the mean-depth baseline.\n")


@dataclass
class DemoResult:
    out: Path
    frames: int
    input_bag: Path
    depth_bag: Path
    files: Dict[str, List[Path]] = field(default_factory=dict)
    metrics: Optional[Dict[str, Dict[str, float]]] = None
    markdown: str = ""
    model: str = ""
    backend: str = ""
    seconds: float = 0.0
    frame_id: str = FRAME_ID   # the depth's frame (an input bag's camera frame; rviz2's Fixed Frame)


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
        from .bag import io as bio
        from .msgs import conversions as conv

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
    import cv2

    from .bag import io as bio
    from .frame_files import write_frame_files
    from .msgs import conversions as conv
    from .pointcloud import CloudBuilder

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
            fin = d[np.isfinite(d)]
            if gt is not None and np.isfinite(gt).any():
                lo, hi = float(np.nanpercentile(gt, 1)), float(np.nanpercentile(gt, 99))
            elif fin.size:
                lo, hi = float(np.percentile(fin, 1)), float(np.percentile(fin, 99))
            else:
                lo, hi = 0.0, 1.0
            hi = max(hi, lo + 1e-3)
            if rgb is not None:
                sbs = side_by_side(rgb, d, gt, lo, hi)
                cv2.imwrite(str(dirs["side_by_side"] / f"{name}.png"), cv2.cvtColor(sbs, cv2.COLOR_RGB2BGR))
                files["side_by_side"].append(dirs["side_by_side"] / f"{name}.png")
            if intr is not None:
                write_frame_files(d, cloud=builder.build(d, intr, rgb=rgb, organized=False),
                                  ply=dirs["clouds"] / f"{name}.ply")
                files["ply"].append(dirs["clouds"] / f"{name}.ply")
            if gt is not None:   # the metrics need every frame: only with ground truth (the synthetic sequence)
                preds.append(d)
                gt_list.append(gt)
    rows = None
    md = ""
    if preds:
        rows = baseline_rows(preds, gt_list, train_mean)
        md = metrics_markdown(rows, model_name, train_mean)
        (out / "metrics.md").write_text(f"# Demo metrics\n\n{md}")
        (out / "metrics.json").write_text(json.dumps({
            "model": model_name, "train_mean_depth_m": train_mean, "frames": len(preds),
            "rows": {"model": rows["model"], "mean_depth_baseline": rows["mean"],
                     "per_image_mean_baseline": rows["image_mean"]},
            "abs_rel_improvement_over_mean_baseline": 1.0 - rows["model"]["abs_rel"] / rows["mean"]["abs_rel"],
        }, indent=2, sort_keys=True) + "\n")
        files["metrics"] = [out / "metrics.md", out / "metrics.json"]
    return files, rows, md


# ---- everything ---------------------------------------------------------------------------------
def _check_model(model_path: str, backend: str, threads: int) -> str:
    """Load the model as the run will (file, sidecar, backend) and drop it: a broken or foreign model stops
    the demo before anything is written. Returns its one-line description."""
    from .backends.base import BackendError
    from .cli import one_line
    from .model_spec import ModelFileError
    from .pipeline import DepthPipeline

    try:
        pipe = DepthPipeline(model_path, backend=backend, threads=threads or None)
    except (ModelFileError, BackendError, ValueError, OSError) as exc:
        raise DemoError(f"--model {model_path}: {one_line(exc)}") from None
    desc = f"{pipe.spec.describe()} on {pipe.backend.describe()}"
    pipe.close()
    return desc


def _check_bag(path: Path) -> Tuple[str, Tuple[int, int]]:
    """The input bag opens and has a camera (image + camera_info topics, as `mono-depth bag` detects them);
    returns the image topic and the first camera_info's size."""
    from .bag import io as bio
    from .bag.run import BagRunOptions, resolve_topics

    try:
        with bio.BagReader(path) as r:
            tp = resolve_topics(r, BagRunOptions(input=path, output=path))
            info = next((m for _, _, m in r.messages([tp.camera_info])), None)
            size = (int(info.width), int(info.height)) if info is not None else (0, 0)
    except bio.BagError as exc:
        raise DemoError(f"--input {exc}") from None
    return tp.image, size


def _rebase(p: Any, staging: Path, out: Path) -> Any:
    if isinstance(p, Path):
        try:
            return out / p.relative_to(staging)
        except ValueError:
            return p
    return p


def _street_settings(model: Optional[str], heldout: int, width: int, height: int, log=print):
    """(kind, seed, train_mean, model, heldout, width, height) of the street demo: KITTI's camera on a synthetic
    street (seed 1) and the road model; the demo's indoor default size becomes KITTI's 1242x375."""
    from .default_models import (ROAD_MODEL, STREET_DEMO_SEED, STREET_DEMO_SIZE, STREET_TRAIN_MEAN_FALLBACK,
                                 model_train_mean)

    if model is None:
        if not ROAD_MODEL.is_file():
            raise DemoError(f"the road model {ROAD_MODEL} is not installed; pass --model")
        model = str(ROAD_MODEL)
    if (width, height) == DEMO_SIZE:
        width, height = STREET_DEMO_SIZE
    mean = model_train_mean(model)
    if heldout:
        log("street scene: no synthetic held-out check (the road model's real-KITTI scores: "
            "python -m training.eval_kitti_real)")
    return ("street", STREET_DEMO_SEED, mean if mean is not None else STREET_TRAIN_MEAN_FALLBACK, model, 0,
            width, height)


def run_demo(out: "str | Path" = DEFAULT_OUT, model: Optional[str] = None, input: Optional[str] = None,
             frames: Optional[int] = None, width: int = DEMO_SIZE[0], height: int = DEMO_SIZE[1],
             overwrite: bool = False, backend: str = "auto", threads: int = 0, progress: bool = True,
             heldout: int = HELDOUT_SEQUENCES, log: Log = print, scene: str = "indoor") -> DemoResult:
    """The demo into ``out``. Every input (model, --input) is checked before anything is written; the run
    writes into a temporary folder beside ``out`` and replaces the previous demo output only once it has
    succeeded (a failed or interrupted run leaves ``out`` exactly as it was)."""
    import tempfile

    t0 = time.perf_counter()
    kind, seed, train_mean = DEMO_KIND, DEMO_SEED, TRAIN_MEAN_DEPTH
    if scene == "street":   # --scene street: KITTI's camera on a synthetic street and the road model
        kind, seed, train_mean, model, heldout, width, height = _street_settings(model, heldout, width, height, log)
    elif scene != "indoor":
        raise DemoError(f"--scene must be indoor or street, got {scene!r}")
    if model is not None and not Path(model).is_file():
        raise DemoError(f"--model {model}: no such file")
    model_path = str(model) if model else str(DEMO_MODEL)
    if model is None and not DEMO_MODEL.is_file():
        raise DemoError(f"the demo model {DEMO_MODEL} is not installed; pass --model")
    in_path = Path(input) if input else None
    if in_path is not None and not in_path.exists():
        raise DemoError(f"--input {in_path}: no such file or directory")
    if frames is not None and frames < 1:
        raise DemoError(f"--frames must be >= 1, got {frames}")
    if heldout < 0:
        raise DemoError(f"--heldout must be >= 0, got {heldout}")
    if width < 16 or height < 16:
        raise DemoError(f"--size must be at least 16x16, got {width}x{height}")
    out = check_out_dir(out, overwrite)
    input_is_bag = in_path is not None and is_bag(in_path)
    frames_in: Optional[InputFrames] = None
    if input_is_bag:
        assert in_path is not None
        _check_bag(in_path)
    elif in_path is not None:
        frames_in = InputFrames(in_path, frames)   # the first frame decoded, the folder checked
    _check_model(model_path, backend, threads)   # (step 2 says which model runs, and warns on the geometry)

    made: List[Path] = []   # parent folders this run creates (removed again if it fails)
    parent = out.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.demo-new-", dir=str(out.parent)))
    _as_made_by_mkdir(staging)   # it becomes ``out`` when ``out`` is new
    try:
        (staging / MARKER).write_text(json.dumps({"made_by": "mono-depth demo", "time": time.time()}) + "\n")
        result = _run_demo_steps(staging, out, model, model_path, in_path, input_is_bag, frames_in, frames, width,
                                 height, backend, threads, progress, heldout, log, (kind, seed, train_mean))
        result.seconds = time.perf_counter() - t0
        _swap_in(staging, out, log)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for d in made:   # innermost first
            try:
                d.rmdir()
            except OSError:
                break
        raise
    return result


def _run_demo_steps(staging: Path, out: Path, model: Optional[str], model_path: str, in_path: Optional[Path],
                    input_is_bag: bool, frames_in: "Optional[InputFrames]", frames: Optional[int], width: int,
                    height: int, backend: str, threads: int, progress: bool, heldout: int, log: Log,
                    scene: Tuple[str, int, float] = (DEMO_KIND, DEMO_SEED, TRAIN_MEAN_DEPTH)) -> DemoResult:
    kind, seed, train_mean = scene   # the synthetic scene kind, its seed and the training-set mean depth
    image_topic = info_topic = None
    with_gt = False
    copy = "tf"
    n = frames or DEMO_FRAMES
    heldout = heldout if in_path is None else 0    # the held-out check is about the synthetic sequences
    steps = 4 if heldout else 3
    if in_path is None:
        log(f"1/{steps} rendering {n} frames of a synthetic {kind} sequence ({width}x{height}, seed {seed}, "
            f"exact ground truth) into a ROS 2 bag")
        input_bag = staging / "input_bag"
        write_synthetic_bag(input_bag, n, width, height, kind=kind, seed=seed, progress=progress)
        image_topic, info_topic, with_gt, copy = IMAGE_TOPIC, INFO_TOPIC, True, "all"
    elif input_is_bag:
        log(f"1/{steps} input: the bag {in_path} (no ground truth: metrics are skipped)")
        input_bag = in_path
    else:
        assert frames_in is not None
        h, w = frames_in.first.shape[:2]
        input_bag = staging / "input_bag"
        info = write_images_bag(input_bag, frames_in)
        log(f"1/{steps} input: {info['frames']} image(s) {w}x{h} from {in_path}, written into a ROS 2 bag with "
            f"assumed intrinsics ({DEFAULT_HFOV_DEG:g} deg horizontal field of view; no ground truth: metrics are "
            "skipped)")
        image_topic, info_topic = IMAGE_TOPIC, INFO_TOPIC
    log(f"2/{steps} running the bag through depth_node's pipeline (mono-depth bag) with {model_path}")
    depth_bag = staging / "depth_bag"
    res = run_depth_bag(input_bag, depth_bag, model, with_gt, image_topic, info_topic,
                        max_frames=frames if input_is_bag else None, copy=copy,
                        backend=backend, threads=threads, progress=progress, log=log)
    log(f"3/{steps} writing depth PNG/NPY, colourised depth, side-by-side images, PLY clouds" +
        (" and metrics" if with_gt else ""))
    name = Path(model_path).name
    files, rows, md = export_outputs(staging, input_bag, depth_bag, with_gt, name, image_topic, train_mean=train_mean,
                                     progress=progress)
    if heldout and rows is not None:
        seeds = list(range(HELDOUT_SEEDS0, HELDOUT_SEEDS0 + heldout))
        log(f"4/{steps} held-out check: the same model on {heldout} more synthetic {DEMO_KIND} sequences "
            f"(seeds {seeds[0]}-{seeds[-1]}, {n} frames each; the model was trained on seed 0's scenes)")
        h_rows = evaluate_heldout(model, seeds, n, width, height, backend=backend, threads=threads,
                                  progress=progress)
        h_md = metrics_markdown(h_rows, name, TRAIN_MEAN_DEPTH)
        md = (f"## The demo sequence (seed {seed}, {n} frames)\n\n{md}\n## Held-out check: {heldout} more sequences (seeds {seeds[0]}-{seeds[-1]})\n\n"
              f"One {n}-frame sequence is a noisy estimate (the gain over the baseline varies widely between sequences); "
              f"these {heldout} are the held-out set of mono_depth_ros/models/README.md.\n\n{h_md}")
        (staging / "metrics.md").write_text(f"# Demo metrics\n\n{md}")
        doc = json.loads((staging / "metrics.json").read_text())
        doc["heldout"] = {"seeds": seeds, "frames_per_sequence": n,
                          "rows": {"model": h_rows["model"], "mean_depth_baseline": h_rows["mean"],
                                   "per_image_mean_baseline": h_rows["image_mean"]},
                          "abs_rel_improvement_over_mean_baseline":
                              1.0 - h_rows["model"]["abs_rel"] / h_rows["mean"]["abs_rel"]}
        (staging / "metrics.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    # the bag evaluation names its bags: give the paths they will have once moved into place
    ev = staging / "depth_bag_eval"
    if ev.is_dir():
        for f in ev.iterdir():
            if f.suffix in (".json", ".md", ".csv") and f.is_file():
                text = f.read_text()
                if str(staging) in text:
                    f.write_text(text.replace(str(staging), str(out)))
    files = {k: [_rebase(p, staging, out) for p in v] for k, v in files.items()}
    result = DemoResult(out=out, frames=res.frames, input_bag=_rebase(Path(input_bag), staging, out),
                        depth_bag=_rebase(depth_bag, staging, out), files=files, metrics=rows, markdown=md,
                        model=model_path, frame_id=_depth_frame_id(depth_bag))
    (staging / "README.md").write_text(describe(result, with_gt))
    return result


def _depth_frame_id(depth_bag: Path) -> str:
    """The frame_id of the depth bag's first depth image (the input camera's frame), else FRAME_ID."""
    from .bag import io as bio

    with bio.BagReader(depth_bag) as r:
        for _, _, m in r.messages([f"{NAMESPACE}/image"]):
            return str(m.header.frame_id) or FRAME_ID
    return FRAME_ID


def describe(r: DemoResult, with_gt: bool) -> str:
    """Where everything is and how to look at it (printed, and written to out/README.md)."""
    o = r.out
    lines = [
        f"# mono-depth demo output ({r.frames} frames, model {r.model})", "",
        f"- input bag (ROS 2):        {r.input_bag}",
        f"- depth bag (ROS 2, MCAP):  {r.depth_bag}   topics {NAMESPACE}/image (32FC1 m), {NAMESPACE}/camera_info, "
        f"{NAMESPACE}/points (PointCloud2 xyz+rgb), {NAMESPACE}/colored" +
        (" + the input's /camera/*, /tf" if with_gt else ""),
        f"- depth:          {o / 'depth'}/frame_NNNN.png (uint16 mm, 0 = invalid) and .npy (float32 m, NaN = invalid)",
        f"- colourised:     {o / 'color'}/frame_NNNN.png (turbo, near = red)",
        f"- side by side:   {o / 'side_by_side'}/frame_NNNN.png (RGB | " + ("ground truth | prediction | abs rel error"
                                                                          if with_gt else "prediction") + ")",
        f"- point clouds:   {o / 'clouds'}/frame_NNNN.ply (camera optical frame, metres, coloured)",
    ]
    if with_gt:
        lines.append(f"- metrics:        {o / 'metrics.md'}, {o / 'metrics.json'} "
                     f"(and the bag evaluation in {o / 'depth_bag_eval'})")
    else:
        lines.append("- metrics:        none (the input has no ground truth)")
    lines += ["", "How to look at it:",
              f"- any image viewer: {o / 'side_by_side'}/frame_0000.png",
              f"- PLY: meshlab / CloudCompare / `python -c \"import open3d as o3d; "
              f"o3d.visualization.draw_geometries([o3d.io.read_point_cloud('{o / 'clouds'}/frame_0000.ply')])\"`",
              f"- ROS 2: `ros2 bag play {r.depth_bag} --loop`, then rviz2 with Fixed Frame "
              f"`{r.frame_id}`" + (f" (or `{WORLD_FRAME}`: /tf is in the bag)" if with_gt else "") +
              f", add PointCloud2 {NAMESPACE}/points and Image {NAMESPACE}/colored",
              f"- Foxglove Studio: Open local file -> {r.depth_bag}/depth_bag.mcap (3D panel: {NAMESPACE}/points; "
              f"Image panels: {NAMESPACE}/colored" + (", /camera/image_raw" if with_gt else "") + ")",
              ""]
    if r.markdown:
        lines += ["Metrics vs ground truth:", "", r.markdown]
    return "\n".join(lines) + "\n"


# ---- held-out evaluation of the demo model (models/README.md) ----------------------------------------
def train_mean_depth(n: int = 2000, seed: int = 0, width: int = 168, height: int = 126, kind: str = "indoor") -> float:
    """Mean valid depth of the demo model's training frames (the mean-depth baseline's constant)."""
    from .synthetic import SyntheticDataset

    ds = SyntheticDataset(kind, n, seed, width, height)
    total, count = 0.0, 0
    for i in range(n):
        _, d, v = ds[i]
        total += float(d[v].astype(np.float64).sum())
        count += int(v.sum())
    return total / count


def evaluate_heldout(model: Optional[str] = None, seeds: Sequence[int] = tuple(range(100, 110)), n_frames: int = 24,
                     width: int = DEMO_SIZE[0], height: int = DEMO_SIZE[1], kind: str = DEMO_KIND,
                     train_mean: float = TRAIN_MEAN_DEPTH, backend: str = "auto", threads: int = 0,
                     progress: bool = True) -> Dict[str, Dict[str, float]]:
    """The model (through DepthPipeline, camera output) on held-out synthetic sequences vs the baselines."""
    from .pipeline import DepthPipeline
    from .synthetic import render_sequence

    pipe = DepthPipeline(model, backend=backend, threads=threads or None)
    preds, gts = [], []
    for seed in _progress(list(seeds), len(seeds), "held-out sequences", progress):
        for f in render_sequence(kind, seed=seed, n_frames=n_frames, width=width, height=height):
            preds.append(pipe.infer_rgb(f.rgb, f.camera_intrinsics()).depth.copy())
            gts.append(f.depth)
    pipe.close()
    return baseline_rows(preds, gts, train_mean)


def evaluate_frames(model: Optional[str] = None, seed: int = 1, n: int = 200, width: int = DEMO_SIZE[0],
                    height: int = DEMO_SIZE[1], kind: str = DEMO_KIND, train_mean: float = TRAIN_MEAN_DEPTH,
                    backend: str = "auto", progress: bool = True) -> Dict[str, Dict[str, float]]:
    """The model on ``n`` independent held-out frames (``SyntheticDataset(kind, n, seed)``, one scene each)."""
    from .pipeline import DepthPipeline
    from .synthetic import SyntheticDataset

    pipe = DepthPipeline(model, backend=backend)
    ds = SyntheticDataset(kind, n, seed, width, height)
    preds, gts = [], []
    for i in _progress(range(n), n, "held-out frames", progress):
        f = ds.frame(i)
        preds.append(pipe.infer_rgb(f.rgb, f.camera_intrinsics()).depth.copy())
        gts.append(f.depth)
    pipe.close()
    return baseline_rows(preds, gts, train_mean)


def _main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m mono_depth_ros.demo",
                                 description="held-out evaluation of the demo model (see models/README.md)")
    ap.add_argument("--heldout", action="store_true", help="evaluate on held-out synthetic sequences")
    ap.add_argument("--model", default=None)
    ap.add_argument("--seeds", default="100-109", help="sequence seeds, e.g. 100-109")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--frames-seed", type=int, default=None,
                    help="also evaluate 200 independent frames of this seed (SyntheticDataset)")
    ap.add_argument("--train-mean", action="store_true", help="recompute the training set's mean depth")
    ap.add_argument("--json", help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    tm = TRAIN_MEAN_DEPTH
    if a.train_mean:
        tm = train_mean_depth()
        print(f"training set mean depth: {tm:.4f} m")
    if a.heldout:
        lo, _, hi = a.seeds.partition("-")
        seeds = range(int(lo), int(hi or lo) + 1)
        rows = evaluate_heldout(a.model, seeds, a.frames, train_mean=tm)
        print(metrics_markdown(rows, Path(a.model or DEMO_MODEL).name, tm))
        out = {"sequences": rows}
        if a.frames_seed is not None:
            rows2 = evaluate_frames(a.model, a.frames_seed, 200, train_mean=tm)
            print(metrics_markdown(rows2, Path(a.model or DEMO_MODEL).name, tm))
            out["frames"] = rows2
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
