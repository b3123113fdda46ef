"""Writing ROS 2 bags with ``rosbags``: :class:`BagWriter`, the output checks and the QoS record.

A rosbag2 directory (version 8 metadata, MCAP storage by default) that ``ros2 bag play`` takes directly.
It is written into a hidden temporary directory beside the target and renamed into place only when
complete, so an interrupted run leaves a readable bag or none. An existing output is replaced only with
``overwrite`` and only if it is a bag (:func:`is_bag_path`: a directory of ``metadata.yaml`` +
``.mcap``/``.db3`` files and nothing else); anything else there is refused at once, and the output may never
be, contain or lie inside a protected input (:func:`check_output_bag`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from ..msgs.fields import MessageFactory, get_typestore
from .reader import BagError


# ---- writing ----------------------------------------------------------------------------------
def qos_profile(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Any:
    """A rosbags Qos record for offered_qos_profiles (``/tf_static`` needs transient_local so that
    latched subscribers (tf2, rviz) receive it from ``ros2 bag play``)."""
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
    Raises :class:`BagError` (or ``FileExistsError`` for an existing bag without ``overwrite``); an existing
    output that is no bag is refused at once (``overwrite`` would not help), and so is a bag file name
    (``.mcap`` / ``.db3``: the output is a rosbag2 directory).
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
    _check_directory_name(path)
    if path.exists() or path.is_symlink():
        if not is_bag_path(path):
            what = "a folder" if path.is_dir() and not path.is_symlink() else \
                "a file" if path.is_file() and not path.is_symlink() else "a link or special file"
            raise BagError(f"{path} exists and is not a rosbag2 bag ({what}; a bag is a folder of metadata.yaml + "
                           ".mcap/.db3 files only): choose another --out (it is never replaced, not even with "
                           "--overwrite)")
        if not overwrite:
            raise FileExistsError(f"output bag {path} exists; refusing to overwrite it (pass --overwrite)")


def _check_directory_name(path: Path) -> None:
    if path.suffix in _STORAGE_SUFFIXES:
        raise BagError(f"output {path}: give a directory name (a rosbag2 is a directory; it will hold "
                       f"{path.stem}.mcap and metadata.yaml)")


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
        check_output_bag(self.path, self.overwrite, self.protect)   # (and the directory name)
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
