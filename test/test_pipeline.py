"""DepthPipeline: geometry of both output modes (synthetic planes, reprojection, real KITTI LiDAR),
range/scale handling, buffers, and real backends on real images with a tiny model."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from conftest import shared_path
from mono_depth_ros.backends import Backend
from mono_depth_ros.camera import CameraIntrinsics
from mono_depth_ros.encodings import encode_rgb
from mono_depth_ros.model_spec import ModelSpec
from mono_depth_ros.pipeline import DepthPipeline
from mono_depth_ros.pointcloud import CloudBuilder, depth_to_xyz
from mono_depth_ros.preprocess import compute_transform
from mono_depth_ros.profiles import Profile, get_profile

TINY = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
               fine_channels=8, min_depth=0.1, max_depth=10.0)
TINY_CROP = TINY.replace(name="tiny_crop", fine_crop_h=80, resize_w=200, resize_h=150)


class FakeBackend(Backend):
    """Returns a given output map (log depth by default) whatever the input."""

    name = "fake"

    def __init__(self, profile: Profile, output: str = "log_depth", metric: bool = True):
        self.spec = ModelSpec(path="fake.pt", kind="checkpoint", profile=profile, output=output, metric=metric)
        self.input_shape = (1, 3, profile.input_h, profile.input_w)
        self.output_shape = (1, 1, profile.output_h, profile.output_w)
        self.y = np.zeros(self.output_shape, np.float32)
        self.calls = 0

    def set_depth(self, depth: np.ndarray) -> None:
        with np.errstate(divide="ignore", invalid="ignore"):
            self.y[0, 0] = np.log(depth) if self.spec.output == "log_depth" else depth

    def run(self, x):
        assert x.shape == self.input_shape and x.dtype == np.float32
        self.calls += 1
        return self.y


def output_pixel_to_camera(profile: Profile, width: int, height: int):
    """Independent of the pipeline: camera (u, v) of every output pixel centre, from
    Profile.output_region()'s documented formula and InputTransform.input_to_camera."""
    t = compute_transform(width, height, profile)
    x0, y0, x1, y1 = profile.output_region()
    i = np.arange(profile.output_w)
    j = np.arange(profile.output_h)
    x = x0 + (i + 0.5) * (x1 - x0) / profile.output_w - 0.5  # input pixel-centre coordinates
    y = y0 + (j + 0.5) * (y1 - y0) / profile.output_h - 0.5
    u, _ = t.input_to_camera(x, np.zeros_like(x))
    _, v = t.input_to_camera(np.zeros_like(y), y)
    return np.meshgrid(u, v)  # (oh, ow) each


def plane_depth(cam: CameraIntrinsics, u, v, n, d):
    """Depth Z along the rays of pixels (u, v) to the plane n . X = d."""
    rx = (np.asarray(u) - cam.cx) / cam.fx
    ry = (np.asarray(v) - cam.cy) / cam.fy
    return d / (n[0] * rx + n[1] * ry + n[2])


CASES = [("nyu", 640, 480), ("kitti", 1242, 375), ("kitti", 1224, 370), ("tiny_crop", 333, 251)]


def _profile(name):
    return TINY_CROP if name == "tiny_crop" else get_profile(name)


@pytest.mark.parametrize("pname,W,H", CASES)
def test_network_output_intrinsics_reproject_to_the_pixels_the_network_saw(pname, W, H):
    prof = _profile(pname)
    cam = CameraIntrinsics(W, H, 0.9 * W, 0.95 * W, 0.52 * W, 0.47 * H)
    pipe = DepthPipeline(backend=FakeBackend(prof), output="network")
    fb = pipe.backend
    fb.set_depth(np.full((prof.output_h, prof.output_w), 5.0))
    res = pipe.infer_rgb(np.zeros((H, W, 3), np.uint8), cam)
    assert res.depth.shape == (prof.output_h, prof.output_w)
    assert (res.intrinsics.width, res.intrinsics.height) == (prof.output_w, prof.output_h)
    uu, vv = output_pixel_to_camera(prof, W, H)
    pu, pv = pipe.output_to_camera(*np.meshgrid(np.arange(prof.output_w), np.arange(prof.output_h)), W, H)
    np.testing.assert_allclose(pu, uu, atol=1e-9)
    np.testing.assert_allclose(pv, vv, atol=1e-9)
    # points from the output depth + output intrinsics project (camera K) onto those camera pixels
    xyz = depth_to_xyz(res.depth, res.intrinsics).reshape(-1, 3)
    uv = cam.project(xyz)
    np.testing.assert_allclose(uv[:, 0], uu.reshape(-1), atol=1e-3)
    np.testing.assert_allclose(uv[:, 1], vv.reshape(-1), atol=1e-3)


@pytest.mark.parametrize("pname,W,H", CASES)
def test_tilted_plane_gives_the_expected_cloud_in_both_modes(pname, W, H):
    prof = _profile(pname)
    cam = CameraIntrinsics(W, H, 0.8 * W, 0.8 * W, 0.5 * W - 3.2, 0.5 * H + 1.7)
    n = np.array([0.15, -0.3, 1.0])
    n /= np.linalg.norm(n)
    d = 4.0
    uu, vv = output_pixel_to_camera(prof, W, H)
    fb = FakeBackend(prof.replace(min_depth=0.01, max_depth=100.0))
    fb.set_depth(plane_depth(cam, uu, vv, n, d))
    builder = CloudBuilder()

    pipe = DepthPipeline(backend=fb, output="network")
    res = pipe.infer_rgb(np.zeros((H, W, 3), np.uint8), cam)
    assert np.isfinite(res.depth).all()
    pts = builder.build(res.depth, res.intrinsics).xyz()
    np.testing.assert_allclose(pts @ n, d, rtol=1e-5)  # every point on the plane

    pipe.set_output("camera")
    res = pipe.infer_rgb(np.zeros((H, W, 3), np.uint8), cam)
    assert res.depth.shape == (H, W) and res.intrinsics == cam
    u0, v0, u1, v1 = pipe.camera_region(W, H)
    valid = np.isfinite(res.depth)
    expected = np.zeros((H, W), bool)
    expected[v0:v1, u0:u1] = True
    assert np.array_equal(valid, expected)
    # the region is exactly the camera pixels whose centres lie in the area the output map covers
    half_u = (uu[0, 1] - uu[0, 0]) / 2
    half_v = (vv[1, 0] - vv[0, 0]) / 2
    cols = np.arange(W)
    rows = np.arange(H)
    exp_cols = (cols >= uu[0, 0] - half_u - 1e-6) & (cols <= uu[0, -1] + half_u + 1e-6)
    exp_rows = (rows >= vv[0, 0] - half_v - 1e-6) & (rows <= vv[-1, 0] + half_v + 1e-6)
    assert np.array_equal(valid.any(axis=0), exp_cols) and np.array_equal(valid.any(axis=1), exp_rows)
    cloud = builder.build(res.depth, res.intrinsics, organized=False)
    pts = cloud.xyz()
    assert len(pts) == valid.sum()
    # bilinear interpolation of depth on a tilted plane: within a small fraction of the depth
    assert np.max(np.abs(pts @ n - d)) < 0.01 * d
    # and exactly at the output pixel centres that fall on camera pixel centres (NYU: none; check interior)
    inner = res.depth[v0 + 2:v1 - 2, u0 + 2:u1 - 2]
    truth = plane_depth(cam, *np.meshgrid(np.arange(u0 + 2, u1 - 2), np.arange(v0 + 2, v1 - 2)), n, d)
    assert np.max(np.abs(inner - truth) / truth) < 0.005


def test_fronto_parallel_plane_is_exact_in_camera_mode():
    prof = get_profile("kitti")
    W, H = 1242, 375
    cam = CameraIntrinsics(W, H, 721.5, 721.5, 609.6, 172.9)
    fb = FakeBackend(prof)
    fb.set_depth(np.full((prof.output_h, prof.output_w), 7.5))
    pipe = DepthPipeline(backend=fb, output="camera")
    res = pipe.infer_rgb(np.zeros((H, W, 3), np.uint8), cam)
    u0, v0, u1, v1 = pipe.camera_region(W, H)
    # KITTI: the output map covers only the bottom fine crop -> the top rows have no depth
    t = compute_transform(W, H, prof)
    _, v_top = t.input_to_camera(np.zeros(1), np.array([prof.fine_crop_top - 0.5]))
    assert v0 == int(np.ceil(v_top[0] - 1e-9)) and v0 > 100  # first camera row whose centre is inside
    assert np.isnan(res.depth[:v0]).all() and np.isfinite(res.depth[v0:v1, u0:u1]).all()
    xyz = depth_to_xyz(res.depth, res.intrinsics)
    vs, us = np.mgrid[v0:v1, u0:u1]
    np.testing.assert_allclose(xyz[v0:v1, u0:u1, 2], 7.5, rtol=1e-6)
    np.testing.assert_allclose(xyz[v0:v1, u0:u1, 0], (us - cam.cx) * 7.5 / cam.fx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xyz[v0:v1, u0:u1, 1], (vs - cam.cy) * 7.5 / cam.fy, rtol=1e-5, atol=1e-5)


def _kitti_frame(fid):
    img = shared_path("kitti_object_lidar", "image_2", f"{fid}.png")
    calib = shared_path("kitti_object_lidar", "calib", f"{fid}.txt")
    velo = shared_path("kitti_object_lidar", "velodyne", f"{fid}.bin")
    dep = shared_path("kitti_object_lidar", "proj_depth_velodyne", f"{fid}.png")
    c = {}
    for line in calib.read_text().splitlines():
        key, _, val = line.partition(":")
        try:
            c[key.strip()] = np.array([float(x) for x in val.split()])
        except ValueError:
            pass
    P2 = c["P2"].reshape(3, 4)
    R0 = np.eye(4)
    R0[:3, :3] = c["R0_rect"].reshape(3, 3)
    Tr = np.eye(4)
    Tr[:3] = c["Tr_velo_to_cam"].reshape(3, 4)
    K = P2[:, :3]
    t = np.linalg.solve(K, P2[:, 3])  # P2 = K [I | t]: camera 2's optical frame
    pts = np.fromfile(velo, np.float32).reshape(-1, 4)[:, :3].astype(np.float64)
    X = (R0 @ Tr @ np.c_[pts, np.ones(len(pts))].T)[:3].T + t
    X = X[X[:, 2] > 1.0]
    rgb = cv2.cvtColor(cv2.imread(str(img)), cv2.COLOR_BGR2RGB)
    lidar_depth = cv2.imread(str(dep), cv2.IMREAD_UNCHANGED).astype(np.float32) / 256.0
    H, W = rgb.shape[:2]
    cam = CameraIntrinsics.from_K(K, W, H)
    return rgb, cam, X, lidar_depth


@pytest.mark.parametrize("fid", ["kov_000000", "cvml_000114"])
def test_kitti_lidar_depth_through_the_pipeline_lands_on_the_lidar_points(fid):
    from scipy.spatial import cKDTree

    rgb, cam, X, lidar_depth = _kitti_frame(fid)
    H, W = rgb.shape[:2]
    prof = get_profile("kitti")
    fb = FakeBackend(prof)
    pipe = DepthPipeline(backend=fb, output="network", max_depth=80.0)
    # the "prediction": LiDAR depth (camera frame) at each output pixel's camera pixel (nearest), NaN if none
    uu, vv = pipe.output_to_camera(*np.meshgrid(np.arange(prof.output_w), np.arange(prof.output_h)), W, H)
    ui = np.clip(np.round(uu).astype(int), 0, W - 1)
    vi = np.clip(np.round(vv).astype(int), 0, H - 1)
    z = lidar_depth[vi, ui]
    z[z <= 0] = np.nan
    fb.set_depth(z)
    res = pipe.infer(encode_rgb(rgb, "bgr8"), W, H, "bgr8", intrinsics=cam)
    cloud = CloudBuilder().build(res.depth, res.intrinsics, rgb=res.rgb, organized=False)
    pts = cloud.xyz().astype(np.float64)
    assert len(pts) > 50, "too few LiDAR-valid output pixels"
    tree = cKDTree(X)

    def rel_err(points):
        dist, _ = tree.query(points)
        return dist / points[:, 2] * cam.fx  # in camera pixels at that depth

    err = rel_err(pts)
    # sampling error: output pixel centre -> nearest camera pixel (<= 0.71 px) -> the LiDAR point the
    # depth image stored there (<= 0.71 px): uniform, so a median near 0.55 px and a bound of 1.42 px
    assert np.median(err) < 0.75 and np.max(err) < 1.5, (np.median(err), np.max(err))

    # sharper: the LiDAR points themselves whose projection lies within 0.4 px of an output pixel's
    # camera position; the cloud must put each within 0.4 px (+ float error) of that very point
    uv = cam.project(X)
    dist2d, idx = cKDTree(uv).query(np.c_[uu.reshape(-1), vv.reshape(-1)])
    near = dist2d < 0.4
    z_exact = np.full(uu.size, np.nan)
    z_exact[near] = X[idx[near], 2]
    fb.set_depth(z_exact.reshape(uu.shape))
    res = pipe.infer(encode_rgb(rgb, "bgr8"), W, H, "bgr8", intrinsics=cam)
    cloud = CloudBuilder().build(res.depth, res.intrinsics, organized=True)
    got = cloud.xyz().astype(np.float64)[near]
    assert near.sum() > 20 and np.isfinite(got).all()
    off = np.linalg.norm(got - X[idx[near]], axis=1) / X[idx[near], 2] * cam.fx
    assert np.max(off) < 0.41, np.max(off)
    # the test can tell: a principal point 1 camera pixel off moves every point by ~1 px
    wrong = res.intrinsics.crop(res.intrinsics.fx / cam.fx, 0.0, res.intrinsics.width, res.intrinsics.height)
    bad = CloudBuilder().build(res.depth, wrong, organized=True).xyz().astype(np.float64)[near]
    assert np.min(np.linalg.norm(bad - X[idx[near]], axis=1) / X[idx[near], 2] * cam.fx) > 0.55
    # the cloud colours are the camera's at those pixels (network-mode rgb is sampled like depth)
    ok = np.isfinite(res.depth)
    assert res.rgb.shape == res.depth.shape + (3,)
    ref = rgb[vi[ok], ui[ok]].astype(int)
    assert np.median(np.abs(res.rgb[ok].astype(int) - ref)) < 20


@pytest.mark.parametrize("fid", ["kov_000000"])
def test_kitti_lidar_depth_image_with_camera_intrinsics_lands_on_the_lidar_points(fid):
    from scipy.spatial import cKDTree

    _, cam, X, lidar_depth = _kitti_frame(fid)
    lidar_depth[lidar_depth <= 0] = np.nan
    pts = CloudBuilder().build(lidar_depth, cam, organized=False).xyz().astype(np.float64)
    dist, _ = cKDTree(X).query(pts)
    err = dist / pts[:, 2] * cam.fx
    assert len(pts) > 10000 and np.median(err) < 0.5 and np.percentile(err, 99) < 0.75


def test_range_scale_and_output_kinds():
    prof = TINY.replace(min_depth=0.5, max_depth=4.0)
    fb = FakeBackend(prof)
    d = np.linspace(0.1, 8.0, prof.output_w * prof.output_h).reshape(prof.output_h, prof.output_w)
    fb.set_depth(d)
    pipe = DepthPipeline(backend=fb, output="network")
    rgb = np.zeros((120, 160, 3), np.uint8)
    res = pipe.infer_rgb(rgb)
    assert res.intrinsics is None and res.metric
    inside = (d >= 0.5) & (d <= 4.0)
    assert np.array_equal(np.isfinite(res.depth), inside)
    np.testing.assert_allclose(res.depth[inside], d[inside], rtol=1e-6)
    np.testing.assert_allclose(res.log_depth, np.log(d), rtol=1e-6)
    pipe.set_scale(2.0)
    pipe.set_range(1.0, 6.0)
    res = pipe.infer_rgb(rgb)
    inside = (2 * d >= 1.0) & (2 * d <= 6.0)
    assert np.array_equal(np.isfinite(res.depth), inside)
    np.testing.assert_allclose(res.depth[inside], 2 * d[inside], rtol=1e-6)
    with pytest.raises(ValueError):
        pipe.set_range(5.0, 1.0)
    with pytest.raises(ValueError):
        pipe.set_scale(0.0)
    with pytest.raises(ValueError):
        pipe.set_output("sideways")
    # inverse-depth (relative) model: metres = scale / output; non-positive outputs invalid
    fbi = FakeBackend(TINY.replace(min_depth=0.01, max_depth=100.0), output="inverse_depth", metric=False)
    disp = 1.0 / d
    disp[0, :3] = [0.0, -1.0, np.nan]
    fbi.set_depth(disp)
    pipe = DepthPipeline(backend=fbi, output="network", scale=3.0)
    res = pipe.infer_rgb(rgb)
    assert not res.metric and not pipe.metric
    assert np.isnan(res.depth[0, :3]).all()
    np.testing.assert_allclose(res.depth[1:], 3.0 * d[1:], rtol=1e-5)


def test_buffers_are_reused_and_resized_per_frame_size():
    fb = FakeBackend(TINY)
    fb.set_depth(np.full((TINY.output_h, TINY.output_w), 2.0))
    pipe = DepthPipeline(backend=fb, output="camera")
    a = np.full((240, 320, 3), 7, np.uint8)
    r1 = pipe.infer(a.tobytes(), 320, 240, "rgb8")
    d1 = r1.depth
    r2 = pipe.infer(a.tobytes(), 320, 240, "rgb8")
    assert r2.depth is d1 and r2.rgb is r1.rgb and np.array_equal(r2.rgb, a)
    assert set(r2.timings) >= {"decode", "preprocess", "infer", "postprocess"} and r2.timings["decode"] > 0
    r3 = pipe.infer(np.zeros((100, 200, 3), np.uint8), 200, 100, "rgb8")
    assert r3.depth.shape == (100, 200) and pipe.output_size(200, 100) == (200, 100)
    pipe.set_output("network")
    assert pipe.output_size(200, 100) == (TINY.output_w, TINY.output_h)
    with pytest.raises(ValueError, match="aspect"):
        pipe.infer_rgb(np.zeros((100, 200, 3), np.uint8), CameraIntrinsics(400, 400, 300, 300, 200, 200))


def test_intrinsics_of_another_resolution_are_scaled_with_a_warning(caplog):
    fb = FakeBackend(TINY)
    fb.set_depth(np.full((TINY.output_h, TINY.output_w), 2.0))
    pipe = DepthPipeline(backend=fb, output="camera")
    full = CameraIntrinsics(640, 480, 500, 500, 319.5, 239.5)
    with caplog.at_level(logging.WARNING, logger="mono_depth_ros"):
        res = pipe.infer_rgb(np.zeros((240, 320, 3), np.uint8), full)
    assert res.intrinsics == full.scaled_to(320, 240)
    assert res.intrinsics.cx == pytest.approx(159.5) and res.intrinsics.fx == pytest.approx(250)
    assert any("scaling" in r.message for r in caplog.records)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet

    torch.manual_seed(0)
    net = EigenDepthNet(TINY_CROP).eval()
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_model(net, path)
    return path, net


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_real_backends_on_a_real_image(tiny_model, backend, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))
    path, net = tiny_model
    img = shared_path("kitti_object_lidar", "image_2", "cvml_000114.png")
    bgr = cv2.imread(str(img))
    H, W = bgr.shape[:2]
    cam = CameraIntrinsics(W, H, 721.5, 721.5, 609.6, 172.9)
    with DepthPipeline(path, backend=backend, device="cpu", output="network", threads=1,
                       min_depth=1e-3, max_depth=1e3) as pipe:
        assert pipe.backend_name == backend and pipe.profile == TINY_CROP
        res = pipe.infer(bgr, W, H, "bgr8", step=W * 3, intrinsics=cam)
        from mono_depth_ros.preprocess import preprocess

        x, _ = preprocess(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), TINY_CROP)
        with torch.no_grad():
            ref = net(torch.from_numpy(x))[0, 0].numpy()
        np.testing.assert_allclose(res.log_depth, ref, atol=1e-4)
        np.testing.assert_allclose(res.depth, np.exp(ref), rtol=1e-4)
        assert res.timings["infer"] > 0
        pipe.set_output("camera")
        res = pipe.infer(bgr, W, H, "bgr8", intrinsics=cam)
        assert res.depth.shape == (H, W) and np.isfinite(res.depth).any() and np.isnan(res.depth[0]).all()


@pytest.mark.parametrize("pname", ["nyu", "kitti", "tiny_crop"])
def test_profile_output_map_is_the_documented_output_region_formula(pname):
    """Profile.output_map (the matrix the pipeline's geometry composes with the input transform) takes
    output pixel centres to Profile.output_region()'s formula; whole_input spans the whole input."""
    prof = _profile(pname)
    i, j = np.meshgrid(np.arange(prof.output_w, dtype=float), np.arange(prof.output_h, dtype=float))
    xy = np.einsum("ab,bhw->ahw", prof.output_map(), np.stack([i, j, np.ones_like(i)]))
    x0, y0, x1, y1 = prof.output_region()
    np.testing.assert_allclose(xy[0], x0 + (i + 0.5) * (x1 - x0) / prof.output_w - 0.5, atol=1e-12)
    np.testing.assert_allclose(xy[1], y0 + (j + 0.5) * (y1 - y0) / prof.output_h - 0.5, atol=1e-12)
    np.testing.assert_array_equal(xy[2], 1.0)
    m = prof.output_map(10, 5, whole_input=True)        # another output size, over the whole input
    np.testing.assert_allclose(m @ [0, 0, 1], [prof.input_w / 20 - 0.5, prof.input_h / 10 - 0.5, 1.0])
    np.testing.assert_allclose(m @ [9, 4, 1], [prof.input_w - prof.input_w / 20 - 0.5,
                                               prof.input_h - prof.input_h / 10 - 0.5, 1.0])
