"""A static transform tree (what ``/tf_static`` holds) and transform composition, ROS-agnostic.

Convention (tf2's): a ``TransformStamped`` with ``header.frame_id = parent`` and ``child_frame_id =
child`` is the pose of the child in the parent, i.e. the 4x4 matrix ``T_parent_child`` maps a point
given in child coordinates to parent coordinates. :meth:`StaticTransforms.lookup` composes the chain
between any two connected frames (up and down the tree) like ``tf2::Buffer::lookupTransform(target,
source)``: the result maps points in ``source`` to ``target``.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np


class TransformError(ValueError):
    """Frames that are not connected, or a malformed transform."""


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    q = np.array([x, y, z, w], dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-12:
        raise TransformError(f"invalid quaternion {q.tolist()}")
    x, y, z, w = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def nearest_rotation(R: np.ndarray) -> np.ndarray:
    """The rotation matrix closest to ``R`` (SVD); calibration rotations are only nearly orthonormal."""
    U, _, Vt = np.linalg.svd(np.asarray(R, dtype=np.float64))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def matrix_to_quaternion(R: np.ndarray) -> Tuple[float, float, float, float]:
    """(x, y, z, w) of the rotation nearest to ``R``, with w >= 0."""
    R = nearest_rotation(R)
    tr = np.trace(R)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        w, x, y, z = (R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        w, x, y, z = (R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        w, x, y, z = (R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return float(q[0]), float(q[1]), float(q[2]), float(q[3])


def make_transform(R: np.ndarray, t: Iterable[float]) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = R
    M[:3, 3] = np.asarray(list(t), dtype=np.float64)
    return M


def invert(M: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform."""
    R, t = M[:3, :3], M[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
    return out


def transform_stamped_to_matrix(ts: Any) -> Tuple[str, str, np.ndarray]:
    """(parent, child, T_parent_child) of a geometry_msgs/TransformStamped (rosbags or rclpy)."""
    tr, q = ts.transform.translation, ts.transform.rotation
    M = make_transform(quaternion_to_matrix(q.x, q.y, q.z, q.w), (tr.x, tr.y, tr.z))
    return _norm(ts.header.frame_id), _norm(ts.child_frame_id), M


def _norm(frame: str) -> str:
    return frame.lstrip("/")  # tf2 ignores a leading slash


# Rotation from a REP 103 body frame (x forward, y left, z up) to the camera's optical frame
# (z forward, x right, y down): T_body_optical.
OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class StaticTransforms:
    """A static transform tree: add TFMessages / transforms, look up any connected pair."""

    def __init__(self) -> None:
        self._edges: Dict[str, List[Tuple[str, np.ndarray]]] = {}
        self._parent_of: Dict[str, str] = {}

    def add(self, parent: str, child: str, T_parent_child: np.ndarray) -> None:
        parent, child = _norm(parent), _norm(child)
        if parent == child:
            raise TransformError(f"transform from frame {parent!r} to itself")
        T = np.asarray(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise TransformError(f"transform {parent} -> {child} is not a finite 4x4 matrix")
        if child in self._parent_of:  # a re-published static transform replaces the old one (tf2 does)
            old = self._parent_of[child]
            self._edges[old] = [e for e in self._edges[old] if e[0] != child]
            self._edges[child] = [e for e in self._edges[child] if e[0] != old]
        self._parent_of[child] = parent
        self._edges.setdefault(parent, []).append((child, T))
        self._edges.setdefault(child, []).append((parent, invert(T)))

    def add_message(self, tf_message: Any) -> None:
        """Add every transform of a tf2_msgs/TFMessage."""
        for ts in tf_message.transforms:
            self.add(*transform_stamped_to_matrix(ts))

    @property
    def frames(self) -> List[str]:
        return sorted(self._edges)

    def __len__(self) -> int:
        return len(self._parent_of)

    def edges(self) -> List[Tuple[str, str]]:
        return sorted((p, c) for c, p in self._parent_of.items())

    def lookup(self, target: str, source: str) -> np.ndarray:
        """4x4 matrix mapping points in ``source`` coordinates to ``target`` coordinates."""
        target, source = _norm(target), _norm(source)
        if target == source:
            return np.eye(4)
        for f in (target, source):
            if f not in self._edges:
                known = ", ".join(self.frames) or "none"
                raise TransformError(f"frame {f!r} is not in the static transforms (frames: {known})")
        # BFS from source; accumulate T_source->node as T_node_source
        prev: Dict[str, Optional[Tuple[str, np.ndarray]]] = {source: None}
        queue = deque([source])
        while queue:
            cur = queue.popleft()
            if cur == target:
                break
            for nxt, T_cur_nxt in self._edges[cur]:
                if nxt not in prev:
                    prev[nxt] = (cur, T_cur_nxt)
                    queue.append(nxt)
        if target not in prev:
            raise TransformError(f"frames {source!r} and {target!r} are not connected by the static transforms "
                                 f"(edges: {', '.join(f'{p}->{c}' for p, c in self.edges())})")
        # walk back from target: T_target_source = T_target_n1 ... composition
        M = np.eye(4)
        node = target
        while prev[node] is not None:
            parent_node, T_parent_node = prev[node]  # type: ignore[misc]
            # T_parent_node maps node coords -> parent_node coords; we need node <- source
            M = M @ invert(T_parent_node)
            node = parent_node
        return M
