"""Reading and writing ROS 2 bags with ``rosbags`` (no ROS install needed).

Reading (:class:`BagReader`): a rosbag2 directory (``metadata.yaml`` + MCAP or sqlite3 files) or a
bare ``.mcap`` / ``.db3`` file (rosbags >= 0.10 opens both through ``AnyReader``). Every failure is a
:class:`BagError` (a ``ValueError``: ``mono-depth`` prints it as one line and exits with status 2)
that names the bag or the topic: a missing path, an unknown format, a corrupt or truncated file
(e.g. an MCAP cut short by a crash has no footer: ``mcap recover`` / ``ros2 bag reindex`` repair it),
a message that does not deserialise.

Writing (:class:`BagWriter`): a rosbag2 directory (version 8 metadata, MCAP storage by default) that
``ros2 bag play`` takes directly. It is written into a hidden temporary directory beside the target
and renamed into place only when complete, so an interrupted run leaves a readable bag or none.
An existing output is replaced only with ``overwrite`` and only if it is a bag (:func:`is_bag_path`:
a directory of ``metadata.yaml`` + ``.mcap``/``.db3`` files and nothing else, or a single bag file);
the output may never be, contain or lie inside a protected input (:func:`check_output_bag`).

Messages are built from the typestore's classes (the field layout of the ROS message), so the same
conversion code can produce rclpy messages when handed rclpy's classes.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Literal, Optional, Sequence, Tuple

import numpy as np

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"

# PointField datatypes -> numpy dtypes (sensor_msgs/PointField constants)
POINTFIELD_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32,
                     7: np.float32, 8: np.float64}


class BagError(ValueError):
    """A bag cannot be read or written as asked (message names the bag / topic)."""


def get_typestore(name: str = "humble"):
    """A rosbags typestore with the standard ROS 2 message types (Humble's definitions by default;
    sensor_msgs / tf2_msgs / geometry_msgs are identical in Humble, Iron and Jazzy)."""
    from rosbags.typesys import Stores, get_typestore as _get

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY, "iron": Stores.ROS2_IRON}
    try:
        return _get(stores[name])
    except KeyError:
        raise BagError(f"unknown typestore {name!r}; known: {', '.join(stores)}") from None


# ---- time ---------------------------------------------------------------------------------
def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_sec_nsec(ns: int) -> Tuple[int, int]:
    return int(ns // 1_000_000_000), int(ns % 1_000_000_000)


# ---- reading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


class BagReader:
    """A rosbag2 directory or a bare .mcap/.db3 file, opened with clear errors.

    Use as a context manager. ``messages(topics)`` yields ``(topic, log_time_ns, msg)`` in log-time
    order (the order ``ros2 bag play`` publishes them), deserialised.
    """

    def __init__(self, path: "str | Path", typestore: Any = None):
        self.path = Path(path)
        self._default_typestore = typestore if typestore is not None else get_typestore()
        self._reader: Any = None

    # context manager
    def __enter__(self) -> "BagReader":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> None:
        from rosbags.highlevel import AnyReader

        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            mcaps = sorted(self.path.glob("*.mcap")) + sorted(self.path.glob("*.db3"))
            hint = f" (it holds {mcaps[0].name}: pass that file)" if len(mcaps) == 1 else ""
            raise BagError(f"bag directory {self.path} has no metadata.yaml{hint}")
        if self.path.is_file() and self.path.suffix not in (".mcap", ".db3"):
            raise BagError(f"{self.path}: not a rosbag2 (expected a directory, a .mcap or a .db3 file)")
        try:
            reader = AnyReader([self.path], default_typestore=self._default_typestore)
            reader.open()
        except Exception as exc:  # rosbags raises its own error types for each storage
            raise BagError(f"cannot read bag {self.path}: corrupt or truncated? ({exc}). "
                           "A recording cut short by a crash can often be repaired with "
                           "`mcap recover` (MCAP) or `ros2 bag reindex`.") from None
        self._reader = reader

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    @property
    def reader(self) -> Any:
        if self._reader is None:
            raise BagError(f"bag {self.path} is not open")
        return self._reader

    @property
    def typestore(self) -> Any:
        """The typestore with the bag's own message definitions (to re-serialise copied messages)."""
        return self.reader.typestore

    @property
    def topics(self) -> Dict[str, TopicInfo]:
        out: Dict[str, TopicInfo] = {}
        for c in self.reader.connections:
            prev = out.get(c.topic)
            out[c.topic] = TopicInfo(c.topic, c.msgtype, c.msgcount + (prev.count if prev else 0))
        return out

    def connections(self, topics: Iterable[str]) -> List[Any]:
        wanted = set(topics)
        return [c for c in self.reader.connections if c.topic in wanted]

    def require_topic(self, topic: str, msgtype: str, what: str) -> TopicInfo:
        info = self.topics.get(topic)
        if info is None:
            raise BagError(f"{what} topic {topic!r} is not in bag {self.path}; it has: {self.describe_topics()}")
        if info.msgtype != msgtype:
            raise BagError(f"{what} topic {topic!r} in bag {self.path} has type {info.msgtype}, expected {msgtype}")
        if info.count == 0:
            raise BagError(f"{what} topic {topic!r} in bag {self.path} has no messages")
        return info

    def describe_topics(self) -> str:
        t = self.topics
        return ", ".join(f"{k} ({v.msgtype}, {v.count})" for k, v in sorted(t.items())) or "no topics"

    def raw_messages(self, topics: Iterable[str]) -> Iterator[Tuple[Any, int, bytes]]:
        conns = self.connections(topics)
        if not conns:
            return
        try:
            yield from self.reader.messages(connections=conns)
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"bag {self.path}: reading failed (corrupt or truncated?): {exc}") from None

    def deserialize(self, raw: bytes, connection: Any) -> Any:
        try:
            return self.reader.deserialize(raw, connection.msgtype)
        except Exception as exc:
            raise BagError(f"bag {self.path}: a message on {connection.topic} ({connection.msgtype}) does not "
                           f"deserialise (corrupt?): {exc}") from None

    def messages(self, topics: Iterable[str]) -> Iterator[Tuple[str, int, Any]]:
        for conn, t, raw in self.raw_messages(topics):
            yield conn.topic, t, self.deserialize(raw, conn)


# ---- topic auto-detection -------------------------------------------------------------------
def _sibling_camera_info(image_topic: str) -> str:
    base = image_topic[:-len("/compressed")] if image_topic.endswith("/compressed") else image_topic
    ns = base.rsplit("/", 1)[0]
    return f"{ns}/camera_info"


_DEPTHISH = ("depth", "disparity", "/mono_depth")


def detect_image_topic(topics: Dict[str, TopicInfo], bag: "str | Path" = "bag") -> str:
    """The colour image topic: the only sensor_msgs/Image topic that is not a depth image; among
    several, the only one with a sibling camera_info (``<ns>/camera_info``). Without raw images,
    the same among sensor_msgs/CompressedImage topics (``.../compressed``)."""
    for msgtype in (IMAGE, COMPRESSED_IMAGE):
        cands = [t for t, i in topics.items() if i.msgtype == msgtype and not any(d in t.lower() for d in _DEPTHISH)]
        if len(cands) > 1:
            with_info = [t for t in cands if topics.get(_sibling_camera_info(t), None) is not None
                         and topics[_sibling_camera_info(t)].msgtype == CAMERA_INFO]
            if len(with_info) == 1:
                return with_info[0]
            raise BagError(f"bag {bag} has several image topics ({', '.join(sorted(cands))}): "
                           "choose one with --image-topic")
        if cands:
            return cands[0]
    raise BagError(f"bag {bag} has no sensor_msgs/msg/Image (or CompressedImage) topic; it has: "
                   + (", ".join(f"{k} ({v.msgtype})" for k, v in sorted(topics.items())) or "no topics"))


def detect_camera_info_topic(topics: Dict[str, TopicInfo], image_topic: str, bag: "str | Path" = "bag") -> str:
    """``<image namespace>/camera_info`` (the ROS convention), else the only CameraInfo topic."""
    sib = _sibling_camera_info(image_topic)
    if sib in topics and topics[sib].msgtype == CAMERA_INFO:
        return sib
    cands = [t for t, i in topics.items() if i.msgtype == CAMERA_INFO]
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise BagError(f"bag {bag}: images on {image_topic} have no camera_info (no sensor_msgs/msg/CameraInfo "
                       f"topic, expected {sib}); pass --camera-info-topic, or record the camera_info")
    raise BagError(f"bag {bag}: cannot tell which camera_info belongs to {image_topic} "
                   f"({', '.join(sorted(cands))}): pass --camera-info-topic")


def detect_lidar_topic(topics: Dict[str, TopicInfo], bag: "str | Path" = "bag") -> Optional[str]:
    """The only PointCloud2 topic (or the only one named like a LiDAR), None if there is none."""
    cands = [t for t, i in topics.items() if i.msgtype == POINTCLOUD2 and "depth" not in t.lower()]
    if len(cands) > 1:
        lidar = [t for t in cands if any(k in t.lower() for k in ("velodyne", "lidar", "ouster", "hesai", "livox"))]
        if len(lidar) == 1:
            return lidar[0]
        raise BagError(f"bag {bag} has several point-cloud topics ({', '.join(sorted(cands))}): choose one with --lidar-topic")
    return cands[0] if cands else None


# ---- message field helpers (work on rosbags and rclpy messages alike) -------------------------
def pointcloud2_xyz(msg: Any, topic: str = "point cloud") -> np.ndarray:
    """(N, 3) float64 x, y, z of a PointCloud2 (any point_step / row padding / endianness);
    non-finite points dropped."""
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise BagError(f"{topic}: PointCloud2 has no field(s) {', '.join(missing)} (fields: {', '.join(fields)})")
    n = int(msg.width) * int(msg.height)
    if n == 0:
        return np.zeros((0, 3), dtype=np.float64)
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes(), dtype=np.uint8)
    ps, rs = int(msg.point_step), int(msg.row_step)
    if data.size < rs * (int(msg.height) - 1) + ps * int(msg.width):
        raise BagError(f"{topic}: PointCloud2 data has {data.size} bytes, too few for {msg.width}x{msg.height} "
                       f"points of {ps} bytes (truncated?)")
    order: Literal[">", "<"] = ">" if msg.is_bigendian else "<"
    names: List[str] = []
    formats: List[np.dtype] = []
    offsets: List[int] = []
    for name in "xyz":
        f = fields[name]
        if f.datatype not in POINTFIELD_DTYPES:
            raise BagError(f"{topic}: field {name} has unknown datatype {f.datatype}")
        names.append(name)
        formats.append(np.dtype(POINTFIELD_DTYPES[f.datatype]).newbyteorder(order))
        offsets.append(int(f.offset))
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": ps})
    rows = []
    for r in range(int(msg.height)):
        rows.append(np.frombuffer(data, dtype=dt, count=int(msg.width), offset=r * rs))
    arr = np.concatenate(rows) if len(rows) > 1 else rows[0]
    xyz = np.stack([arr["x"].astype(np.float64), arr["y"].astype(np.float64), arr["z"].astype(np.float64)], axis=1)
    return xyz[np.isfinite(xyz).all(axis=1)]


def image_to_array(msg: Any, topic: str = "image") -> np.ndarray:
    """A depth / mono / rgb Image as a numpy array (H, W[, C]) of its own dtype (copy; any step)."""
    enc = msg.encoding
    table = {"32FC1": (np.float32, 1), "16UC1": (np.uint16, 1), "mono16": (np.uint16, 1), "mono8": (np.uint8, 1),
             "8UC1": (np.uint8, 1), "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4),
             "bgra8": (np.uint8, 4), "64FC1": (np.float64, 1)}
    if enc not in table:
        raise BagError(f"{topic}: image encoding {enc!r} not supported here (supported: {', '.join(table)})")
    dtype, ch = table[enc]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * ch * dt.itemsize
    buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes(), dtype=np.uint8)
    if step < row_bytes or buf.size < step * (h - 1) + row_bytes:
        raise BagError(f"{topic}: image data of {buf.size} bytes is too small for {w}x{h} {enc} (step {step})")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row_bytes), strides=(step, 1))
    arr = np.ascontiguousarray(rows).view(dt).reshape((h, w, ch) if ch > 1 else (h, w))
    return arr.astype(dt.newbyteorder("="), copy=False)


def depth_image_to_metres(msg: Any, topic: str = "depth image", scale: Optional[float] = None) -> np.ndarray:
    """A ground-truth depth image -> float32 metres with NaN where invalid (32FC1: metres, REP 118;
    16UC1/mono16: millimetres unless ``scale`` (metres per unit) is given; 0 = invalid)."""
    arr = image_to_array(msg, topic)
    if arr.ndim != 2:
        raise BagError(f"{topic}: a depth image must have one channel, got encoding {msg.encoding}")
    if arr.dtype.kind == "f":
        d = arr.astype(np.float32)
        if scale is not None:
            d = d * np.float32(scale)
    else:
        d = arr.astype(np.float32) * np.float32(1e-3 if scale is None else scale)
        d[arr == 0] = np.nan
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return d


# ---- message building -------------------------------------------------------------------------
class MessageFactory:
    """Builds messages from a rosbags typestore's classes."""

    def __init__(self, typestore: Any = None):
        self.typestore = typestore if typestore is not None else get_typestore()
        t = self.typestore.types
        self.Time = t["builtin_interfaces/msg/Time"]
        self.Header = t["std_msgs/msg/Header"]
        self.Image = t[IMAGE]
        self.CameraInfo = t[CAMERA_INFO]
        self.RegionOfInterest = t["sensor_msgs/msg/RegionOfInterest"]
        self.PointCloud2 = t[POINTCLOUD2]
        self.PointField = t["sensor_msgs/msg/PointField"]
        self.TFMessage = t[TF_MESSAGE]
        self.TransformStamped = t["geometry_msgs/msg/TransformStamped"]
        self.Transform = t["geometry_msgs/msg/Transform"]
        self.Vector3 = t["geometry_msgs/msg/Vector3"]
        self.Quaternion = t["geometry_msgs/msg/Quaternion"]

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        sec, nsec = ns_to_sec_nsec(stamp_ns)
        return self.Header(stamp=self.Time(sec=sec, nanosec=nsec), frame_id=frame_id)

    def image(self, header: Any, array: np.ndarray, encoding: str) -> Any:
        a = np.ascontiguousarray(array)
        h, w = a.shape[:2]
        step = a.strides[0]
        return self.Image(header=header, height=h, width=w, encoding=encoding,
                          is_bigendian=int(a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian)),
                          step=step, data=np.frombuffer(a.tobytes(), dtype=np.uint8))

    def camera_info(self, header: Any, width: int, height: int, K: np.ndarray, P: Optional[np.ndarray] = None,
                    D: Sequence[float] = (), distortion_model: str = "plumb_bob", R: Optional[np.ndarray] = None) -> Any:
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        if P is None:
            P = np.hstack([K, np.zeros((3, 1))])
        R = np.eye(3) if R is None else np.asarray(R, dtype=np.float64).reshape(3, 3)
        roi = self.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return self.CameraInfo(header=header, height=int(height), width=int(width), distortion_model=distortion_model,
                               d=np.asarray(D, dtype=np.float64), k=K.reshape(9).copy(), r=R.reshape(9).copy(),
                               p=np.asarray(P, dtype=np.float64).reshape(12).copy(), binning_x=0, binning_y=0, roi=roi)

    def pointcloud2(self, header: Any, data: np.ndarray, width: int, height: int,
                    fields: Sequence[Tuple[str, int, int]], point_step: int, is_dense: bool) -> Any:
        pf = [self.PointField(name=n, offset=int(o), datatype=int(dt), count=1) for n, o, dt in fields]
        raw = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
        return self.PointCloud2(header=header, height=int(height), width=int(width), fields=pf, is_bigendian=False,
                                point_step=int(point_step), row_step=int(point_step) * int(width), data=raw,
                                is_dense=bool(is_dense))

    def transform_stamped(self, stamp_ns: int, parent: str, child: str, matrix: np.ndarray) -> Any:
        from .tf import matrix_to_quaternion

        M = np.asarray(matrix, dtype=np.float64)
        qx, qy, qz, qw = matrix_to_quaternion(M[:3, :3])
        tr = self.Transform(translation=self.Vector3(x=float(M[0, 3]), y=float(M[1, 3]), z=float(M[2, 3])),
                            rotation=self.Quaternion(x=qx, y=qy, z=qz, w=qw))
        return self.TransformStamped(header=self.header(stamp_ns, parent), child_frame_id=child, transform=tr)

    def tf_message(self, transforms: Sequence[Any]) -> Any:
        return self.TFMessage(transforms=list(transforms))


# ---- writing ----------------------------------------------------------------------------------
def qos_profile(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Any:
    """A rosbags Qos record for offered_qos_profiles (``/tf_static`` needs transient_local so that
    latched subscribers (tf2, rviz) receive it from ``ros2 bag play``)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth,
               reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)


_MCAP_MAGIC = b"\x89MCAP0\r\n"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_STORAGE_SUFFIXES = (".mcap", ".db3")


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def is_bag_path(path: "str | Path") -> bool:
    """True if ``path`` is a rosbag2 and nothing else, i.e. something ``--overwrite`` may replace:

    * a single bag file: a ``.mcap`` (MCAP magic) or ``.db3`` (SQLite header) regular file, or
    * a rosbag2 directory: a ``metadata.yaml`` that is rosbag2 metadata, at least one ``.mcap`` /
      ``.db3`` file, and no other entry (no other file, no subdirectory).
    """
    path = Path(path)
    try:
        if path.is_file():
            if path.suffix == ".mcap":
                return _starts_with(path, _MCAP_MAGIC)
            if path.suffix == ".db3":
                return _starts_with(path, _SQLITE_MAGIC)
            return False
        if not path.is_dir():
            return False
        entries = list(path.iterdir())
        meta = path / "metadata.yaml"
        if not meta.is_file() or meta.is_symlink():
            return False
        with open(meta, "r", encoding="utf-8", errors="replace") as f:
            if "rosbag2_bagfile_information" not in f.read(65536):
                return False
        storage = 0
        for e in entries:
            if e.name == "metadata.yaml":
                continue
            if e.is_symlink() or not e.is_file() or e.suffix not in _STORAGE_SUFFIXES:
                return False
            storage += 1
        return storage > 0
    except OSError:
        return False


def _inside(a: Path, b: Path) -> bool:
    """``a`` is ``b`` or below it (both resolved)."""
    return a == b or b in a.parents


def check_output_bag(path: "str | Path", overwrite: bool = False,
                     protect: Sequence[Tuple[str, "str | Path"]] = ()) -> None:
    """Refuse an output bag path that would destroy data; call before any work is done.

    ``protect``: (label, path) of the inputs (e.g. ``("input bag", INPUT_BAG)``): the output may be
    none of them, contain none of them and lie inside none of them (symlinks resolved). An existing
    output is replaced only with ``overwrite`` and only if it is a bag (:func:`is_bag_path`).
    Raises :class:`BagError` (or ``FileExistsError`` for an existing output without ``overwrite``).
    """
    path = Path(path)
    out = path.resolve()
    for label, p in protect:
        q = Path(p).resolve()
        if out == q:
            raise BagError(f"output {path} is the {label} {p}: choose another output path")
        if _inside(q, out):
            raise BagError(f"output {path} contains the {label} {p}: replacing it would delete the {label}; "
                           "choose another output path")
        if _inside(out, q):
            raise BagError(f"output {path} is inside the {label} {p}: write the output elsewhere")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f"output bag {path} exists; refusing to overwrite it (pass --overwrite)")
        if not is_bag_path(path):
            raise BagError(f"output {path} exists and is not a rosbag2 (a directory of metadata.yaml + .mcap/.db3 "
                           "files only, or a single .mcap/.db3 file): refusing to replace it even with "
                           "--overwrite; choose another output path or remove it yourself")


class BagWriter:
    """A rosbag2 directory written crash-safely.

    Messages go to ``<parent>/.<name>.partial-XXXX/<name>/``; :meth:`close` finalises the bag
    (MCAP summary + metadata.yaml) and renames the directory to ``path``. :meth:`abort` (called by
    the context manager on any exception, KeyboardInterrupt included) removes the partial bag.
    An existing ``path`` is replaced only with ``overwrite=True``, only if it is a bag
    (:func:`is_bag_path`; checked again just before the replacement), and only once the new bag is
    complete. ``protect``: (label, path) pairs the output may not be, contain or lie inside
    (:func:`check_output_bag`), e.g. the input bag.
    """

    def __init__(self, path: "str | Path", overwrite: bool = False, storage: str = "mcap", version: int = 8,
                 typestore: Any = None, protect: Sequence[Tuple[str, "str | Path"]] = ()):
        self.path = Path(path)
        self.overwrite = overwrite
        self.protect = list(protect)
        self.storage = storage
        self.version = version
        self.typestore = typestore if typestore is not None else get_typestore()
        self.factory = MessageFactory(self.typestore)
        self._writer: Any = None
        self._tmpdir: Optional[Path] = None
        self._conns: Dict[str, Any] = {}
        self._types: Dict[str, str] = {}
        self.counts: Dict[str, int] = {}
        self._last_t: Dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        self.open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        check_output_bag(self.path, self.overwrite, self.protect)
        if self.path.suffix in (".mcap", ".db3"):
            raise BagError(f"output {self.path}: give a directory name (a rosbag2 is a directory; it will hold "
                           f"{self.path.stem}.mcap and metadata.yaml)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if self.storage not in plugins:
            raise BagError(f"unknown storage {self.storage!r}; known: {', '.join(plugins)}")
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=str(self.path.parent)))
        self._writer = Writer(self._tmpdir / self.path.name, version=self.version, storage_plugin=plugins[self.storage])
        self._writer.open()

    def add_topic(self, topic: str, msgtype: str, qos: Any = None, typestore: Any = None) -> None:
        if topic in self._conns:
            if self._types[topic] != msgtype:
                raise BagError(f"output topic {topic} already has type {self._types[topic]}, not {msgtype}")
            return
        ts = typestore if typestore is not None else self.typestore
        self._conns[topic] = self._writer.add_connection(
            topic, msgtype, typestore=ts, offered_qos_profiles=[qos if qos is not None else qos_profile()])
        self._types[topic] = msgtype
        self.counts[topic] = 0

    def write(self, topic: str, log_time_ns: int, msg: Any) -> None:
        """Serialise ``msg`` (a message of the topic's type from our typestore) and write it."""
        self.write_raw(topic, log_time_ns, self.typestore.serialize_cdr(msg, self._types[topic]))

    def write_raw(self, topic: str, log_time_ns: int, data: "bytes | memoryview") -> None:
        conn = self._conns.get(topic)
        if conn is None:
            raise BagError(f"output topic {topic} was not added")
        self._writer.write(conn, int(log_time_ns), data)
        self.counts[topic] += 1

    def close(self) -> Path:
        """Finalise and move into place; returns the bag path."""
        if self._writer is None:
            return self.path
        try:
            self._writer.close()
        except BaseException:
            self.abort()
            raise
        self._writer = None
        assert self._tmpdir is not None
        done = self._tmpdir / self.path.name
        if self.path.exists():
            if not self.overwrite:  # appeared meanwhile
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                raise FileExistsError(f"output bag {self.path} appeared while writing; not replacing it")
            if not is_bag_path(self.path):  # changed meanwhile: never delete anything but a bag
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None
                raise BagError(f"output {self.path} is no longer a rosbag2 (it changed while writing); "
                               "not replacing it")
            trash = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old-", dir=str(self.path.parent)))
            os.replace(self.path, trash / self.path.name)
            os.replace(done, self.path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(done, self.path)
        shutil.rmtree(self._tmpdir, ignore_errors=True)
        self._tmpdir = None
        return self.path

    def abort(self) -> None:
        """Drop the partial bag (the target path is left as it was)."""
        w, self._writer = self._writer, None
        if w is not None:
            try:
                w.abort()
            except Exception:  # noqa: BLE001 - best effort, the directory goes anyway
                pass
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
