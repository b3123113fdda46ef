"""msgs.DEPTH_TRAITS, msgs.outputs.DepthOutputs and frame_files.write_frame_files (issue 12's one output stage)."""
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mono_depth_ros.camera import CameraIntrinsics
from mono_depth_ros.frame_files import write_frame_files
from mono_depth_ros.msgs import DEPTH_TRAITS
from mono_depth_ros.msgs import conversions as conv
from mono_depth_ros.msgs.fields import get_typestore
from mono_depth_ros.msgs.outputs import DepthOutputs, color_range
from mono_depth_ros.params import NodeConfig


def _depth():
    d = np.full((4, 5), 2.5, dtype=np.float32)
    d[0, :5] = [70.0, -1.0, 0.0, np.nan, 1.2344]  # beyond 65.535 m, negative, zero, NaN, valid
    return d


def test_depth_traits_match_depth_array():
    d = _depth()
    for enc, tr in DEPTH_TRAITS.items():
        arr = conv.depth_array(d, enc)
        assert arr.dtype == np.dtype(tr.dtype)
        back = conv.image_msg_to_depth(conv.array_to_image_msg(
            conv.MessageTypes.from_typestore(get_typestore()), arr, enc, _header()))
        assert back[1, 1] == pytest.approx(2.5)
        bad = arr[0, 3]
        assert (math.isnan(bad) and math.isnan(tr.invalid)) or bad == tr.invalid
    assert DEPTH_TRAITS["16UC1"].metres_per_unit == 1e-3


def _header():
    ts = get_typestore()
    return ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](sec=3, nanosec=7),
                                           frame_id="cam")


def test_write_frame_files_16bit_policy_is_rep118(tmp_path):
    """Files and 16UC1 messages share one rule: 0 = invalid, also beyond 65.535 m (not clipped to 65535)."""
    d = _depth()
    col = np.zeros((4, 5, 3), np.uint8)
    col[..., 0] = 255  # red in RGB
    write_frame_files(d, npy=tmp_path / "d.npy", png=tmp_path / "d.png", color=col, color_png=tmp_path / "c.png")
    mm = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert mm.dtype == np.uint16
    assert mm[0].tolist() == [0, 0, 0, 0, 1234]
    assert (mm[1:] == 2500).all()
    np.testing.assert_array_equal(mm, conv.depth_array(d, "16UC1"))
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), d)
    bgr = cv2.imread(str(tmp_path / "c.png"))
    assert (bgr[..., 2] == 255).all() and (bgr[..., 0] == 0).all()
    assert col[0, 0, 0] == 255  # not converted in place unless asked


def test_depth_outputs_build_matches_the_conversions():
    types = conv.MessageTypes.from_typestore(get_typestore())
    cfg = NodeConfig()
    intr = CameraIntrinsics(fx=5.0, fy=5.0, cx=2.0, cy=1.5, width=5, height=4)
    res = SimpleNamespace(depth=_depth(), intrinsics=None, rgb=np.zeros((4, 5, 3), np.uint8))
    outs = DepthOutputs(types)
    got = outs.build(res, _header(), ["depth", "info", "points", "colored"], cfg)
    assert set(got) == {"depth", "colored"}  # info and points need intrinsics
    got = outs.build(res, _header(), ["depth", "info", "points", "colored"], cfg, intrinsics=intr)
    assert list(got) == ["depth", "info", "points", "colored"]
    assert got["depth"].encoding == cfg.depth_encoding
    np.testing.assert_array_equal(conv.image_msg_to_depth(got["depth"]), conv.image_msg_to_depth(
        conv.depth_to_image_msg(types, res.depth, _header(), cfg.depth_encoding)))
    assert got["info"].k[0] == 5.0 and got["points"].width * got["points"].height > 0
    assert got["colored"].encoding == "rgb8" and got["colored"].header.frame_id == "cam"
    lo, hi = color_range(cfg, None, res.depth)  # no pipeline: the frame's 2-98 % range
    assert 0 <= lo < hi
    assert set(outs.build(res, _header(), ["info"], cfg, intrinsics=intr)) == {"info"}
