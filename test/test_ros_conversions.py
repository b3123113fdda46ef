"""mono_depth_ros.ros.conversions on real message definitions (rosbags typestores for Humble and
Jazzy), real frames (KITTI PNGs and the images of the sample MCAP) and CDR round trips.  The same
functions run inside the node on rclpy messages: test_node.py covers that through the fake rclpy,
whose message classes are generated from the same definitions with rosidl's setter rules.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from conftest import shared_path
from mono_depth_ros.camera import CameraIntrinsics
from mono_depth_ros.encodings import ImageDecodeError
from mono_depth_ros.pointcloud import CloudBuilder, unpack_rgb
from mono_depth_ros.ros import conversions as conv

STORES = [Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY]
BAG = ("ros2_bags", "kitti_2frames_repackaged.mcap")
IMAGE_TOPIC = "/kitti/camera_color_left/image_raw"
INFO_TOPIC = "/kitti/camera_color_left/camera_info"
# the bag's frame 0 is kitti_object_lidar's cvml_000114 (see ../shared/data PROVENANCE files)
PNG0 = ("kitti_raw_layout_repackaged", "2011_09_26", "2011_09_26_drive_9999_sync", "image_02", "data",
        "0000000000.png")
LIDAR_DEPTH0 = ("kitti_object_lidar", "proj_depth_velodyne", "cvml_000114.png")


@pytest.fixture(scope="module", params=STORES, ids=["humble", "jazzy"])
def store(request):
    ts = get_typestore(request.param)
    return ts, conv.MessageTypes.from_typestore(ts)


@pytest.fixture(scope="module")
def bag_messages():
    """{topic: [deserialised messages]} of the sample MCAP (read with rosbags' AnyReader)."""
    path = shared_path(*BAG)
    out: dict = {}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic in (IMAGE_TOPIC, INFO_TOPIC):
                out.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    return out


def roundtrip(ts, msg, name):
    """CDR-serialise with the typestore and deserialise again (what a bag or DDS would carry)."""
    return ts.deserialize_cdr(ts.serialize_cdr(msg, name), name)


def real_rgb(scale: float = 1.0) -> np.ndarray:
    bgr = cv2.imread(str(shared_path(*PNG0)), cv2.IMREAD_COLOR)
    if scale != 1.0:
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def real_depth() -> np.ndarray:
    d16 = cv2.imread(str(shared_path(*LIDAR_DEPTH0)), cv2.IMREAD_UNCHANGED)
    d = d16.astype(np.float32) / 256.0
    d[d16 == 0] = np.nan
    return d


# ---- images -------------------------------------------------------------------------------
def test_bag_images_decode_to_the_source_pngs(bag_messages):
    images = bag_messages[IMAGE_TOPIC]
    assert len(images) == 2
    msg = images[0]
    rgb = conv.image_msg_to_rgb(msg)
    assert rgb.shape == (375, 1242, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, real_rgb())
    assert conv.stamp_to_ns(msg.header.stamp) == 1317042145964389445


def test_bag_camera_info_to_intrinsics(bag_messages):
    info = bag_messages[INFO_TOPIC][0]
    intr = conv.camera_info_to_intrinsics(info)
    # P (rectified, non-zero) wins over K; here they agree on the pinhole part
    assert (intr.width, intr.height) == (1242, 375)
    assert intr.fx == pytest.approx(info.p[0]) and intr.fy == pytest.approx(info.p[5])
    assert intr.cx == pytest.approx(info.p[2]) and intr.cy == pytest.approx(info.p[6])


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_image_roundtrip_every_encoding(store, encoding):
    ts, T = store
    rgb = real_rgb(0.25)
    h, w = rgb.shape[:2]
    arr = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1],
           "rgba8": np.dstack([rgb, np.full((h, w), 7, np.uint8)]),
           "bgra8": np.dstack([rgb[:, :, ::-1], np.full((h, w), 7, np.uint8)]),
           "mono8": rgb[:, :, 1]}[encoding]
    arr = np.ascontiguousarray(arr)
    ch = 1 if arr.ndim == 2 else arr.shape[2]
    msg = T.Image(header=conv.make_header(T, 3, 4, "cam"), height=h, width=w, encoding=encoding, is_bigendian=0,
                  step=w * ch, data=T.uint8_seq(arr))
    back = conv.image_msg_to_rgb(roundtrip(ts, msg, "sensor_msgs/msg/Image"))
    expected = np.repeat(rgb[:, :, 1:2], 3, axis=2) if encoding == "mono8" else rgb
    np.testing.assert_array_equal(back, expected)


def test_padded_rows_are_honoured(store):
    ts, T = store
    rgb = real_rgb(0.1)
    h, w = rgb.shape[:2]
    step = w * 3 + 5
    padded = np.zeros((h, step), np.uint8)
    padded[:, :w * 3] = rgb.reshape(h, -1)
    msg = T.Image(header=conv.make_header(T, 0, 0, "c"), height=h, width=w, encoding="rgb8", is_bigendian=0,
                  step=step, data=T.uint8_seq(padded))
    np.testing.assert_array_equal(conv.image_msg_to_rgb(roundtrip(ts, msg, "sensor_msgs/msg/Image")), rgb)


@pytest.mark.parametrize("case", ["encoding", "empty", "short", "step"])
def test_bad_images_raise_image_decode_error(store, case):
    _, T = store
    h, w = 4, 6
    data, enc, step = np.zeros(h * w * 3, np.uint8), "rgb8", w * 3
    if case == "encoding":
        enc = "32FC1"
        data = np.zeros(h * w * 4, np.uint8)
        step = w * 4
    elif case == "empty":
        h, w, data, step = 0, 0, np.zeros(0, np.uint8), 0
    elif case == "short":
        data = data[:-1]
    elif case == "step":
        step = w * 3 - 1  # shorter than a row of pixels
    msg = T.Image(header=conv.make_header(T, 0, 0, "c"), height=h, width=w, encoding=enc, is_bigendian=0,
                  step=step, data=T.uint8_seq(data))
    with pytest.raises(ImageDecodeError):
        conv.image_msg_to_rgb(msg)


def test_compressed_image(store):
    ts, _ = store
    rgb = real_rgb(0.25)
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
    assert ok
    C = ts.types["sensor_msgs/msg/CompressedImage"]
    msg = C(header=ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2),
                                                   frame_id="c"), format="rgb8; png compressed bgr8",
            data=png.reshape(-1))
    np.testing.assert_array_equal(conv.compressed_msg_to_rgb(roundtrip(ts, msg, "sensor_msgs/msg/CompressedImage")),
                                  rgb)
    bad = C(header=msg.header, format="jpeg", data=np.frombuffer(b"not a jpeg", np.uint8))
    with pytest.raises(ImageDecodeError):
        conv.compressed_msg_to_rgb(bad)


# ---- depth images -------------------------------------------------------------------------
def test_depth_32fc1_roundtrip_keeps_nan(store):
    ts, T = store
    depth = real_depth()
    msg = roundtrip(ts, conv.depth_to_image_msg(T, depth, conv.make_header(T, 9, 8, "cam")), "sensor_msgs/msg/Image")
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("32FC1", 375, 1242, 1242 * 4, 0)
    back = conv.image_msg_to_depth(msg)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(depth))
    np.testing.assert_array_equal(back[~np.isnan(back)], depth[~np.isnan(depth)])
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (9, 8, "cam")


def test_depth_16uc1_is_millimetres_with_zero_invalid(store):
    ts, T = store
    depth = real_depth()
    depth[0, :3] = [70.0, -1.0, 0.0]  # beyond 65.535 m, negative, zero: all invalid in 16UC1
    msg = roundtrip(ts, conv.depth_to_image_msg(T, depth, conv.make_header(T, 0, 0, "c"), "16UC1"),
                    "sensor_msgs/msg/Image")
    assert (msg.encoding, msg.step) == ("16UC1", 1242 * 2)
    raw = np.frombuffer(msg.data.tobytes(), "<u2").reshape(375, 1242)
    valid = np.isfinite(depth) & (depth > 0) & (depth * 1000 <= 65535)
    assert (raw[~valid] == 0).all()
    np.testing.assert_array_equal(raw[valid], np.rint(depth[valid].astype(np.float64) * 1000).astype(np.uint16))
    back = conv.image_msg_to_depth(msg)
    assert np.nanmax(np.abs(back[valid] - depth[valid])) <= 0.0005 + 1e-6
    assert np.isnan(back[~valid]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depth_16uc1_edge_values_match_the_definition(dtype):
    """NaN, +-inf, <= 0, sub-millimetre, around 65.535 m: the same as rint(d * 1000) where it is in
    (0, 65535], else 0 (the reference written out with boolean indexing)."""
    depth = real_depth().astype(dtype)
    depth[1, :12] = [np.nan, np.inf, -np.inf, -0.0, 0.0004, 0.0005, 0.0015, 65.5344, 65.5354, 65.5355, 66.0, 1e30]
    with np.errstate(invalid="ignore", over="ignore"):
        mm = np.rint(depth.astype(np.float64) * 1000.0)
        valid = np.isfinite(mm) & (mm > 0) & (mm <= 65535)
    ref = np.zeros(depth.shape, dtype="<u2")
    ref[valid] = mm[valid].astype(np.uint16)
    arr = conv.depth_array(depth, "16UC1")
    assert arr.dtype == np.dtype("<u2") and arr.shape == depth.shape
    np.testing.assert_array_equal(arr, ref)
    assert arr[1, :5].tolist() == [0, 0, 0, 0, 0] and arr[1, 7:9].tolist() == [65534, 65535]
    assert arr[1, 10:12].tolist() == [0, 0]


# ---- camera info --------------------------------------------------------------------------
def test_camera_info_roundtrip_and_baseline_scaling(store, bag_messages):
    ts, T = store
    src = bag_messages[INFO_TOPIC][0]
    cam = conv.camera_info_to_intrinsics(src)
    half = cam.scaled_to(621, 188)
    out = roundtrip(ts, conv.intrinsics_to_camera_info(T, half, conv.make_header(T, 1, 2, "cam"), source=src),
                    "sensor_msgs/msg/CameraInfo")
    back = conv.camera_info_to_intrinsics(out)
    assert back == half
    assert (out.width, out.height, out.distortion_model) == (621, 188, "plumb_bob")
    np.testing.assert_allclose(out.k, half.K().reshape(-1))
    np.testing.assert_allclose(out.d, 0.0)
    np.testing.assert_allclose(out.r, np.eye(3).reshape(-1))
    # the stereo term Tx = -fx * B keeps the baseline B at the new focal length
    assert out.p[3] / out.p[0] == pytest.approx(src.p[3] / src.p[0])


@pytest.mark.parametrize("bad", ["zeros", "nan", "size"])
def test_bad_camera_info_raises(store, bad):
    _, T = store
    intr = CameraIntrinsics(64, 48, 50.0, 50.0, 32.0, 24.0)
    msg = conv.intrinsics_to_camera_info(T, intr, conv.make_header(T, 0, 0, "c"))
    if bad == "zeros":
        msg.k = T.float64_array([0.0] * 9)
        msg.p = T.float64_array([0.0] * 12)
    elif bad == "nan":
        msg.p = T.float64_array([float("nan")] * 12)
        msg.k = T.float64_array([float("nan"), 0, 32, 0, 50, 24, 0, 0, 1])
    else:
        msg.width = 0
    with pytest.raises(ValueError):
        conv.camera_info_to_intrinsics(msg)


# ---- point clouds -------------------------------------------------------------------------
def _decode_independently(msg) -> np.ndarray:
    """Decode a PointCloud2 with plain numpy from its fields (not with conv.pointcloud2_to_array)."""
    offsets = {f.name: f.offset for f in msg.fields}
    assert all(f.datatype == 7 and f.count == 1 for f in msg.fields)  # FLOAT32
    raw = np.frombuffer(msg.data.tobytes(), np.uint8).reshape(msg.height, msg.row_step)
    out = {}
    for name, off in offsets.items():
        cols = raw[:, :msg.width * msg.point_step].reshape(msg.height, msg.width, msg.point_step)[:, :, off:off + 4]
        out[name] = np.ascontiguousarray(cols).view("<f4")[..., 0]
    return out


def test_organised_xyzrgb_cloud_roundtrip_matches_depth(store, bag_messages):
    ts, T = store
    depth = real_depth()
    rgb = real_rgb()
    intr = conv.camera_info_to_intrinsics(bag_messages[INFO_TOPIC][0])
    cloud = CloudBuilder().build(depth, intr, rgb=rgb, organized=True, stride=2)
    msg = roundtrip(ts, conv.cloud_to_pointcloud2(T, cloud, conv.make_header(T, 5, 6, "cam")),
                    "sensor_msgs/msg/PointCloud2")
    assert (msg.height, msg.width) == (188, 621)
    assert msg.is_dense is False and msg.is_bigendian is (sys.byteorder != "little")
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"]
    assert msg.row_step == msg.point_step * msg.width
    cols = _decode_independently(msg)
    sub = depth[::2, ::2]
    np.testing.assert_array_equal(np.isnan(cols["z"]), np.isnan(sub))
    ok = ~np.isnan(sub)
    np.testing.assert_allclose(cols["z"][ok], sub[ok], rtol=1e-6)
    v, u = np.mgrid[0:375:2, 0:1242:2]
    np.testing.assert_allclose(cols["x"][ok], ((u - intr.cx) * sub / intr.fx)[ok], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cols["y"][ok], ((v - intr.cy) * sub / intr.fy)[ok], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(unpack_rgb(cols["rgb"][ok]), rgb[::2, ::2][ok])
    # and the library decoder agrees with the independent one
    arr = conv.pointcloud2_to_array(msg)
    np.testing.assert_array_equal(arr["z"], cols["z"])


def test_unorganised_cloud_keeps_only_valid_points(store, bag_messages):
    ts, T = store
    depth = real_depth()
    intr = conv.camera_info_to_intrinsics(bag_messages[INFO_TOPIC][0])
    cloud = CloudBuilder().build(depth, intr, organized=False, stride=1)
    msg = roundtrip(ts, conv.cloud_to_pointcloud2(T, cloud, conv.make_header(T, 0, 0, "cam")),
                    "sensor_msgs/msg/PointCloud2")
    n_valid = int(np.isfinite(depth).sum())
    assert (msg.height, msg.width) == (1, n_valid) and n_valid > 1000
    assert [f.name for f in msg.fields] == ["x", "y", "z"]
    z = _decode_independently(msg)["z"][0]
    assert np.isfinite(z).all()
    np.testing.assert_allclose(np.sort(z), np.sort(depth[np.isfinite(depth)]), rtol=1e-6)


def test_rclpy_flavour_builds_messages_rosidl_accepts():
    """MessageTypes.from_rclpy() against message classes with rosidl's setter rules (fake ROS)."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "fake_rclpy"))
    try:
        from fake_ros import installed
    finally:
        sys.path.pop(0)
    with installed():
        import array

        from sensor_msgs.msg import Image

        T = conv.MessageTypes.from_rclpy()
        h = conv.make_header(T, 1, 2, "cam")
        depth = real_depth()[::8, ::8].copy()
        img = conv.depth_to_image_msg(T, depth, h)
        assert isinstance(img.data, array.array) and img.data.typecode == "B"
        np.testing.assert_array_equal(np.isnan(conv.image_msg_to_depth(img)), np.isnan(depth))
        intr = CameraIntrinsics(depth.shape[1], depth.shape[0], 90.0, 90.0, 77.0, 23.0)
        info = conv.intrinsics_to_camera_info(T, intr, h)
        assert conv.camera_info_to_intrinsics(info) == intr
        cloud = CloudBuilder().build(depth, intr, organized=True)
        pc = conv.cloud_to_pointcloud2(T, cloud, h)
        np.testing.assert_array_equal(np.isnan(conv.pointcloud2_to_array(pc)["z"]), np.isnan(depth))
        rgb = conv.image_msg_to_rgb(conv.rgb_to_image_msg(T, real_rgb(0.1), h))
        np.testing.assert_array_equal(rgb, real_rgb(0.1))
        # the fake is strict where rosidl is: a numpy array is not a uint8[] value, numpy ints are not ints
        with pytest.raises(AssertionError):
            Image(data=np.zeros(3, np.uint8))
        with pytest.raises(AssertionError):
            Image(height=np.int64(3))
