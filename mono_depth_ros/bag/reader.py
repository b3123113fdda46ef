"""Reading ROS 2 bags with ``rosbags`` (no ROS install needed): :class:`BagReader`.

A rosbag2 directory (``metadata.yaml`` + MCAP or sqlite3 files) or a bare ``.mcap`` / ``.db3`` file
(rosbags >= 0.10 opens both through ``AnyReader``). Every failure is a :class:`BagError` (a
``ValueError``: ``mono-depth`` prints it as one line and exits with status 2) that names the bag or the
topic: a missing path, an unknown format, a corrupt or truncated file (e.g. an MCAP cut short by a crash
has no footer: ``mcap recover`` / ``ros2 bag reindex`` repair it), a message that does not deserialise.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Tuple

from rosbags.highlevel import AnyReader

from ..msgs.fields import MessageError, get_typestore

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
