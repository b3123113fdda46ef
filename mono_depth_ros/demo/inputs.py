"""Step 1 of the demo: the input bag -- a rendered synthetic sequence (exact ground truth), or a user's image
folder / image / video written into a bag with assumed intrinsics, or a user's bag checked for a camera."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..bag import io as bio
from ..bag.run import BagRunOptions, resolve_topics
from ..camera import CameraIntrinsics
from ..image_files import DEFAULT_MAX_PIXELS, read_camera_image, read_header, too_large_message
from ..synthetic import render_sequence
from .common import (DEFAULT_HFOV_DEG, DEMO_FPS, DEMO_FRAMES, DEMO_KIND, DEMO_SEED, DEMO_SIZE, FRAME_ID, GT_TOPIC,
                     IMAGE_EXTS, IMAGE_TOPIC, INFO_TOPIC, STAMP0_NS, TF_TOPIC, VIDEO_EXTS, WORLD_FRAME, DemoError,
                     _progress)


def default_intrinsics(width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG):
    f = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return CameraIntrinsics(width, height, float(f), float(f), (width - 1) / 2.0, (height - 1) / 2.0)


def write_synthetic_bag(path: "str | Path", n_frames: int = DEMO_FRAMES, width: int = DEMO_SIZE[0],
                        height: int = DEMO_SIZE[1], kind: str = DEMO_KIND, seed: int = DEMO_SEED,
                        fps: float = DEMO_FPS, progress: bool = True) -> Dict[str, Any]:
    """Render ``n_frames`` of a synthetic camera sequence into a rosbag2 at ``path`` (see the module doc).
    Returns {"frames", "stamps" (ns), "topics" (counts)}."""
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


def _check_bag(path: Path) -> Tuple[str, Tuple[int, int]]:
    """The input bag opens and has a camera (image + camera_info topics, as `mono-depth bag` detects them);
    returns the image topic and the first camera_info's size."""
    try:
        with bio.BagReader(path) as r:
            tp = resolve_topics(r, BagRunOptions(input=path, output=path))
            info = next((m for _, _, m in r.messages([tp.camera_info])), None)
            size = (int(info.width), int(info.height)) if info is not None else (0, 0)
    except bio.BagError as exc:
        raise DemoError(f"--input {exc}") from None
    return tp.image, size
