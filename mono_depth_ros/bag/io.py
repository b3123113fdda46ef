"""Reading, writing and topic detection for ROS 2 bags with ``rosbags`` (no ROS install needed).

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

Decoding and building messages live in :mod:`mono_depth_ros.msgs` (re-exported here for the old names).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..msgs.fields import (POINTFIELD_DTYPES, MessageError, MessageFactory, camera_info_K, depth_image_to_metres,  # noqa: F401,E501
                          get_typestore, image_to_array, ns_to_sec_nsec, pointcloud2_xyz, stamp_to_ns)

from ..msgs.fields import CAMERA_INFO, IMAGE, POINTCLOUD2, TF_MESSAGE  # noqa: F401,E402

COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"

BagError = MessageError  # one error class: the message codec (msgs/) and the bag tools raise the same ValueError


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
