"""mono_depth_ros.geometry: the one camera <-> network geometry, checked against independent computations
(3-D points projected through pinhole cameras built from the documented resize/crop/region steps), and
every former user (pipeline, augmentation, training evaluation, bag resampler) going through it; the one
intrinsics policy (camera.fit_intrinsics)."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import shared_path
from mono_depth_ros import geometry
from mono_depth_ros.camera import CameraIntrinsics, IntrinsicsFitter, IntrinsicsSizeError, fit_intrinsics
from mono_depth_ros.geometry import (CameraResampler, OutputGeometry, compute_transform, input_to_output_matrix,
                                     output_geometry, resample_to_camera)
from mono_depth_ros.profiles import Profile, get_profile

TINY_CROP = Profile(name="tiny_crop", input_w=160, input_h=120, fine_crop_h=80, resize_w=200, resize_h=150,
                    fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16), fine_channels=8)
CASES = [("nyu", 640, 480), ("kitti", 1242, 375), ("kitti", 1224, 370), ("tiny_crop", 333, 251)]


def _profile(name: str) -> Profile:
    return TINY_CROP if name == "tiny_crop" else get_profile(name)


def _points(cam: CameraIntrinsics, n: int = 400, seed: int = 0) -> np.ndarray:
    """Random 3-D points in front of ``cam`` that project inside its image."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-0.5, cam.width - 0.5, n)
    v = rng.uniform(-0.5, cam.height - 0.5, n)
    z = rng.uniform(1.0, 30.0, n)
    return np.stack([(u - cam.cx) * z / cam.fx, (v - cam.cy) * z / cam.fy, z], axis=-1)


def _independent_cameras(prof: Profile, cam: CameraIntrinsics):
    """The network input and the output grid as pinhole cameras, from the documented steps only:
    resize to round(W s) x round(H s), centre crop, then the output grid spreading over
    Profile.output_region() (CameraIntrinsics.scaled_to / crop: the pixel-centre convention)."""
    rw, rh = prof.resize_w or prof.input_w, prof.resize_h or prof.input_h
    s = max(rw / cam.width, rh / cam.height, prof.input_w / cam.width, prof.input_h / cam.height)
    W2, H2 = max(round(cam.width * s), prof.input_w), max(round(cam.height * s), prof.input_h)
    net_in = cam.scaled_to(W2, H2).crop((W2 - prof.input_w) // 2, (H2 - prof.input_h) // 2, prof.input_w, prof.input_h)
    x0, y0, x1, y1 = prof.output_region()
    region = net_in.crop(x0, y0, int(x1 - x0), int(y1 - y0))
    return net_in, region.scaled_to(prof.output_w, prof.output_h)


@pytest.mark.parametrize("pname,W,H", CASES)
def test_the_geometry_agrees_with_projecting_known_points(pname, W, H):
    prof = _profile(pname)
    cam = CameraIntrinsics(W, H, 0.9 * W, 0.93 * W, 0.52 * W - 1.3, 0.47 * H + 0.6)
    X = _points(cam)
    uv = cam.project(X)
    net_in, out_cam = _independent_cameras(prof, cam)
    g = output_geometry(prof, W, H)
    # the input transform: camera pixel -> network-input pixel
    xy = (g.transform.matrix() @ np.c_[uv, np.ones(len(uv))].T)[:2].T
    np.testing.assert_allclose(xy, net_in.project(X), atol=1e-9)
    # the output map, both ways, and as intrinsics
    ij = out_cam.project(X)
    np.testing.assert_allclose(np.stack(g.output_to_camera(ij[:, 0], ij[:, 1]), -1), uv, atol=1e-8)
    np.testing.assert_allclose(np.stack(g.camera_to_output(uv[:, 0], uv[:, 1]), -1), ij, atol=1e-8)
    np.testing.assert_allclose((g.matrix() @ np.c_[ij, np.ones(len(ij))].T)[:2].T, uv, atol=1e-8)
    oi = g.output_intrinsics(cam)
    assert (oi.width, oi.height) == (prof.output_w, prof.output_h)
    np.testing.assert_allclose([oi.fx, oi.fy, oi.cx, oi.cy], [out_cam.fx, out_cam.fy, out_cam.cx, out_cam.cy],
                               atol=1e-9)
    # camera -> output as one matrix (what training's ground truth goes through)
    M = geometry.camera_to_output_matrix(g.transform, prof)
    np.testing.assert_allclose((M @ np.c_[uv, np.ones(len(uv))].T)[:2].T, ij, atol=1e-8)
    np.testing.assert_allclose(input_to_output_matrix(prof) @ prof.output_map(), np.eye(3), atol=1e-12)
    # from the two intrinsics alone (the bag's case: a depth image with its camera_info)
    back = OutputGeometry.from_intrinsics(cam, oi)
    np.testing.assert_allclose([back.ax, back.bx, back.ay, back.by], [g.ax, g.bx, g.ay, g.by], atol=1e-9)


@pytest.mark.parametrize("pname,W,H", CASES)
def test_crop_window_is_every_camera_pixel_whose_centre_the_output_covers(pname, W, H):
    prof = _profile(pname)
    g = output_geometry(prof, W, H)
    u0, v0, u1, v1 = g.camera_window()
    i, _ = g.camera_to_output(np.arange(W), np.zeros(W))
    _, j = g.camera_to_output(np.zeros(H), np.arange(H))
    cols = np.nonzero((i >= -0.5 - 1e-9) & (i <= prof.output_w - 0.5 + 1e-9))[0]
    rows = np.nonzero((j >= -0.5 - 1e-9) & (j <= prof.output_h - 0.5 + 1e-9))[0]
    assert (u0, u1) == (cols[0], cols[-1] + 1) and (v0, v1) == (rows[0], rows[-1] + 1)
    if prof.fine_crop_h:
        assert v0 > 0     # KITTI: the output map covers only the bottom rows


@pytest.mark.parametrize("pname,W,H", CASES)
def test_resampling_is_bilinear_in_output_coordinates(pname, W, H):
    """A map linear in (i, j) comes back exactly at every camera pixel of the window (away from the
    replicated outer half pixel); NaN outside; fill_outside fills everything with the border repeated."""
    prof = _profile(pname)
    g = output_geometry(prof, W, H)
    jj, ii = np.mgrid[0:prof.output_h, 0:prof.output_w].astype(np.float64)
    lin = (3.0 + 0.25 * ii + 0.5 * jj).astype(np.float32)
    up = resample_to_camera(lin, g)
    u0, v0, u1, v1 = g.camera_window()
    inside = np.zeros((H, W), bool)
    inside[v0:v1, u0:u1] = True
    assert np.array_equal(np.isfinite(up), inside)
    uu, vv = np.meshgrid(np.arange(W), np.arange(H))
    i, j = g.camera_to_output(uu, vv)
    core = inside & (i >= 0) & (i <= prof.output_w - 1) & (j >= 0) & (j <= prof.output_h - 1)
    np.testing.assert_allclose(up[core], (3.0 + 0.25 * i + 0.5 * j)[core], rtol=1e-5)
    full = resample_to_camera(lin, g, fill_outside=True)
    assert np.isfinite(full).all() and np.array_equal(full[inside], up[inside])
    clamped = 3.0 + 0.25 * np.clip(i, 0, prof.output_w - 1) + 0.5 * np.clip(j, 0, prof.output_h - 1)
    np.testing.assert_allclose(full, clamped, rtol=1e-5)
    # within cv2's bilinear (1/32-pixel weights) of OpenCV's own warp of the same map
    M = geometry.camera_to_output_matrix(g.transform, prof)
    cv = cv2.warpAffine(lin, M[:2], (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                        borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(full, cv, atol=0.75 / 32 + 1e-4)


def test_resampler_reuses_its_buffer_and_checks_the_map_size():
    g = output_geometry(TINY_CROP, 333, 251)
    r = CameraResampler(g)
    a = r(np.ones((g.out_h, g.out_w), np.float32))
    b = r(np.full((g.out_h, g.out_w), 2.0, np.float32))
    assert a is b and np.nanmax(b) == 2.0
    with pytest.raises(ValueError, match="output map is"):
        r(np.ones((g.out_h + 1, g.out_w), np.float32))


# ---- every former user goes through the geometry ------------------------------------------------
@pytest.fixture
def spy(monkeypatch):
    """Counts calls of the geometry's resampler and input-transform matrices, for all importers."""
    calls = {"resample": 0, "matrix": 0, "resize_matrix": 0, "output": 0}
    real_call = CameraResampler.__call__
    real_matrix = geometry.InputTransform.matrix
    real_resize = geometry.InputTransform.resize_matrix
    real_out = Profile.output_map

    def count(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(CameraResampler, "__call__", count("resample", real_call))
    monkeypatch.setattr(geometry.InputTransform, "matrix", count("matrix", real_matrix))
    monkeypatch.setattr(geometry.InputTransform, "resize_matrix", count("resize_matrix", real_resize))
    monkeypatch.setattr(Profile, "output_map", count("output", real_out))
    return calls


def test_pipeline_resamples_and_maps_through_the_geometry(spy):
    from test_pipeline import FakeBackend

    from mono_depth_ros.pipeline import DepthPipeline

    fb = FakeBackend(TINY_CROP)
    fb.set_depth(np.full((TINY_CROP.output_h, TINY_CROP.output_w), 2.0))
    pipe = DepthPipeline(backend=fb, output="camera")
    cam = CameraIntrinsics(333, 251, 300.0, 300.0, 166.0, 125.0)
    res = pipe.infer_rgb(np.zeros((251, 333, 3), np.uint8), cam)
    assert spy["resample"] == 1 and spy["output"] == 1
    g = output_geometry(TINY_CROP, 333, 251)
    assert pipe.geometry(333, 251) == g and pipe.camera_region(333, 251) == g.camera_window()
    np.testing.assert_array_equal(res.depth, resample_to_camera(np.full((g.out_h, g.out_w), 2.0, np.float32), g))
    pipe.set_output("network")
    assert pipe.infer_rgb(np.zeros((251, 333, 3), np.uint8), cam).intrinsics == g.output_intrinsics(cam)


def test_training_evaluation_resamples_through_the_geometry(spy):
    from training.evaluate import prediction_to_camera

    t = compute_transform(333, 251, TINY_CROP)
    pred = np.random.default_rng(0).uniform(1, 5, (TINY_CROP.output_h, TINY_CROP.output_w)).astype(np.float32)
    up = prediction_to_camera(pred, t, TINY_CROP)
    assert spy["resample"] == 1
    np.testing.assert_array_equal(up, resample_to_camera(pred, output_geometry(TINY_CROP, 333, 251)), strict=True)


def test_augmentation_maps_ground_truth_through_the_geometry(spy):
    from training.augment import AugmentConfig, JointTransform

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (251, 333, 3)).astype(np.uint8)
    depth = rng.uniform(1, 9, (251, 333)).astype(np.float32)
    jt = JointTransform(TINY_CROP, None)
    s = jt(rgb, depth, np.ones_like(depth, bool))
    assert spy["matrix"] == 1
    # evaluation mode: each output pixel holds the depth of the camera pixel nearest its centre
    g = output_geometry(TINY_CROP, 333, 251)
    jj, ii = np.mgrid[0:g.out_h, 0:g.out_w]
    u, v = g.output_to_camera(ii, jj)
    ui, vi = np.floor(u + 0.5).astype(int), np.floor(v + 0.5).astype(int)
    assert (s.depth == depth[vi, ui]).mean() > 0.99
    JointTransform(TINY_CROP, AugmentConfig())(rgb, depth, np.ones_like(depth, bool), np.random.default_rng(1))
    assert spy["resize_matrix"] >= 1


def test_bag_resampler_goes_through_the_geometry(spy, tmp_path):
    """mono-depth bag --eval with output_resolution network: the network-size depth is brought onto the
    camera grid by geometry.resample_to_camera (from the camera's and the depth image's intrinsics)."""
    from mono_depth_ros.bag.run import BagRunOptions, run_bag

    prof = get_profile("kitti")
    seen = []

    def infer(rgb, intr):
        g = output_geometry(prof, rgb.shape[1], rgb.shape[0])
        seen.append(g)
        return SimpleNamespace(depth=np.full((g.out_h, g.out_w), 9.0, np.float32), intrinsics=g.output_intrinsics(intr),
                               rgb=rgb, metric=True)

    src = shared_path("ros2_bags", "kitti_2frames_repackaged.mcap")
    res = run_bag(BagRunOptions(src, tmp_path / "o", evaluate=True, progress=False, eval_dir=tmp_path / "ev",
                                plots=False, protocols=["paper"]), infer=infer, log=lambda s: None)
    assert spy["resample"] == 2 and len(seen) == 2
    # exactly the LiDAR pixels inside the crop window are scored (ground truth computed independently)
    from mono_depth_ros.bag import io as bio
    from mono_depth_ros.bag.evaluate import camera_info_K, lidar_to_depth
    from mono_depth_ros.bag.tf import StaticTransforms

    msgs = {}
    with bio.BagReader(src) as r:
        for topic, _, m in r.messages(list(r.topics)):
            msgs.setdefault(topic, []).append(m)
    tf = StaticTransforms()
    for m in msgs["/tf_static"]:
        tf.add_message(m)
    n_seen = 0
    for g, info, cloud in zip(seen, msgs["/kitti/camera_color_left/camera_info"], msgs["/kitti/velodyne_points"]):
        T = tf.lookup(info.header.frame_id, cloud.header.frame_id)
        gt = lidar_to_depth(bio.pointcloud2_xyz(cloud), T, camera_info_K(info.k, info.p), info.width, info.height)
        u0, v0, u1, v1 = g.camera_window()
        n_seen += int((gt[v0:v1, u0:u1] > 1e-3).sum())
    t = res.totals["totals"]["paper"]
    assert t["pixels"] == n_seen and 0 < t["coverage"] < 1


# ---- the one intrinsics policy ----------------------------------------------------------------
FULL = CameraIntrinsics(1242, 375, 721.5, 721.5, 609.6, 172.9)


def test_fit_intrinsics_scales_binning_and_refuses_another_aspect():
    same, note = fit_intrinsics(FULL, 1242, 375)
    assert same is FULL and note is None
    half, note = fit_intrinsics(FULL, 621, 188)          # 2x2 binning, the odd row count rounded
    assert half == FULL.scaled_to(621, 188) and "scaling" in note and "1242x375" in note and "621x188" in note
    assert fit_intrinsics(FULL, 621, 187)[0] == FULL.scaled_to(621, 187)
    with pytest.raises(IntrinsicsSizeError, match="another aspect ratio") as exc:
        fit_intrinsics(FULL, 1242, 188)
    assert "\n" not in str(exc.value) and "1242x375" in str(exc.value) and isinstance(exc.value, ValueError)


def test_fit_intrinsics_refuses_a_crop_that_no_one_scale_factor_explains():
    """640x480 intrinsics for a 642x480 image: aspect ratios within 0.3 %, but no binning or uniform resize
    gives it (the height would be 481.5); scaling it would make fx and fy disagree."""
    vga = CameraIntrinsics(width=640, height=480, fx=500.0, fy=500.0, cx=319.5, cy=239.5)
    with pytest.raises(IntrinsicsSizeError, match="not one scale factor"):
        fit_intrinsics(vga, 642, 480)
    scaled, _ = fit_intrinsics(vga, 320, 240)            # 2x2 binning: fx and fy stay equal
    assert scaled.fx == scaled.fy == 250.0
    assert fit_intrinsics(vga, 1280, 960)[0].fx == 1000.0   # a uniform 2x upscale


def test_fitter_logs_each_size_pair_once():
    notes = []
    fit = IntrinsicsFitter(notes.append)
    for _ in range(3):
        fit(FULL, 621, 188)
        fit(FULL, 1242, 375)
    fit(FULL, 311, 94)
    assert len(notes) == 2 and "621x188" in notes[0] and "311x94" in notes[1]


def test_the_pipeline_uses_the_policy(caplog):
    from test_pipeline import FakeBackend

    from mono_depth_ros.pipeline import DepthPipeline

    fb = FakeBackend(TINY_CROP)
    fb.set_depth(np.full((TINY_CROP.output_h, TINY_CROP.output_w), 2.0))
    pipe = DepthPipeline(backend=fb)
    with caplog.at_level(logging.WARNING, logger="mono_depth_ros"):
        for _ in range(3):
            assert pipe.infer_rgb(np.zeros((188, 621, 3), np.uint8), FULL).intrinsics == FULL.scaled_to(621, 188)
    assert len([r for r in caplog.records if "scaling the intrinsics" in r.message]) == 1
    with pytest.raises(IntrinsicsSizeError, match="another aspect ratio"):
        pipe.infer_rgb(np.zeros((375, 621, 3), np.uint8), FULL)
