"""The demo's settings (scene, camera, topics, output entries), its error type and progress bars, shared by
its steps (:mod:`mono_depth_ros.demo`)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from ..model_spec import DEMO_MODEL  # noqa: F401 - the one definition (re-exported here)

MARKER = ".mono-depth-demo"
DEFAULT_OUT = Path("out") / "demo"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"

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


def _progress(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="frame", file=sys.stderr)
