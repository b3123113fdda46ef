"""``mono-depth bag``: run a recorded bag through the depth pipeline, into a new bag (+ evaluation).

For every image of the image topic, in bag order, the same processing as the ROS node
(:class:`mono_depth_ros.pipeline.DepthPipeline`), and the node's outputs
(:class:`mono_depth_ros.msgs.outputs.DepthOutputs`, the node's own output stage) written with the same headers (the input image's stamp and frame_id, or the
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
from tqdm import tqdm

from ..camera import IntrinsicsFitter, IntrinsicsSizeError
from ..geometry import OutputGeometry, resample_to_camera
from ..msgs import conversions as conv
from ..msgs.outputs import DepthOutputs
from ..text import plural
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


# ---- main -----------------------------------------------------------------------------------------
def run_bag(opts: BagRunOptions, infer: Optional[InferFn] = None, log: Callable[[str], None] = print) -> BagRunResult:
    """Process ``opts.input`` into ``opts.output``. ``infer`` defaults to the node's DepthPipeline."""
    run = _BagRun(opts, log)
    eval_dir = run.check_outputs()   # every output checked before anything is read or the model loaded
    with bio.BagReader(opts.input) as reader:
        run.read_setup(reader)
        run.load_model(infer)
        result = run.write_bag()
    if run.evaluator is not None:
        assert eval_dir is not None
        run.write_evaluation(result, eval_dir)
    return result


class _BagRun:
    """The steps of :func:`run_bag`, sharing the run's state."""

    def __init__(self, opts: BagRunOptions, log: Callable[[str], None]):
        if opts.copy not in ("none", "tf", "all"):
            raise ValueError(f"copy must be none, tf or all, got {opts.copy!r}")
        if opts.max_frames is not None and opts.max_frames < 1:
            raise ValueError(f"--max-frames must be >= 1, got {opts.max_frames}")
        self.opts, self.log = opts, log
        self.cfg = _node_config(opts.config)
        ns = "/" + opts.namespace.strip("/") if opts.namespace.strip("/") else ""
        # DepthOutputs' keys -> the output topics (the node's depth/image, depth/camera_info, ...)
        self.out_topics = {"depth": f"{ns}/image", "info": f"{ns}/camera_info", "points": f"{ns}/points",
                           "colored": f"{ns}/colored"}
        self.protect = [("input bag", Path(opts.input))]
        self.pipe: Any = None
        self.infer: Optional[InferFn] = None
        self.evaluator: Optional[DepthEvaluator] = None
        self.no_gt = 0
        self.frames = 0
        self.T_cache: Dict[Tuple[str, str], np.ndarray] = {}
        self.fit_intrinsics = IntrinsicsFitter(lambda note: log(f"warning: {self.tp.camera_info}: {note}"))

    # ---- before reading -------------------------------------------------------------------------
    def check_outputs(self) -> Optional[Path]:
        opts = self.opts
        bio.check_output_bag(opts.output, opts.overwrite, self.protect)
        if not opts.evaluate:
            return None
        eval_dir = Path(opts.eval_dir) if opts.eval_dir else Path(str(opts.output) + "_eval")
        # plots=True even without plots: the write removes old plots of these names (not this run's)
        check_eval_outputs(eval_dir, plots=True, overwrite=opts.overwrite,
                           protect=self.protect + [("output bag", Path(opts.output))])
        return eval_dir

    def read_setup(self, reader: bio.BagReader) -> None:
        """Topics, camera_infos and static transforms (pass 1: small), checked before the model loads."""
        opts = self.opts
        self.reader = reader
        self.tp = tp = resolve_topics(reader, opts)
        self.all_topics = all_topics = reader.topics
        self.n_images = all_topics[tp.image].count
        if opts.max_frames is not None:
            self.n_images = min(self.n_images, opts.max_frames)
        self.infos = _CameraInfos([(bio.stamp_to_ns(m.header.stamp), m) for _, _, m in reader.messages([tp.camera_info])],
                                  tp.camera_info)
        self.tf_topics = [t for t, i in all_topics.items()
                          if i.msgtype == bio.TF_MESSAGE and t.rstrip("/").endswith("tf_static")]
        self.static = StaticTransforms()
        for _, _, m in reader.messages(self.tf_topics):
            try:
                self.static.add_message(m)
            except TransformError as exc:
                raise bio.BagError(f"bag {opts.input}: bad transform on /tf_static: {exc}") from None
        self.T_calib = load_calibration_transform(opts.calib) if (opts.evaluate and opts.calib) else None
        if tp.lidar and self.T_calib is None:
            _check_lidar_tf(reader, tp, self.infos, self.static)  # fail before loading the model, not at frame 1
        self.copy_topics: List[str] = {"none": [], "tf": self.tf_topics, "all": list(all_topics)}[opts.copy]
        self.read_topics = list(dict.fromkeys([tp.image] + self.copy_topics + [t for t in (tp.lidar, tp.gt) if t]))

    def load_model(self, infer: Optional[InferFn]) -> None:
        opts, log = self.opts, self.log
        if infer is None:
            first_info = self.infos.msgs[0] if self.infos.msgs else None
            if not opts.model:   # no model given: the shipped one for this camera (mono_depth_ros.default_models)
                from ..default_models import default_model_for

                path, why = default_model_for(getattr(first_info, "width", None), getattr(first_info, "height", None))
                log(why)
                self.opts = opts = replace(opts, model=str(path))
            infer, self.pipe = make_pipeline_infer(opts.model, self.cfg, keep_unmasked=opts.evaluate)
            log(f"model: {self.pipe.spec.describe()} on {self.pipe.backend.describe()}")
            if first_info is not None:
                from ..model_spec import geometry_note

                note = geometry_note(self.pipe.profile, int(first_info.width), int(first_info.height))
                if note:
                    log(f"warning: {note}")
            if opts.evaluate and not getattr(self.pipe, "metric", True) and not opts.median_scaling:
                log("warning: the model gives relative depth; metrics without --median-scaling are meaningless")
        self.infer = infer
        if opts.evaluate:
            self.evaluator = DepthEvaluator(opts.protocols, median_scaling=opts.median_scaling, mode=opts.eval_mode)
        self.matcher = StampMatcher(int(opts.gt_max_dt * 1e9))

    # ---- the output bag -------------------------------------------------------------------------
    def _open_writer(self) -> bio.BagWriter:
        opts, cfg = self.opts, self.cfg
        writer = bio.BagWriter(opts.output, overwrite=opts.overwrite, storage=opts.storage, protect=self.protect)
        writer.open()
        try:
            for t in self.copy_topics:
                info = self.all_topics[t]
                qos = bio.qos_profile(transient_local=True, depth=1) if info.msgtype == bio.TF_MESSAGE and \
                    t.endswith("tf_static") else _input_qos(self.reader, t)
                writer.add_topic(t, info.msgtype, qos=qos, typestore=self.reader.typestore)
            reliable = getattr(cfg, "qos_reliability", "reliable") == "reliable"
            q = bio.qos_profile(reliable=reliable, depth=int(getattr(cfg, "qos_depth", 5)))
            for key, msgtype in (("depth", bio.IMAGE), ("info", bio.CAMERA_INFO), ("points", bio.POINTCLOUD2),
                                 ("colored", bio.IMAGE)):
                if key != "points" or cfg.points_enabled:
                    writer.add_topic(self.out_topics[key], msgtype, qos=q)
        except BaseException:
            writer.abort()
            raise
        return writer

    def write_bag(self) -> BagRunResult:
        opts = self.opts
        self.writer = writer = self._open_writer()
        self.outputs = DepthOutputs(conv.MessageTypes.from_typestore(writer.typestore), self.pipe)
        self.wanted = [k for k in self.out_topics if k != "points" or self.cfg.points_enabled]
        partial = False
        bar = None
        try:
            if opts.progress:
                bar = tqdm(total=self.n_images, desc="mono-depth bag", unit="frame", file=sys.stderr)
            self._loop(bar)
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            partial = self._interrupted()
            raise
        except BaseException:
            writer.abort()
            raise
        finally:
            if bar is not None:
                bar.close()
        if self.frames == 0:
            writer.abort()
            raise bio.BagError(f"no image on {self.tp.image} was processed")
        writer.close()
        result = BagRunResult(Path(opts.output), self.frames, dict(writer.counts), partial=partial,
                              frames_without_gt=self.no_gt)
        if self.pipe is not None and hasattr(self.pipe, "close"):
            self.pipe.close()
        return result

    def _interrupted(self) -> bool:
        opts, frames = self.opts, self.frames
        if opts.keep_partial and frames > 0:
            self.writer.close()
            self.log(f"interrupted: kept the {plural(frames, 'frame')} written so far in {opts.output}")
            return True
        existed = Path(opts.output).exists()
        self.writer.abort()
        self.log(f"interrupted: the new bag was discarded; {opts.output} was left as it was" if existed else
                 f"interrupted: no output written ({opts.output} not created)")
        return False

    def _loop(self, bar: Any) -> None:
        tp, reader = self.tp, self.reader
        for conn, log_t, raw in reader.raw_messages(self.read_topics):
            topic = conn.topic
            if topic in self.copy_topics:
                self.writer.write_raw(topic, log_t, raw)
            if topic == tp.image:
                if self.frames >= self.n_images:
                    break  # --max-frames reached
                self._image(reader.deserialize(raw, conn), conn.msgtype, log_t)
                self.frames += 1
                if bar is not None:
                    bar.update(1)
            elif topic == tp.lidar:
                msg = reader.deserialize(raw, conn)
                stamp = bio.stamp_to_ns(msg.header.stamp)
                self._evaluate_pairs(self.matcher.add_gt(stamp, ("lidar", stamp, bio.pointcloud2_xyz(
                    msg, topic).astype(np.float32), msg.header.frame_id)))
            elif topic == tp.gt:
                msg = reader.deserialize(raw, conn)
                stamp = bio.stamp_to_ns(msg.header.stamp)
                self._evaluate_pairs(self.matcher.add_gt(stamp, ("image", stamp, bio.depth_image_to_metres(
                    msg, topic, self.opts.gt_depth_scale), msg.header.frame_id)))
        if self.evaluator is not None:
            self._evaluate_pairs(self.matcher.finish())

    def _image(self, msg: Any, msgtype: str, log_t: int) -> None:
        """One camera image: inference, the node's outputs written, the frame queued for evaluation."""
        tp, cfg = self.tp, self.cfg
        stamp = bio.stamp_to_ns(msg.header.stamp)
        info_msg = self.infos.get(stamp)
        try:
            cam = conv.camera_info_to_intrinsics(info_msg)
            rgb = conv.compressed_msg_to_rgb(msg) if msgtype == bio.COMPRESSED_IMAGE else conv.image_msg_to_rgb(msg)
        except ValueError as exc:
            raise bio.BagError(f"{tp.image} / {tp.camera_info}, image {self.frames} (stamp {stamp}): {exc}") from None
        try:   # the one intrinsics policy (camera.fit_intrinsics): scaled for binning, else refused
            intr = self.fit_intrinsics(cam, rgb.shape[1], rgb.shape[0])
        except IntrinsicsSizeError as exc:
            raise bio.BagError(f"{tp.camera_info} / {tp.image}: {exc}") from None
        assert self.infer is not None
        res = self.infer(rgb, intr)
        header = conv.copy_header(self.outputs.types, msg.header, cfg.frame_id or None)
        # (the node publishes points only for subscribers: always here)
        msgs = self.outputs.build(res, header, self.wanted, cfg, camera_info=info_msg, intrinsics=intr)
        for key, out in msgs.items():
            self.writer.write(self.out_topics[key], log_t, out)
        if self.evaluator is None:
            return
        d_intr = res.intrinsics if res.intrinsics is not None else intr
        ev = getattr(res, "eval_depth", None)  # before the node's range mask
        frame = {"depth": np.array(res.depth if ev is None else ev, dtype=np.float32, copy=True), "stamp": stamp,
                 "name": f"{self.frames:06d}", "frame_id": msg.header.frame_id,
                 "K": bio.camera_info_K(info_msg.k, info_msg.p) if intr is cam else intr.K(),
                 "width": rgb.shape[1], "height": rgb.shape[0], "rgb": rgb}
        # pixel-aligned with the camera image only at camera resolution
        if frame["depth"].shape != (frame["height"], frame["width"]):
            frame["depth"] = resample_to_camera(frame["depth"], OutputGeometry.from_intrinsics(intr, d_intr))
        self._evaluate_pairs(self.matcher.add_image(stamp, frame))

    # ---- evaluation -----------------------------------------------------------------------------
    def _gt_depth(self, gt_payload: Any, frame: Dict[str, Any]) -> np.ndarray:
        kind, stamp, data, src_frame = gt_payload
        if kind == "image":
            return data
        target = frame["frame_id"]
        T = self.T_calib
        if T is None:
            key = (target, src_frame)
            if key not in self.T_cache:
                try:
                    self.T_cache[key] = self.static.lookup(target, src_frame)
                except TransformError as exc:
                    raise bio.BagError(f"--eval: cannot move LiDAR points of {self.tp.lidar} (frame {src_frame!r}) "
                                       f"into the camera frame {target!r} of {self.tp.image}: {exc}. "
                                       "Pass --calib with the calibration instead.") from None
            T = self.T_cache[key]
        return lidar_to_depth(data, T, frame["K"], frame["width"], frame["height"])

    def _evaluate_pairs(self, pairs: List[Tuple[Any, Optional[Any]]]) -> None:
        for frame, gt_payload in pairs:
            if gt_payload is None:
                self.no_gt += 1
                continue
            self.evaluator.add(frame["depth"], self._gt_depth(gt_payload, frame),  # type: ignore[union-attr]
                               stamp_ns=frame["stamp"], name=frame["name"], rgb=frame["rgb"])

    def write_evaluation(self, result: BagRunResult, eval_dir: Path) -> None:
        opts, tp, evaluator, frames = self.opts, self.tp, self.evaluator, self.frames
        assert evaluator is not None
        if len(evaluator) == 0 or not evaluator.totals():
            which = "the one image had no" if frames == 1 else f"none of the {frames} images had"
            raise bio.BagError(f"--eval: {which} ground truth within {opts.gt_max_dt} s on {tp.lidar or tp.gt} "
                               "(or no valid pixel)")
        extra = {"input_bag": str(opts.input), "output_bag": str(opts.output), "image_topic": tp.image,
                 "ground_truth_topic": tp.lidar or tp.gt, "frames": frames, "frames_without_ground_truth": self.no_gt,
                 "camera_info_inexact_matches": self.infos.inexact,
                 "lidar_to_camera": "calibration file" if self.T_calib is not None
                 else ("/tf_static" if tp.lidar else None)}
        title = Path(opts.model).name if opts.model else "model"
        result.eval_paths = evaluator.write(eval_dir, extra=extra, plots=opts.plots, title=title,
                                            overwrite=opts.overwrite)
        result.totals = evaluator.summary()
        result.markdown = evaluator.markdown(title)


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
