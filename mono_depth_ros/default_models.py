"""Which shipped model runs when the user gives none: one rule for predict, bag, the demo and the launch files.

* KITTI-shaped camera images (KITTI's rectified colour cameras: 1224-1242 x 370-376, aspect 3.3; any
  size with an aspect ratio in [3.0, 3.6] and at least 150 rows) -> ``models/road.pt``, trained on
  synthetic streets seen by KITTI's camera (a 1.65 m high car camera: its metric scale holds for such
  a rig, not for other cameras).
* anything else -> ``models/demo.pt`` (synthetic indoor scenes, the demo).

``default_model_for(width, height)`` returns ``(path, reason)``; callers print the reason once, so the
user always learns which model runs and why.  Nothing here loads a model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Tuple

import cv2

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEMO_MODEL = MODELS_DIR / "demo.pt"
ROAD_MODEL = MODELS_DIR / "road.pt"
#: width / height range of "KITTI-shaped" images (KITTI: 1242 / 375 = 3.31)
KITTI_ASPECT = (3.0, 3.6)
KITTI_MIN_HEIGHT = 150


def is_kitti_shaped(width: int, height: int) -> bool:
    """True for images shaped like KITTI's colour cameras (aspect 3.0-3.6, at least 150 rows)."""
    if width <= 0 or height <= 0:
        return False
    return KITTI_ASPECT[0] <= width / height <= KITTI_ASPECT[1] and height >= KITTI_MIN_HEIGHT


def default_model_for(width: Optional[int], height: Optional[int]) -> Tuple[Path, str]:
    """(model file, one-line reason) for a camera of ``width x height`` (None: unknown size -> demo)."""
    if width is not None and height is not None and is_kitti_shaped(int(width), int(height)):
        if ROAD_MODEL.is_file():
            return ROAD_MODEL, (f"no model given: {width}x{height} input is KITTI-shaped, running the shipped road "
                                f"model {ROAD_MODEL.name} (synthetic streets, KITTI camera 1.65 m above the road)")
        return DEMO_MODEL, (f"no model given: {width}x{height} input is KITTI-shaped but the road model "
                            f"{ROAD_MODEL} is not installed; running the indoor demo model {DEMO_MODEL.name}")
    size = f"{width}x{height} input" if width is not None and height is not None else "input of unknown size"
    return DEMO_MODEL, (f"no model given: {size} is not KITTI-shaped, running the shipped demo model "
                        f"{DEMO_MODEL.name} (synthetic indoor scenes; a demo, not a model for your camera)")


def image_size(path: "str | Path") -> Optional[Tuple[int, int]]:
    """(width, height) of an image or the first frame of a video, or None if it cannot be read."""
    p = str(path)
    img = cv2.imread(p, cv2.IMREAD_UNCHANGED) if Path(p).is_file() else None
    if img is not None:
        return int(img.shape[1]), int(img.shape[0])
    cap = cv2.VideoCapture(p)
    try:
        if cap.isOpened():
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            if w > 0 and h > 0:
                return w, h
    finally:
        cap.release()
    return None


def default_model_for_files(paths: Iterable["str | Path"]) -> Tuple[Path, str]:
    """The default model for the first readable image/video of ``paths``."""
    for p in paths:
        size = image_size(p)
        if size is not None:
            return default_model_for(*size)
    return default_model_for(None, None)


# ---- the street variant of the demo (mono-depth demo --scene street) --------------------------------
STREET_DEMO_SEED = 1          # a street the road model never saw (it was trained on seed 0's scenes)
STREET_DEMO_SIZE = (1242, 375)  # KITTI's colour camera
STREET_TRAIN_MEAN_FALLBACK = 15.0  # only if the model file does not store its training-set mean


def model_train_mean(model: "str | Path") -> Optional[float]:
    """``meta.train_mean_depth`` of a .pt model file (the mean-depth baseline's constant), if it has one."""
    if not str(model).endswith(".pt"):
        return None
    from .checkpoint import read_model_file

    v = (read_model_file(model).get("meta") or {}).get("train_mean_depth")
    return float(v) if v is not None else None


def default_model_for_bag(bag: "str | Path", camera_info_topic: Optional[str] = None) -> Tuple[Path, str]:
    """The default model for a rosbag2's camera (its first CameraInfo message on ``camera_info_topic``, or on
    the bag's only CameraInfo topic); demo model when the bag cannot be read or has no camera info."""
    try:
        from .bag import io as bio

        with bio.BagReader(bag) as reader:
            topics = reader.topics
            cands = [camera_info_topic] if camera_info_topic and camera_info_topic in topics else \
                [t for t, i in topics.items() if i.msgtype == bio.CAMERA_INFO]
            for _, _, msg in reader.messages(cands[:1]):
                return default_model_for(int(msg.width) or None, int(msg.height) or None)
    except Exception as exc:   # noqa: BLE001 -- any unreadable bag: the node will report it; fall back
        return DEMO_MODEL, f"no model given and the bag's camera could not be read ({exc}); running {DEMO_MODEL.name}"
    return default_model_for(None, None)
