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

The package, by step: :mod:`.common` (scene, camera, topics, output entries, :class:`DemoError`),
:mod:`.outdir` (the output directory the demo owns), :mod:`.inputs` (step 1), :mod:`.run` (step 2 and
:func:`run_demo`), :mod:`.outputs` (step 3), :mod:`.evaluation` (metrics, held-out evaluation) and
:mod:`.__main__` (``python -m mono_depth_ros.demo``). Every name is importable from ``mono_depth_ros.demo``.
"""
from __future__ import annotations

from .common import (DEFAULT_HFOV_DEG, DEFAULT_OUT, DEMO_FPS, DEMO_FRAMES, DEMO_KIND, DEMO_MODEL, DEMO_SEED,
                     DEMO_SIZE, ENTRIES, FRAME_ID, GT_TOPIC, HELDOUT_SEEDS0, HELDOUT_SEQUENCES, IMAGE_EXTS,
                     IMAGE_TOPIC, INFO_TOPIC, MARKER, MODELS_DIR, NAMESPACE, STAMP0_NS, TF_TOPIC, TRAIN_MEAN_DEPTH,
                     VIDEO_EXTS, WORLD_FRAME, DemoError, Log, _progress)
from .evaluation import baseline_rows, evaluate_frames, evaluate_heldout, metrics_markdown, train_mean_depth
from .inputs import (InputFrames, _check_bag, _input_images, _read_image, default_intrinsics, is_bag,
                     write_images_bag, write_synthetic_bag)
from .outdir import _as_made_by_mkdir, _rebase, _swap_in, check_out_dir, prepare_out_dir
from .outputs import _depth_frame_id, _depth_frames, _InputByStamp, _label, export_outputs, side_by_side
from .run import DemoResult, _check_model, _street_settings, describe, run_demo, run_depth_bag

__all__ = [
    "DEFAULT_HFOV_DEG", "DEFAULT_OUT", "DEMO_FPS", "DEMO_FRAMES", "DEMO_KIND", "DEMO_MODEL", "DEMO_SEED", "DEMO_SIZE",
    "ENTRIES", "FRAME_ID", "GT_TOPIC", "HELDOUT_SEEDS0", "HELDOUT_SEQUENCES", "IMAGE_EXTS", "IMAGE_TOPIC",
    "INFO_TOPIC", "MARKER", "MODELS_DIR", "NAMESPACE", "STAMP0_NS", "TF_TOPIC", "TRAIN_MEAN_DEPTH", "VIDEO_EXTS",
    "WORLD_FRAME", "DemoError", "Log", "baseline_rows", "evaluate_frames", "evaluate_heldout", "metrics_markdown",
    "train_mean_depth", "InputFrames", "default_intrinsics", "is_bag", "write_images_bag", "write_synthetic_bag",
    "check_out_dir", "prepare_out_dir", "export_outputs", "side_by_side", "DemoResult", "describe", "run_demo",
    "run_depth_bag",
]
# private helpers kept importable from here (tests and library users reach them as demo.NAME)
_PRIVATE = (_progress, _check_bag, _input_images, _read_image, _as_made_by_mkdir, _rebase, _swap_in,
            _depth_frame_id, _depth_frames, _InputByStamp, _label, _check_model, _street_settings)
