"""The synthetic RGB-D renderer: exact depth against analytic geometry, intrinsics consistency,
determinism, trajectories, and the dataset wrapper.  Small images only (all tests take a few seconds)."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from mono_depth_ros import synthetic as S
from mono_depth_ros.synthetic import (Box, CameraPose, Material, Plane, Room, Scene, SyntheticDataset, cast_rays,
                                      camera_trajectory, make_intrinsics, random_scene, render, render_frame,
                                      render_sequence)

# Deliberately asymmetric intrinsics (fx != fy, off-centre principal point) so swapped axes show up.
INTR = S.PinholeIntrinsics(width=96, height=72, fx=80.0, fy=88.0, cx=45.3, cy=37.6)


def _scene(planes=(), boxes=(), camera=CameraPose(), far=1000.0) -> Scene:
    return Scene("test", list(planes), list(boxes), camera, far=far, noise_sigma=0.0)


def _backproject(frame: S.SyntheticFrame) -> np.ndarray:
    """(H, W, 3) world points of every pixel (NaN where invalid), float64, from depth + intrinsics + pose."""
    i = frame.intrinsics
    v, u = np.mgrid[0:i.height, 0:i.width].astype(float)
    z = frame.depth.astype(float)
    pc = np.stack([(u - i.cx) / i.fx * z, (v - i.cy) / i.fy * z, z], axis=-1)
    return pc @ frame.pose.rotation().T + np.asarray(frame.pose.position)


def _plane_residuals(scene: Scene, frame: S.SyntheticFrame, points: np.ndarray) -> np.ndarray:
    planes = scene.face_planes()
    m = frame.valid
    f = frame.face_id[m]
    assert np.all(f >= 0), "a valid pixel without a face"
    return np.abs(np.einsum("ij,ij->i", points[m], planes[f, :3]) - planes[f, 3])


# ---- analytic geometry ----------------------------------------------------------------------
def test_floor_depth_equals_h_fy_over_v_minus_cy():
    h = 1.3
    scene = _scene(planes=[Plane((0, 0, 1), 0.0)], camera=CameraPose((2.0, -1.0, h)), far=1000.0)
    f = render(scene, intrinsics=INTR)
    v = np.arange(INTR.height, dtype=float)
    expected_row = np.where(v > INTR.cy, h * INTR.fy / (v - INTR.cy), np.nan)
    expected = np.repeat(expected_row[:, None], INTR.width, axis=1)
    expected[expected > scene.far] = np.nan
    np.testing.assert_array_equal(np.isnan(f.depth), np.isnan(expected))
    np.testing.assert_allclose(f.depth[~np.isnan(expected)], expected[~np.isnan(expected)], rtol=2e-6)
    assert np.array_equal(f.invalid, np.isnan(f.depth))
    assert f.invalid[: int(INTR.cy)].all() and f.valid[int(INTR.cy) + 1:].all()


def test_floor_depth_with_far_limit_marks_far_ground_invalid():
    h, far = 1.65, 30.0
    scene = _scene(planes=[Plane((0, 0, 1), 0.0)], camera=CameraPose((0, 0, h)), far=far)
    f = render(scene, intrinsics=INTR)
    v = np.arange(INTR.height)
    with np.errstate(divide="ignore"):
        z = h * INTR.fy / (v - INTR.cy)
    rows_valid = (v > INTR.cy) & (z <= far)
    assert rows_valid.any() and (~rows_valid & (v > INTR.cy)).any()   # both regimes present
    np.testing.assert_array_equal(f.valid.all(axis=1), rows_valid)
    np.testing.assert_array_equal(f.invalid.all(axis=1), ~rows_valid)


@pytest.mark.parametrize("yaw", [0.0, 0.4])
def test_frontal_wall_depth_is_constant(yaw):
    d = 3.7
    # wall perpendicular to the viewing direction at distance d, whatever the yaw
    n = (math.cos(yaw), math.sin(yaw), 0.0)
    cam = CameraPose((1.0, 2.0, 1.5), yaw=yaw)
    offset = float(np.dot(n, cam.position)) + d
    scene = _scene(planes=[Plane(n, offset)], camera=cam)
    f = render(scene, intrinsics=INTR)
    assert f.valid.all()
    np.testing.assert_allclose(f.depth, d, rtol=2e-6)


def test_room_walls_floor_and_ceiling_analytic():
    length, width, height = 6.0, 4.0, 2.5
    cam = CameraPose((1.0, 0.5, 1.2))            # level, looking along +x at the front wall x = 6
    scene = _scene(boxes=[Room((length / 2, 0, height / 2), (length, width, height))], camera=cam)
    f = render(scene, intrinsics=INTR)
    assert f.valid.all()
    labels = scene.face_labels()
    front = f.face_id == labels.index("room+x")
    floor = f.face_id == labels.index("room-z")
    ceil = f.face_id == labels.index("room+z")
    assert front.sum() > 100 and floor.sum() > 100 and ceil.sum() > 100
    np.testing.assert_allclose(f.depth[front], length - 1.0, rtol=2e-6)
    vv = np.broadcast_to(np.arange(INTR.height)[:, None], f.depth.shape)
    np.testing.assert_allclose(f.depth[floor], 1.2 * INTR.fy / (vv[floor] - INTR.cy), rtol=2e-6)
    np.testing.assert_allclose(f.depth[ceil], (height - 1.2) * INTR.fy / (INTR.cy - vv[ceil]), rtol=2e-6)
    # the front wall is hit exactly where the analytic projection of its rectangle lands
    uu = np.broadcast_to(np.arange(INTR.width)[None, :], f.depth.shape)
    x = (uu - INTR.cx) / INTR.fx * (length - 1.0)       # optical x = -world y offset
    y = (vv - INTR.cy) / INTR.fy * (length - 1.0)       # optical y = -world z offset
    wy, wz = 0.5 - x, 1.2 - y
    inside = (np.abs(wy) < width / 2) & (wz > 0) & (wz < height)
    margin = (np.abs(np.abs(wy) - width / 2) > 0.05) & (np.abs(wz) > 0.05) & (np.abs(wz - height) > 0.05)
    np.testing.assert_array_equal(front[margin], inside[margin])


def test_axis_aligned_box_front_face_and_silhouette():
    cam = CameraPose((0.0, 0.0, 1.0))
    box = Box((5.0, 0.3, 1.2), (2.0, 1.6, 1.0))     # front face at x = 4
    scene = _scene(boxes=[box], camera=cam)
    f = render(scene, intrinsics=INTR)
    uu, vv = np.meshgrid(np.arange(INTR.width), np.arange(INTR.height))
    wy = -(uu - INTR.cx) / INTR.fx * 4.0           # world y, z where the ray meets x = 4
    wz = 1.0 - (vv - INTR.cy) / INTR.fy * 4.0
    inside = (np.abs(wy - 0.3) < 0.8) & (np.abs(wz - 1.2) < 0.5)
    margin = (np.abs(np.abs(wy - 0.3) - 0.8) > 0.03) & (np.abs(np.abs(wz - 1.2) - 0.5) > 0.03)
    assert inside.sum() > 50
    np.testing.assert_array_equal(f.valid[margin], inside[margin])
    np.testing.assert_allclose(f.depth[inside], 4.0, rtol=2e-6)
    assert np.all(f.face_id[inside] == scene.face_labels().index("box-x"))


def test_rotated_box_nearest_edge_depth():
    # a 2x2 box yawed 45 deg centred 6 m ahead: its nearest vertical edge is at x = 6 - sqrt(2)
    intr = S.PinholeIntrinsics(width=61, height=41, fx=50.0, fy=50.0, cx=30.0, cy=20.0)
    scene = _scene(boxes=[Box((6.0, 0.0, 1.0), (2.0, 2.0, 2.0), yaw=math.pi / 4)], camera=CameraPose((0, 0, 1.0)))
    f = render(scene, intrinsics=intr)
    assert f.depth[20, 30] == pytest.approx(6.0 - math.sqrt(2.0), rel=1e-5)
    # along the centre row the two near faces satisfy x - |y| = 6 - sqrt(2); with x = Z, y = -X Z:
    # Z = (6 - sqrt(2)) / (1 - |X|), X = (u - cx) / fx
    cols = np.arange(22, 39)
    xo = (cols - 30.0) / 50.0
    np.testing.assert_allclose(f.depth[20, cols], (6.0 - math.sqrt(2.0)) / (1.0 - np.abs(xo)), rtol=1e-5)


@pytest.mark.parametrize("kind,seed", [("indoor", 0), ("indoor", 5), ("outdoor", 0), ("outdoor", 3)])
def test_backprojected_points_lie_on_scene_planes(kind, seed):
    scene = random_scene(kind, seed)
    intr = make_intrinsics(120, 90, fx=100.0, fy=96.0, cx=58.0, cy=47.0)
    f = render(scene, intrinsics=intr)
    pts = _backproject(f)
    res = _plane_residuals(scene, f, pts)
    assert f.valid.sum() > 1000
    assert res.max() < 1e-4, f"max plane residual {res.max():.2e} m"
    # ... and within the box faces' extents (the face id names the right face, not just its plane)
    prim = scene.face_primitives()[f.face_id[f.valid]]
    npl = len(scene.planes)
    for j, box in enumerate(scene.boxes):
        sel = prim == npl + j
        if sel.any():
            local = (pts[f.valid][sel] - np.asarray(box.center)) @ box.rotation()
            assert np.all(np.abs(local) <= np.asarray(box.size) / 2 + 1e-3), box.label
    # the check has teeth: the same depth read with a 1% wrong focal length is off the planes
    wrong = S.SyntheticFrame(f.rgb, f.depth, f.invalid, S.PinholeIntrinsics(120, 90, 101.0, 96.0, 58.0, 47.0),
                             f.pose, f.face_id, f.far)
    assert np.percentile(_plane_residuals(scene, f, _backproject(wrong)), 90) > 1e-3


@pytest.mark.parametrize("kind", ["indoor", "outdoor"])
def test_render_agrees_with_generic_ray_caster_and_culling_is_exact(kind):
    scene = random_scene(kind, 11)
    intr = make_intrinsics(80, 60, hfov_deg=70.0)
    f = render(scene, intrinsics=intr)
    g = render(scene, intrinsics=intr, cull=False)
    np.testing.assert_array_equal(f.face_id, g.face_id)
    np.testing.assert_array_equal(f.depth, g.depth)
    # independent implementation: arbitrary rays, vectorised over all primitives, float64
    v, u = np.mgrid[0:60, 0:80].astype(float)
    dc = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], -1).reshape(-1, 3)
    r = scene.camera.rotation()
    t, face = cast_rays(scene, np.asarray(scene.camera.position), dc @ r.T)
    t, face = t.reshape(60, 80), face.reshape(60, 80)
    agree = face == f.face_id
    assert agree.mean() > 0.995
    ok = agree & np.isfinite(t) & (t <= scene.far)
    np.testing.assert_allclose(f.depth[ok], t[ok], rtol=1e-5)
    np.testing.assert_array_equal(f.valid[agree], ok[agree])


# ---- conventions, frames ----------------------------------------------------------------------
def test_camera_pose_conventions():
    level = CameraPose((0, 0, 1))
    np.testing.assert_allclose(level.rotation(), [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    down = CameraPose((0, 0, 1), pitch=0.3)
    assert down.forward()[2] == pytest.approx(-math.sin(0.3))          # positive pitch looks down
    left = CameraPose((0, 0, 1), yaw=0.5)
    assert left.forward()[1] == pytest.approx(math.sin(0.5))           # positive yaw turns left
    r = CameraPose((1, 2, 3), 0.3, -0.2, 0.1).matrix()
    np.testing.assert_allclose(r[:3, :3] @ r[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r[:3, :3]) == pytest.approx(1.0)
    np.testing.assert_allclose(r[:3, 3], [1, 2, 3])


def test_default_intrinsics_from_hfov():
    i = make_intrinsics(304, 228, hfov_deg=62.0)
    assert i.fx == pytest.approx(152.0 / math.tan(math.radians(31.0)))
    assert i.fy == i.fx and i.cx == pytest.approx(151.5) and i.cy == pytest.approx(113.5)
    assert i.hfov_deg == pytest.approx(62.0)
    f = render_frame("outdoor", seed=2, width=100, height=40)
    assert f.fx == pytest.approx(50.0 / math.tan(math.radians(S.DEFAULT_HFOV_DEG["outdoor"] / 2)))
    np.testing.assert_allclose(f.K, [[f.fx, 0, f.cx], [0, f.fy, f.cy], [0, 0, 1]])
    with pytest.raises(ValueError):
        make_intrinsics(10, 10, fx=-1.0)


@pytest.mark.parametrize("kind", ["indoor", "outdoor"])
def test_frame_contents_and_depth_ranges(kind):
    depths = []
    for seed in range(4):
        f = render_frame(kind, seed=seed, width=96, height=72)
        assert f.rgb.dtype == np.uint8 and f.rgb.shape == (72, 96, 3)
        assert f.depth.dtype == np.float32 and f.depth.shape == (72, 96)
        assert f.rgb.std() > 8 and len(np.unique(f.rgb.reshape(-1, 3), axis=0)) > 200
        assert np.array_equal(np.isnan(f.depth), f.invalid)              # invalid <=> NaN, nothing else
        d = f.depth[f.valid]
        assert np.all(np.isfinite(d)) and d.min() > 0.2 and d.max() <= f.far
        depths.append(d)
    alld = np.concatenate(depths)
    if kind == "indoor":
        assert 0.3 < alld.min() < 2.0 and alld.max() > 5.0 and alld.max() <= 10.0
    else:
        assert alld.min() < 6.0 and alld.max() > 60.0 and alld.max() <= 80.0


def test_outdoor_sky_is_invalid():
    for seed in range(3):
        f = render_frame("outdoor", seed=seed, width=96, height=72)
        assert f.invalid.any() and f.valid.mean() > 0.4
        scene, _ = S._make_scene("outdoor", seed, 0)
        no_hit = f.face_id < 0
        assert no_hit.any() and np.all(f.invalid[no_hit]) and np.all(np.isnan(f.depth[no_hit]))
        # nothing hit is above the horizon, never below it (there's a ground plane)
        assert f.face_id[-1].min() >= 0
        # sky pixels are bluish: blue >= red on average
        sky = f.rgb[no_hit].astype(float)
        assert sky[:, 2].mean() >= sky[:, 0].mean()
        assert scene.far == 80.0


# ---- determinism ----------------------------------------------------------------------------
def test_determinism_by_seed_and_difference_between_seeds():
    a = render_frame("indoor", seed=7, width=64, height=48)
    b = render_frame("indoor", seed=7, width=64, height=48)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert a.pose == b.pose
    c = render_frame("indoor", seed=8, width=64, height=48)
    assert not np.array_equal(a.rgb, c.rgb)
    assert not np.allclose(np.nan_to_num(a.depth), np.nan_to_num(c.depth))
    d = render_frame("outdoor", seed=7, width=64, height=48)
    assert not np.array_equal(a.rgb, d.rgb)


def test_dataset_is_deterministic_by_index_and_seed():
    ds = SyntheticDataset("outdoor", n=5, seed=3, width=64, height=32)
    assert len(ds) == 5
    rgb4, depth4, valid4 = ds[4]
    _ = ds[1]                                          # access order does not matter
    again = SyntheticDataset("outdoor", n=5, seed=3, width=64, height=32)[4]
    np.testing.assert_array_equal(rgb4, again[0])
    np.testing.assert_array_equal(depth4, again[1])
    np.testing.assert_array_equal(valid4, again[2])
    np.testing.assert_array_equal(ds[-1][0], rgb4)
    assert rgb4.dtype == np.uint8 and depth4.dtype == np.float32 and valid4.dtype == bool
    assert np.array_equal(valid4, np.isfinite(depth4))
    assert not np.array_equal(ds[0][0], ds[1][0])
    other = SyntheticDataset("outdoor", n=5, seed=4, width=64, height=32)
    assert not np.array_equal(other[4][0], rgb4)
    fr = ds.frame(4)
    np.testing.assert_array_equal(fr.rgb, rgb4)
    assert fr.index == 4 and fr.seed == 3
    with pytest.raises(IndexError):
        ds[5]
    zeros = SyntheticDataset("outdoor", n=5, seed=3, width=64, height=32, invalid_value=0.0)[4][1]
    assert np.all(zeros[~valid4] == 0) and np.array_equal(zeros[valid4], depth4[valid4])
    with pytest.raises(ValueError):
        SyntheticDataset("underwater", n=1)


def test_module_does_not_import_torch():
    code = ("import sys, mono_depth_ros.synthetic as s; s.SyntheticDataset('indoor', 1, 0, 32, 24)[0]; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---- trajectories ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind,seed", [("indoor", 1), ("outdoor", 1)])
def test_trajectory_is_smooth_and_collision_free(kind, seed):
    scene, _ = S._make_scene(kind, seed, 0)
    fps = 10.0
    poses = camera_trajectory(scene, 25, fps=fps)
    assert poses == camera_trajectory(scene, 25, fps=fps)                   # deterministic
    assert poses[0] == scene.camera
    pos = np.array([p.position for p in poses])
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    vmax = 0.5 if kind == "indoor" else 8.0
    assert steps.max() <= vmax / fps + 0.03
    assert np.linalg.norm(pos[-1] - pos[0]) > 0.1
    yaws = np.array([p.yaw for p in poses])
    assert np.abs(np.diff(yaws)).max() < 0.05 and np.abs(np.diff([p.pitch for p in poses])).max() < 0.02
    # smooth: the change of velocity between frames is small compared with the velocity
    acc = np.linalg.norm(np.diff(pos, n=2, axis=0), axis=1)
    assert acc.max() < 0.3 * max(steps.max(), 1e-9) + 0.02
    for p in poses:
        for b in scene.boxes:
            inside = b.contains(p.position)
            assert inside == b.inside, f"camera at {p.position} vs {b.label}"


def test_trajectory_stops_before_obstacles():
    room = Room((3.0, 0.0, 1.25), (6.0, 4.0, 2.5))
    crate = Box((3.0, 0.0, 0.25), (0.6, 0.6, 0.5))       # low obstacle ahead (below the camera's height)
    scene = Scene("indoor", [], [room, crate], CameraPose((0.5, 0.0, 1.4)), noise_sigma=0.0)
    poses = camera_trajectory(scene, 60, fps=10.0, speed=0.5, yaw_rate=0.0)  # 3 m wanted, 2.2 m free
    x = np.array([p.position[0] for p in poses])
    assert np.all(np.diff(x) >= 0) and x[-1] > 1.5     # it moved forward ...
    assert x[-1] <= 2.7 - 0.5 + 1e-9                   # ... and stopped >= 0.5 m before the crate
    scene.boxes.pop()                                   # without the crate it goes on towards the wall
    x2 = camera_trajectory(scene, 60, fps=10.0, speed=0.5, yaw_rate=0.0)[-1].position[0]
    assert x2 > 3.0 and x2 <= 6.0 - 0.5 + 1e-9


@pytest.mark.parametrize("kind", ["indoor", "outdoor"])
def test_sequence_frames_are_geometrically_consistent(kind):
    frames = render_sequence(kind, seed=2, n_frames=3, width=96, height=72)
    f0 = render_frame(kind, seed=2, width=96, height=72)
    np.testing.assert_array_equal(frames[0].rgb, f0.rgb)
    np.testing.assert_array_equal(frames[0].depth, f0.depth)
    a, b = frames[0], frames[2]
    assert a.pose != b.pose
    # warp frame a's 3D points into frame b: where visible in both, b's depth agrees
    pw = _backproject(a)[a.valid]
    pc = (pw - np.asarray(b.pose.position)) @ b.pose.rotation()
    i = b.intrinsics
    front = pc[:, 2] > 0.1
    u = np.round(i.fx * pc[front, 0] / pc[front, 2] + i.cx).astype(int)
    v = np.round(i.fy * pc[front, 1] / pc[front, 2] + i.cy).astype(int)
    inb = (u >= 0) & (u < i.width) & (v >= 0) & (v < i.height)
    zb = b.depth[v[inb], u[inb]]
    zp = pc[front][inb, 2]
    ok = np.isfinite(zb)
    assert ok.sum() > 0.5 * a.valid.sum()
    rel = np.abs(zb[ok] - zp[ok]) / zp[ok]
    assert np.median(rel) < 0.01 and np.mean(rel < 0.05) > 0.85
    # and the images match there too (same scene, same textures): mean colour difference is small
    ca = a.rgb[a.valid][front][inb][ok].astype(float)
    cb = b.rgb[v[inb][ok], u[inb][ok]].astype(float)
    assert np.median(np.abs(ca - cb)) < 25
    # a wrong pose (the frame-0 pose) would not fit the same points
    pc_wrong = (pw - np.asarray(a.pose.position)) @ a.pose.rotation()
    assert np.allclose(pc_wrong[:, 2], a.depth[a.valid], rtol=1e-5)
    assert not np.allclose(pc[:, 2], a.depth[a.valid], rtol=1e-3)


def test_material_and_box_validation():
    with pytest.raises(ValueError):
        Material(texture="marble")
    with pytest.raises(ValueError):
        render(_scene(boxes=[Box((1, 0, 0), (0, 1, 1))]), intrinsics=INTR)
    with pytest.raises(ValueError):
        random_scene("space", 0)


def test_interoperates_with_camera_intrinsics():
    from mono_depth_ros import camera

    f = render_frame("indoor", seed=0, width=64, height=48)
    ci = f.camera_intrinsics()
    assert isinstance(ci, camera.CameraIntrinsics)
    np.testing.assert_allclose(ci.K(), f.K)
    g = render(random_scene("indoor", 0), intrinsics=ci.scaled_to(32, 24))   # any object with the six fields
    assert g.depth.shape == (24, 32) and g.fx == pytest.approx(ci.fx / 2)
