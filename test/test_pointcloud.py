"""Point clouds: back-projection, PointCloud2-ready layouts (16 / 32 bytes), rgb packing, PLY, colourised depth."""
import numpy as np
import pytest

from mono_depth_ros.camera import CameraIntrinsics
from mono_depth_ros.colorize import colorize_depth
from mono_depth_ros.pointcloud import (FLOAT32, CloudBuilder, depth_to_xyz, pack_rgb, read_ply, unpack_rgb,
                                       write_ply)

CAM = CameraIntrinsics(64, 48, 50.0, 52.0, 31.5, 23.5)


def _plane(cam, n, d):
    v, u = np.mgrid[0:cam.height, 0:cam.width].astype(np.float64)
    return (d / (n[0] * (u - cam.cx) / cam.fx + n[1] * (v - cam.cy) / cam.fy + n[2])).astype(np.float32)


def test_plane_at_known_depth_gives_points_on_that_plane():
    n = np.array([0.2, 0.1, 1.0]) / np.linalg.norm([0.2, 0.1, 1.0])
    depth = _plane(CAM, n, 3.0)
    cloud = CloudBuilder().build(depth, CAM)
    assert (cloud.width, cloud.height, cloud.point_step, cloud.row_step) == (64, 48, 16, 64 * 16)
    xyz = cloud.xyz().astype(np.float64)
    np.testing.assert_allclose(xyz @ n, 3.0, rtol=1e-5)
    # and every point projects back onto its own pixel
    v, u = np.mgrid[0:48, 0:64]
    np.testing.assert_allclose(CAM.project(xyz), np.c_[u.reshape(-1), v.reshape(-1)], atol=1e-4)
    np.testing.assert_allclose(depth_to_xyz(depth, CAM).reshape(-1, 3), xyz, rtol=1e-6)


def test_layouts_match_pointcloud2_conventions():
    depth = np.full((48, 64), 2.0, np.float32)
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    b = CloudBuilder()
    c = b.build(depth, CAM)
    assert c.fields == [("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32)]
    assert c.data.dtype.itemsize == 16 and len(c.tobytes()) == 64 * 48 * 16
    assert not c.is_dense
    c = b.build(depth, CAM, rgb=rgb)
    assert c.point_step == 32 and c.data.dtype.itemsize == 32 and ("rgb", 16, FLOAT32) in c.fields
    raw = np.frombuffer(c.tobytes(), np.uint8).reshape(-1, 32)
    # x, y, z little-endian float32 at 0, 4, 8; rgb uint32 0x00RRGGBB at 16 (bytes B, G, R, 0)
    np.testing.assert_array_equal(raw[:, 8:12].copy().view("<f4")[:, 0], 2.0)
    np.testing.assert_array_equal(raw[:, 16], rgb[..., 2].reshape(-1))
    np.testing.assert_array_equal(raw[:, 18], rgb[..., 0].reshape(-1))
    assert (raw[:, 19] == 0).all() and (raw[:, 12:16] == 0).all() and (raw[:, 20:] == 0).all()
    u = raw[:, 16:20].copy().view("<u4")[:, 0]
    r, g, bl = rgb[..., 0].reshape(-1).astype(np.uint32), rgb[..., 1].reshape(-1).astype(np.uint32), \
        rgb[..., 2].reshape(-1).astype(np.uint32)
    np.testing.assert_array_equal(u, (r << 16) | (g << 8) | bl)
    np.testing.assert_array_equal(c.data["rgb"].view(np.uint32), pack_rgb(rgb).reshape(-1).view(np.uint32))
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb)), rgb)
    np.testing.assert_array_equal(c.rgb(), rgb.reshape(-1, 3))


def test_invalid_points_organised_and_unorganised_and_stride():
    depth = np.full((48, 64), 4.0, np.float32)
    depth[0, :5] = [np.nan, 0.0, -1.0, np.inf, 4.0]
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 1] = np.arange(64, dtype=np.uint8)[None, :]
    b = CloudBuilder()
    org = b.build(depth, CAM, rgb=rgb)
    xyz = org.xyz().reshape(48, 64, 3)
    assert np.isnan(xyz[0, :4]).all() and np.isfinite(xyz[0, 4]).all() and np.isfinite(xyz[1:]).all()
    un = b.build(depth, CAM, rgb=rgb, organized=False)
    assert (un.width, un.height, un.is_dense) == (48 * 64 - 4, 1, True)
    assert np.isfinite(un.xyz()).all()
    np.testing.assert_array_equal(un.rgb()[:, 1], np.r_[rgb[0, 4:, 1], np.tile(rgb[0, :, 1], 47)])
    st = b.build(depth, CAM, rgb=rgb, stride=4)
    assert (st.width, st.height) == (16, 12)
    np.testing.assert_allclose(st.xyz().reshape(12, 16, 3)[3, 5], [(20 - CAM.cx) * 4 / CAM.fx,
                                                                    (12 - CAM.cy) * 4 / CAM.fy, 4.0], rtol=1e-6)
    np.testing.assert_array_equal(st.rgb().reshape(12, 16, 3)[:, :, 1], rgb[::4, ::4, 1])
    # buffers are reused across frames of the same geometry (size, stride, colour, intrinsics)
    again = b.build(depth, CAM, rgb=rgb, stride=4)
    assert again.data is st.data
    with pytest.raises(ValueError, match="intrinsics are for"):
        b.build(depth[:, :32], CAM)
    with pytest.raises(ValueError, match="stride"):
        b.build(depth, CAM, stride=0)
    with pytest.raises(ValueError, match="aligned"):
        b.build(depth, CAM, rgb=rgb[:10])


def test_write_ply_round_trip(tmp_path):
    depth = np.full((48, 64), 1.5, np.float32)
    depth[10:20] = np.nan
    rgb = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cloud = CloudBuilder().build(depth, CAM, rgb=rgb)
    write_ply(tmp_path / "c.ply", cloud)
    xyz, col = read_ply(tmp_path / "c.ply")
    valid = np.isfinite(depth).reshape(-1)
    assert len(xyz) == valid.sum()
    np.testing.assert_allclose(xyz, cloud.xyz()[valid])
    np.testing.assert_array_equal(col, rgb.reshape(-1, 3)[valid])
    assert (tmp_path / "c.ply").read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    write_ply(tmp_path / "x.ply", CloudBuilder().build(depth, CAM))
    xyz2, col2 = read_ply(tmp_path / "x.ply")
    assert col2 is None and len(xyz2) == valid.sum()


def test_colorize_near_is_warm_far_is_cool_nan_is_black():
    d = np.array([[0.5, 5.0, 10.0, np.nan, 0.0, 50.0]], np.float32)
    c = colorize_depth(d, 0.5, 10.0)
    assert c.shape == (1, 6, 3) and c.dtype == np.uint8
    near, mid, far = c[0, 0].astype(int), c[0, 1].astype(int), c[0, 2].astype(int)
    assert near[0] > 2 * near[2]  # turbo's hot end: red
    assert far[2] > far[0]         # turbo's cold end: dark blue
    import cv2

    mid_index = round((10.0 - 5.0) / 9.5 * 255)  # linear in depth from max (0) to min (255)
    bgr = cv2.applyColorMap(np.array([[255, 0, mid_index]], np.uint8), cv2.COLORMAP_TURBO)[0]
    np.testing.assert_array_equal(c[0, 0], bgr[0, ::-1])  # RGB order, not OpenCV's BGR
    np.testing.assert_array_equal(c[0, 2], bgr[1, ::-1])
    # 255 colour levels (index 0 of the table is reserved for invalid): the mid colour is the
    # colour map's entry at mid_index to within one level.
    near_mid = cv2.applyColorMap(np.array([[mid_index - 1, mid_index, mid_index + 1]], np.uint8),
                                 cv2.COLORMAP_TURBO)[0][:, ::-1]
    assert any((mid == m).all() for m in near_mid), (mid, near_mid)
    assert (c[0, 3] == 0).all() and (c[0, 4] == 0).all()
    np.testing.assert_array_equal(c[0, 5], c[0, 2])  # beyond max is clipped to the far colour
    out = np.empty_like(c)
    assert colorize_depth(d, 0.5, 10.0, out=out, inverse=True) is out
    with pytest.raises(ValueError):
        colorize_depth(d, 1.0, 1.0)
    with pytest.raises(ValueError, match="colour map"):
        colorize_depth(d, 0.5, 10.0, cmap="rainbowish")


def test_cloud_builder_holds_one_geometry_and_releases_a_huge_frame():
    """One huge frame must not stay cached: the next frame of another size replaces its buffers, and
    nothing held ever exceeds what the largest frame built needs."""
    b = CloudBuilder()
    assert b.nbytes == 0
    small = np.full((48, 64), 3.0, np.float32)
    b.build(small, CAM, rgb=np.zeros((48, 64, 3), np.uint8), organized=False)
    small_bytes = b.nbytes
    assert 48 * 64 * 32 <= small_bytes < 48 * 64 * 32 * 4
    big_cam = CameraIntrinsics(fx=1000.0, fy=1000.0, cx=499.5, cy=374.5, width=1000, height=750)
    big = np.full((750, 1000), 3.0, np.float32)
    b.build(big, big_cam, rgb=np.zeros((750, 1000, 3), np.uint8), organized=False)
    big_bytes = b.nbytes
    assert big_bytes >= 1000 * 750 * 32 * 2  # organised + unorganised point buffers
    cloud = b.build(small, CAM, rgb=np.zeros((48, 64, 3), np.uint8), organized=False)
    assert b.nbytes == small_bytes  # the 1000x750 buffers are gone, not kept beside the small ones
    assert cloud.width == 48 * 64 and np.all(cloud.data["z"] == 3.0)
    # every other geometry (stride, colour, intrinsics) also replaces rather than accumulates
    for stride in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10):
        b.build(small, CAM, stride=stride)
        assert b.nbytes <= small_bytes
    b.clear()
    assert b.nbytes == 0


@pytest.mark.parametrize("cmap", ["turbo", "viridis"])
@pytest.mark.parametrize("inverse", [False, True])
def test_lut_colourise_matches_the_colour_map_within_one_level(cmap, inverse):
    """colorize_depth (float32 quantisation + uint32 table + cvtColor) against an independent float64
    reference through OpenCV's own applyColorMap: every pixel's colour is the map's colour of the
    reference level or a neighbouring one (float32 vs float64 rounding at level boundaries), invalid
    pixels (NaN, inf, <= 0) are black, and the ends of the range clip to the map's ends."""
    import cv2

    rng = np.random.default_rng(3)
    lo, hi = 0.7, 9.0
    d = rng.uniform(0.2, 12.0, (60, 80)).astype(np.float32)
    d[0, :6] = [np.nan, np.inf, -np.inf, 0.0, -2.0, 1e-30]
    d[1, :4] = [lo, hi, lo / 2, hi * 2]
    got = colorize_depth(d, lo, hi, cmap, inverse=inverse)
    code = getattr(cv2, "COLORMAP_" + cmap.upper())
    table = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), code).reshape(256, 3)[:, ::-1]
    x = d.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if inverse:
            a, b = 1.0 / hi, 1.0 / lo
            frac = (1.0 / x - a) / (b - a)    # 0 at the far end, 1 at the near end
        else:
            frac = (hi - x) / (hi - lo)
    valid = np.isfinite(x) & (x > 0)
    level = np.floor(np.clip(np.where(valid, frac, 0.0), 0.0, 1.0) * 254.0 + 0.5)  # 0..254
    # level L of 0..254 shows the colour map entry round(L * 255 / 254)
    ok = np.zeros(d.shape, bool)
    for k in (-1, 0, 1):
        lv = np.clip(level + k, 0, 254)
        ref = table[np.round(lv * 255.0 / 254.0).astype(int)]
        ok |= np.all(got == ref, axis=-1)
    assert ok[valid].all(), f"{(~ok[valid]).sum()} pixels off by more than one level"
    assert (got[~valid] == 0).all()
    assert valid[0, 5]  # a tiny positive depth is valid (the warm end), not black
    np.testing.assert_array_equal(got[1, 0], table[255])   # min_depth -> warm end
    np.testing.assert_array_equal(got[1, 1], table[0])     # max_depth -> cool end
    np.testing.assert_array_equal(got[1, 2], table[255])   # nearer than the range: clipped
    np.testing.assert_array_equal(got[1, 3], table[0])     # farther than the range: clipped
    # a given output buffer is reused
    out = np.empty((60, 80, 3), np.uint8)
    assert colorize_depth(d, lo, hi, cmap, out=out, inverse=inverse) is out
    np.testing.assert_array_equal(out, got)
