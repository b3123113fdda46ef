"""``mono-depth bag``: run a recorded bag through the depth pipeline, into a new bag (+ evaluation).

For every image of the image topic, in bag order, the same processing as the ROS node
(:class:`mono_depth_ros.pipeline.DepthPipeline` + ``mono_depth_ros.ros.conversions``), and the
node's outputs written with the same headers (the input image's stamp and frame_id, or the
``frame_id`` parameter), at the input image's log time:

* ``<ns>/image`` -- sensor_msgs/Image 32FC1 metres, NaN = invalid (REP 118) or 16UC1 mm
* ``<ns>/camera_info`` -- the depth image's own CameraInfo
* ``<ns>/points`` -- sensor_msgs/PointCloud2 in the camera's optical frame
* ``<ns>/colored`` -- sensor_msgs/Image rgb8, colourised depth

(``<ns>`` defaults to ``/depth``), plus copies of input topics (``/tf_static`` by default, so rviz
can place the cloud; ``copy="all"`` copies everything, in order). The output bag is finalised only
when complete (see :class:`mono_depth_ros.bag.io.BagWriter`).

With ``evaluate=True`` each depth image is compared with ground truth: a LiDAR PointCloud2 (the
scan nearest in stamp, within ``gt_max_dt``) moved into the image's frame with the bag's
``/tf_static`` (or a KITTI calibration) and projected with the camera_info's intrinsics, or a depth
image topic; see :mod:`mono_depth_ros.bag.evaluate`.

The per-frame inference is a function ``infer(rgb, intrinsics) -> DepthResult``: the command builds
it from a DepthPipeline; tests may hand in their own. For ``--eval`` the result may also carry
``eval_depth``: the same depth *before* the node's [min_depth, max_depth] mask (NaN only where the
network sees nothing). The evaluation scores that, so a prediction outside the node's range counts
(clamped to the protocol's range, as monodepth2 / BTS do) instead of dropping out of the metrics;
without it ``depth`` is evaluated. The command's pipeline provides it (:func:`make_pipeline_infer`).

Nothing existing is destroyed: the output bag may not be, contain or lie inside the input bag, an
existing output is replaced only with ``overwrite`` and only if it is a bag, and the evaluation
files are checked (exist -> refused without ``overwrite``) before the model is loaded.
"""
from __future__ import annotations

import bisect
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import io as bio
from .evaluate import (DEFAULT_PROTOCOLS, DepthEvaluator, StampMatcher, check_eval_outputs,
                       lidar_to_depth)
from .tf import StaticTransforms, TransformError

InferFn = Callable[[np.ndarray, Any], Any]   # (rgb (H,W,3) uint8, CameraIntrinsics) -> DepthResult


@dataclass
class BagRunOptions:
    input: Path
    output: Path
    model: Optional[str] = None
    image_topic: Optional[str] = None
    camera_info_topic: Optional[str] = None
    lidar_topic: Optional[str] = None
    gt_topic: Optional[str] = None
    config: Any = None                    # mono_depth_ros.ros.params.NodeConfig (node parameters)
    namespace: str = "/depth"
    copy: str = "tf"                      # none | tf | all
    overwrite: bool = False
    storage: str = "mcap"
    max_frames: Optional[int] = None
    progress: bool = True
    keep_partial: bool = False
    # evaluation
    evaluate: bool = False
    eval_dir: Optional[Path] = None
    protocols: Sequence[str] = DEFAULT_PROTOCOLS
    median_scaling: bool = False
    eval_mode: str = "image"
    calib: Optional[Path] = None          # KITTI calibration instead of /tf_static
    gt_max_dt: float = 0.05               # seconds between an image and its ground truth
    gt_depth_scale: Optional[float] = None  # metres per unit of a 16UC1 GT image (default mm)
    plots: bool = True


@dataclass
class BagRunResult:
    output: Path
    frames: int
    topics: Dict[str, int]
    eval_paths: Dict[str, Path] = field(default_factory=dict)
    totals: Dict[str, Any] = field(default_factory=dict)
    markdown: str = ""
    partial: bool = False
    frames_without_gt: int = 0


# ---- setup ------------------------------------------------------------------------------------
def _node_config(cfg: Any) -> Any:
    from ..params import NodeConfig

    return cfg if cfg is not None else NodeConfig()


def range_mask(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """``depth`` with NaN outside [min_depth, max_depth] (and at <= 0 when min_depth <= 0), in place:
    exactly what DepthPipeline does with its range (same float32 comparisons)."""
    with np.errstate(invalid="ignore"):
        bad = (depth < np.float32(min_depth)) | (depth > np.float32(max_depth))
        if min_depth <= 0:
            bad |= depth <= 0
    depth[bad] = np.float32(np.nan)
    return depth


def make_pipeline_infer(model: Optional[str], cfg: Any, keep_unmasked: bool = False) -> Tuple[InferFn, Any]:
    """(infer function, pipeline) from the node parameters -- the node's own pipeline.

    With ``keep_unmasked`` (for evaluation) the pipeline runs with its range opened up
    (``set_range(0, float32 max)``) and the node's range is applied afterwards to ``result.depth``
    (identical to the node's output); ``result.eval_depth`` keeps the depth before that mask (NaN only
    outside the camera region the network sees, or where the model gives no finite positive depth)."""
    from ..pipeline import DepthPipeline

    lo, hi = cfg.depth_range
    pipe = DepthPipeline(model=model or None, backend=cfg.backend, device=cfg.device or None,
                         precision=cfg.precision, output=cfg.output_resolution, min_depth=lo, max_depth=hi,
                         scale=cfg.depth_scale, threads=cfg.threads or None)
    if not keep_unmasked:
        return pipe.infer_rgb, pipe
    node_lo, node_hi = pipe.min_depth, pipe.max_depth
    pipe.set_range(0.0, float(np.finfo(np.float32).max))

    def infer(rgb: np.ndarray, intrinsics: Any) -> Any:
        res = pipe.infer_rgb(rgb, intrinsics)
        res.eval_depth = res.depth.copy()  # type: ignore[attr-defined]
        range_mask(res.depth, node_lo, node_hi)
        return res

    return infer, pipe


def load_calibration_transform(path: Path) -> np.ndarray:
    """4x4 LiDAR -> camera optical frame from a KITTI raw date folder (calib_*.txt) or an object
    calib file (Tr_velo_to_cam, R0_rect, P2)."""
    from .. import kitti

    path = Path(path)
    if path.is_dir():
        return kitti.load_raw_calibration(path).velo_to_camera_optical
    return kitti.load_object_calibration(path).velo_to_camera_optical


@dataclass
class _Topics:
    image: str
    camera_info: str
    lidar: Optional[str]
    gt: Optional[str]


def resolve_topics(reader: bio.BagReader, opts: BagRunOptions) -> _Topics:
    topics = reader.topics
    image = opts.image_topic or bio.detect_image_topic(topics, reader.path)
    reader.require_topic(image, bio.COMPRESSED_IMAGE if image in topics and topics[image].msgtype ==
                         bio.COMPRESSED_IMAGE else bio.IMAGE, "image")
    info = opts.camera_info_topic or bio.detect_camera_info_topic(topics, image, reader.path)
    if info not in topics:
        raise bio.BagError(f"bag {reader.path}: images on {image} have no camera_info: topic {info!r} is not in "
                           f"the bag (it has: {reader.describe_topics()})")
    if topics[info].count == 0:
        raise bio.BagError(f"bag {reader.path}: images on {image} have no camera_info: topic {info} has no messages")
    reader.require_topic(info, bio.CAMERA_INFO, "camera_info")
    lidar = gt = None
    if opts.evaluate:
        if opts.gt_topic:
            gt = opts.gt_topic
            reader.require_topic(gt, bio.IMAGE, "ground-truth depth image")
        else:
            lidar = opts.lidar_topic or bio.detect_lidar_topic(topics, reader.path)
            if lidar is None:
                raise bio.BagError(f"--eval: bag {reader.path} has no LiDAR PointCloud2 topic (and no --gt-topic); "
                                   f"it has: {reader.describe_topics()}")
            reader.require_topic(lidar, bio.POINTCLOUD2, "LiDAR")
    return _Topics(image, info, lidar, gt)


class _CameraInfos:
    """The camera_info for an image: same stamp, else the latest before it, else the first."""

    def __init__(self, msgs: List[Tuple[int, Any]], topic: str):
        msgs = sorted(msgs, key=lambda m: m[0])
        self.stamps = [s for s, _ in msgs]
        self.msgs = [m for _, m in msgs]
        self.topic = topic
        self.exact = self.inexact = 0

    def get(self, stamp_ns: int) -> Any:
        i = bisect.bisect_right(self.stamps, stamp_ns) - 1
        if i >= 0 and self.stamps[i] == stamp_ns:
            self.exact += 1
        else:
            self.inexact += 1
        return self.msgs[max(i, 0)]


def _color_range(cfg: Any, pipe: Any, depth: np.ndarray) -> Tuple[float, float]:
    """depth/colored's range, as depth_node computes it (DepthNode._color_range): the parameters,
    else the model's range for a metric model, else the frame's 2-98 % depth percentiles."""
    lo, hi = cfg.color_min_depth, cfg.color_max_depth
    if not (lo > 0 and hi > 0):
        if pipe is not None and getattr(pipe, "metric", True):
            profile = pipe.profile
            auto = (cfg.min_depth or profile.min_depth, cfg.max_depth or profile.max_depth)
        else:  # relative depth (or no pipeline): the frame's own robust range
            finite = depth[np.isfinite(depth)]
            auto = tuple(np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)
        lo, hi = lo or float(auto[0]), hi or float(auto[1])
    lo = max(float(lo), 0.0)
    return lo, max(float(hi), lo + 1e-3)


# ---- main -----------------------------------------------------------------------------------------
def run_bag(opts: BagRunOptions, infer: Optional[InferFn] = None, log: Callable[[str], None] = print) -> BagRunResult:
    """Process ``opts.input`` into ``opts.output``. ``infer`` defaults to the node's DepthPipeline."""
    from ..pointcloud import CloudBuilder
    from ..colorize import colorize_depth
    from ..msgs import conversions as conv

    cfg = _node_config(opts.config)
    if opts.copy not in ("none", "tf", "all"):
        raise ValueError(f"copy must be none, tf or all, got {opts.copy!r}")
    ns = "/" + opts.namespace.strip("/") if opts.namespace.strip("/") else ""
    out_topics = {k: f"{ns}/{k}" for k in ("image", "camera_info", "points", "colored")}

    # every output checked before anything is read or the model loaded
    protect = [("input bag", Path(opts.input))]
    bio.check_output_bag(opts.output, opts.overwrite, protect)
    eval_dir = None
    if opts.evaluate:
        eval_dir = Path(opts.eval_dir) if opts.eval_dir else Path(str(opts.output) + "_eval")
        # plots=True even without plots: the write removes old plots of these names (not this run's)
        check_eval_outputs(eval_dir, plots=True, overwrite=opts.overwrite,
                           protect=protect + [("output bag", Path(opts.output))])

    with bio.BagReader(opts.input) as reader:
        tp = resolve_topics(reader, opts)
        all_topics = reader.topics
        n_images = all_topics[tp.image].count
        if opts.max_frames is not None:
            n_images = min(n_images, opts.max_frames)

        # pass 1: camera_info + static transforms (small)
        infos = _CameraInfos([(bio.stamp_to_ns(m.header.stamp), m) for _, _, m in reader.messages([tp.camera_info])],
                             tp.camera_info)
        tf_topics = [t for t, i in all_topics.items() if i.msgtype == bio.TF_MESSAGE and t.rstrip("/").endswith("tf_static")]
        static = StaticTransforms()
        for _, _, m in reader.messages(tf_topics):
            try:
                static.add_message(m)
            except TransformError as exc:
                raise bio.BagError(f"bag {opts.input}: bad transform on /tf_static: {exc}") from None

        T_calib = load_calibration_transform(opts.calib) if (opts.evaluate and opts.calib) else None
        if tp.lidar and T_calib is None:
            _check_lidar_tf(reader, tp, infos, static)  # fail before loading the model, not at frame 1

        pipe = None
        if infer is None:
            if not opts.model:   # no model given: the shipped one for this camera (mono_depth_ros.default_models)
                from ..default_models import default_model_for

                ci = infos.msgs[0] if infos.msgs else None
                path, why = default_model_for(getattr(ci, "width", None), getattr(ci, "height", None))
                log(why)
                opts = replace(opts, model=str(path))
            infer, pipe = make_pipeline_infer(opts.model, cfg, keep_unmasked=opts.evaluate)
            log(f"model: {pipe.spec.describe()} on {pipe.backend.describe()}")
            first_info = infos.msgs[0] if infos.msgs else None
            if first_info is not None:
                from ..model_spec import geometry_note

                note = geometry_note(pipe.profile, int(first_info.width), int(first_info.height))
                if note:
                    log(f"warning: {note}")
            if opts.evaluate and not getattr(pipe, "metric", True) and not opts.median_scaling:
                log("warning: the model gives relative depth; metrics without --median-scaling are meaningless")

        evaluator = DepthEvaluator(opts.protocols, median_scaling=opts.median_scaling, mode=opts.eval_mode) \
            if opts.evaluate else None
        matcher = StampMatcher(int(opts.gt_max_dt * 1e9))
        no_gt = 0
        T_cache: Dict[Tuple[str, str], np.ndarray] = {}

        def gt_depth(gt_payload: Any, frame: Dict[str, Any]) -> np.ndarray:
            kind, stamp, data, src_frame = gt_payload
            if kind == "image":
                return data
            target = frame["frame_id"]
            if T_calib is not None:
                T = T_calib
            else:
                key = (target, src_frame)
                if key not in T_cache:
                    try:
                        T_cache[key] = static.lookup(target, src_frame)
                    except TransformError as exc:
                        raise bio.BagError(f"--eval: cannot move LiDAR points of {tp.lidar} (frame {src_frame!r}) "
                                           f"into the camera frame {target!r} of {tp.image}: {exc}. "
                                           "Pass --calib with the calibration instead.") from None
                T = T_cache[key]
            return lidar_to_depth(data, T, frame["K"], frame["width"], frame["height"])

        def evaluate_pairs(pairs: List[Tuple[Any, Optional[Any]]]) -> None:
            nonlocal no_gt
            for frame, gt_payload in pairs:
                if gt_payload is None:
                    no_gt += 1
                    continue
                evaluator.add(frame["depth"], gt_depth(gt_payload, frame), stamp_ns=frame["stamp"],  # type: ignore[union-attr]
                              name=frame["name"], rgb=frame["rgb"])

        builder = CloudBuilder()
        copy_topics: List[str] = []
        if opts.copy == "tf":
            copy_topics = tf_topics
        elif opts.copy == "all":
            copy_topics = list(all_topics)
        read_topics = list(dict.fromkeys([tp.image] + copy_topics + [t for t in (tp.lidar, tp.gt) if t]))

        writer = bio.BagWriter(opts.output, overwrite=opts.overwrite, storage=opts.storage, protect=protect)
        writer.open()
        types = conv.MessageTypes.from_typestore(writer.typestore)
        frames = 0
        partial = False
        bar = None
        try:
            for t in copy_topics:
                info = all_topics[t]
                qos = bio.qos_profile(transient_local=True, depth=1) if info.msgtype == bio.TF_MESSAGE and \
                    t.endswith("tf_static") else _input_qos(reader, t)
                writer.add_topic(t, info.msgtype, qos=qos, typestore=reader.typestore)
            reliable = getattr(cfg, "qos_reliability", "reliable") == "reliable"
            q = bio.qos_profile(reliable=reliable, depth=int(getattr(cfg, "qos_depth", 5)))
            writer.add_topic(out_topics["image"], bio.IMAGE, qos=q)
            writer.add_topic(out_topics["camera_info"], bio.CAMERA_INFO, qos=q)
            if cfg.points_enabled:
                writer.add_topic(out_topics["points"], bio.POINTCLOUD2, qos=q)
            writer.add_topic(out_topics["colored"], bio.IMAGE, qos=q)
            if opts.progress:
                from tqdm import tqdm

                bar = tqdm(total=n_images, desc="mono-depth bag", unit="frame", file=sys.stderr)
            for conn, log_t, raw in reader.raw_messages(read_topics):
                topic = conn.topic
                if topic in copy_topics:
                    writer.write_raw(topic, log_t, raw)
                if topic == tp.image:
                    if frames >= n_images:
                        break  # --max-frames reached
                    msg = reader.deserialize(raw, conn)
                    stamp = bio.stamp_to_ns(msg.header.stamp)
                    info_msg = infos.get(stamp)
                    try:
                        intr = conv.camera_info_to_intrinsics(info_msg)
                        rgb = conv.compressed_msg_to_rgb(msg) if conn.msgtype == bio.COMPRESSED_IMAGE \
                            else conv.image_msg_to_rgb(msg)
                    except ValueError as exc:
                        raise bio.BagError(f"{tp.image} / {tp.camera_info}, image {frames} (stamp {stamp}): {exc}") from None
                    if (int(info_msg.width), int(info_msg.height)) != (rgb.shape[1], rgb.shape[0]):
                        raise bio.BagError(f"camera_info on {tp.camera_info} is {info_msg.width}x{info_msg.height} "
                                           f"but the image on {tp.image} is {rgb.shape[1]}x{rgb.shape[0]}")
                    res = infer(rgb, intr)
                    header = conv.copy_header(types, msg.header, cfg.frame_id or None)
                    writer.write(out_topics["image"], log_t, conv.depth_to_image_msg(types, res.depth, header,
                                                                                      cfg.depth_encoding))
                    d_intr = res.intrinsics if res.intrinsics is not None else intr
                    writer.write(out_topics["camera_info"], log_t,
                                 conv.intrinsics_to_camera_info(types, d_intr, header, source=info_msg))
                    if cfg.points_enabled:  # (the node publishes points only for subscribers: always here)
                        cloud = builder.build(res.depth, d_intr, rgb=res.rgb if cfg.points_color else None,
                                              organized=cfg.points_organized, stride=cfg.points_stride)
                        writer.write(out_topics["points"], log_t, conv.cloud_to_pointcloud2(types, cloud, header))
                    lo, hi = _color_range(cfg, pipe, res.depth)
                    col = colorize_depth(res.depth, lo, hi, cmap=cfg.colormap)
                    writer.write(out_topics["colored"], log_t, conv.rgb_to_image_msg(types, col, header))
                    if evaluator is not None:
                        K = bio.camera_info_K(info_msg.k, info_msg.p)
                        ev = getattr(res, "eval_depth", None)  # before the node's range mask
                        frame = {"depth": np.array(res.depth if ev is None else ev, dtype=np.float32, copy=True),
                                 "stamp": stamp,
                                 "name": f"{frames:06d}", "frame_id": msg.header.frame_id, "K": K,
                                 "width": rgb.shape[1], "height": rgb.shape[0], "rgb": rgb}
                        # pixel-aligned with the camera image only at camera resolution
                        if frame["depth"].shape != (frame["height"], frame["width"]):
                            frame["depth"] = _depth_to_camera(frame["depth"], d_intr, intr)
                        evaluate_pairs(matcher.add_image(stamp, frame))
                    frames += 1
                    if bar is not None:
                        bar.update(1)
                elif topic == tp.lidar:
                    msg = reader.deserialize(raw, conn)
                    stamp = bio.stamp_to_ns(msg.header.stamp)
                    evaluate_pairs(matcher.add_gt(stamp, ("lidar", stamp, bio.pointcloud2_xyz(msg, topic).astype(np.float32),
                                                          msg.header.frame_id)))
                elif topic == tp.gt:
                    msg = reader.deserialize(raw, conn)
                    stamp = bio.stamp_to_ns(msg.header.stamp)
                    evaluate_pairs(matcher.add_gt(stamp, ("image", stamp, bio.depth_image_to_metres(
                        msg, topic, opts.gt_depth_scale), msg.header.frame_id)))
            if evaluator is not None:
                evaluate_pairs(matcher.finish())
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            if opts.keep_partial and frames > 0:
                writer.close()
                log(f"interrupted: kept the {frames} frames written so far in {opts.output}")
                partial = True
            else:
                existed = Path(opts.output).exists()
                writer.abort()
                log(f"interrupted: the new bag was discarded; {opts.output} was left as it was" if existed else
                    f"interrupted: no output written ({opts.output} not created)")
            raise
        except BaseException:
            writer.abort()
            raise
        finally:
            if bar is not None:
                bar.close()
        if frames == 0:
            writer.abort()
            raise bio.BagError(f"no image on {tp.image} was processed")
        writer.close()
        result = BagRunResult(Path(opts.output), frames, dict(writer.counts), partial=partial, frames_without_gt=no_gt)
        if pipe is not None and hasattr(pipe, "close"):
            pipe.close()

    if evaluator is not None:
        if len(evaluator) == 0 or not evaluator.totals():
            raise bio.BagError(f"--eval: none of the {frames} images had ground truth within {opts.gt_max_dt} s "
                               f"on {tp.lidar or tp.gt} (or none had a valid pixel)")
        assert eval_dir is not None
        extra = {"input_bag": str(opts.input), "output_bag": str(opts.output), "image_topic": tp.image,
                 "ground_truth_topic": tp.lidar or tp.gt, "frames": frames, "frames_without_ground_truth": no_gt,
                 "camera_info_inexact_matches": infos.inexact,
                 "lidar_to_camera": "calibration file" if T_calib is not None else ("/tf_static" if tp.lidar else None)}
        result.eval_paths = evaluator.write(eval_dir, extra=extra, plots=opts.plots, title=Path(opts.model).name
                                            if opts.model else "model", overwrite=opts.overwrite)
        result.totals = evaluator.summary()
        result.markdown = evaluator.markdown(Path(opts.model).name if opts.model else "model")
    return result


def _check_lidar_tf(reader: bio.BagReader, tp: _Topics, infos: _CameraInfos, static: StaticTransforms) -> None:
    cam = infos.msgs[0].header.frame_id
    for conn, _, raw in reader.raw_messages([tp.lidar]):  # type: ignore[list-item]
        lidar = reader.deserialize(raw, conn).header.frame_id
        break
    else:  # pragma: no cover - require_topic checked the count
        return
    try:
        static.lookup(cam, lidar)
    except TransformError as exc:
        raise bio.BagError(f"--eval: cannot move LiDAR points of {tp.lidar} (frame {lidar!r}) into the camera frame "
                           f"{cam!r} of {tp.image}: {exc}. Pass --calib with the calibration instead.") from None


def _input_qos(reader: bio.BagReader, topic: str) -> Any:
    for c in reader.connections([topic]):
        q = getattr(c.ext, "offered_qos_profiles", None)
        if q:
            return q[0]
    return None


def _depth_to_camera(depth: np.ndarray, d_intr: Any, cam: Any) -> np.ndarray:
    """A network-resolution depth map resampled onto the camera's pixel grid (NaN outside), for
    evaluation with ``output_resolution: network``: camera pixel (u, v) -> depth pixel via intrinsics."""
    import cv2

    u = (np.arange(cam.width, dtype=np.float32) - cam.cx) / cam.fx * d_intr.fx + d_intr.cx
    v = (np.arange(cam.height, dtype=np.float32) - cam.cy) / cam.fy * d_intr.fy + d_intr.cy
    mu, mv = np.meshgrid(u, v)
    return cv2.remap(depth.astype(np.float32), mu, mv, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
