"""One per-frame output stage: a DepthResult -> the node's output messages.

:meth:`DepthOutputs.build` makes the depth image (REP 118, ``depth_encoding``: 32FC1 metres NaN = invalid,
or 16UC1 millimetres 0 = invalid, see :data:`DEPTH_TRAITS`), its camera_info, the point cloud and the
colourised depth, for the outputs asked for.  The node publishes what it returns and the bag tools write
it, so both give the same messages (like image_proc's ``Processor::process(..., flags)``).  Each message
holds one copy of its payload (:meth:`MessageTypes.with_data`); the colour image and the cloud reuse
their buffers from frame to frame.
"""
from __future__ import annotations

from typing import Any, Collection, Dict, Iterator, Optional, Tuple

import numpy as np

from ..colorize import colorize_depth
from ..pointcloud import CloudBuilder
from . import conversions as conv

OUTPUTS = ("depth", "info", "points", "colored")


def color_range(cfg: Any, pipeline: Any, depth: np.ndarray) -> Tuple[float, float]:
    """depth/colored's range: the parameters (``color_min_depth``/``color_max_depth``), else the model's
    range for a metric model, else the frame's 2-98 % depth percentiles (relative depth, or no pipeline)."""
    lo, hi = cfg.color_min_depth, cfg.color_max_depth
    if not (lo > 0 and hi > 0):
        if pipeline is not None and getattr(pipeline, "metric", True):
            profile = pipeline.profile
            auto = (cfg.min_depth or profile.min_depth, cfg.max_depth or profile.max_depth)
        else:  # relative depth (or no pipeline): the frame's own robust range
            finite = depth[np.isfinite(depth)]
            auto = tuple(np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)
        lo, hi = lo or float(auto[0]), hi or float(auto[1])
    lo = max(float(lo), 0.0)
    return lo, max(float(hi), lo + 1e-3)


class DepthOutputs:
    """Builds ``{output: message}`` for one frame; ``output`` is one of :data:`OUTPUTS`.

    ``types``: the message classes (:meth:`MessageTypes.from_rclpy` or ``from_typestore``);
    ``pipeline``: the DepthPipeline (its profile and ``metric`` set the colour range; may be None).
    """

    def __init__(self, types: conv.MessageTypes, pipeline: Any = None, clouds: Optional[CloudBuilder] = None):
        self.types = types
        self.pipeline = pipeline
        self.clouds = clouds if clouds is not None else CloudBuilder()
        self.colored: Optional[np.ndarray] = None  # the colour buffer, reused

    def build(self, result: Any, header: Any, wanted: Collection[str], cfg: Any,
              camera_info: Any = None, intrinsics: Any = None) -> Dict[str, Any]:
        """The messages in ``wanted`` for ``result`` (a DepthResult), all with ``header``, in the order
        of :data:`OUTPUTS`.

        ``cfg``: the node parameters (NodeConfig); ``camera_info``: the camera's CameraInfo (its stereo
        baseline is carried over); ``intrinsics``: used when ``result.intrinsics`` is None.  info and
        points need intrinsics and are left out without them.
        """
        return dict(self.iter_build(result, header, wanted, cfg, camera_info, intrinsics))

    def iter_build(self, result: Any, header: Any, wanted: Collection[str], cfg: Any,
                   camera_info: Any = None, intrinsics: Any = None) -> Iterator[Tuple[str, Any]]:
        """:meth:`build` one message at a time, ``(output, message)``: the node publishes each as soon as
        it is made (one message alive at a time; benchmarks/bench_node.py times each output)."""
        types = self.types
        intr = result.intrinsics if result.intrinsics is not None else intrinsics
        if "depth" in wanted:
            yield "depth", conv.array_to_image_msg(types, conv.depth_array(result.depth, cfg.depth_encoding),
                                                   cfg.depth_encoding, header)
        if "info" in wanted and intr is not None:
            yield "info", conv.intrinsics_to_camera_info(types, intr, header, source=camera_info)
        if "points" in wanted and intr is not None:
            cloud = self.clouds.build(result.depth, intr, rgb=result.rgb if cfg.points_color else None,
                                      organized=cfg.points_organized, stride=cfg.points_stride)
            yield "points", conv.cloud_to_pointcloud2(types, cloud, header)
        if "colored" in wanted:
            lo, hi = color_range(cfg, self.pipeline, result.depth)
            self.colored = colorize_depth(result.depth, lo, hi, cfg.colormap, out=self.colored)
            yield "colored", conv.array_to_image_msg(types, self.colored, "rgb8", header)
