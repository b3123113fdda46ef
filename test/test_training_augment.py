"""training.augment: the paper's joint augmentation and the evaluation transform, property by property."""
import cv2
import numpy as np
import pytest

from mono_depth_ros.preprocess import Preprocessor, compute_transform
from mono_depth_ros.profiles import Profile
from training.augment import AugmentConfig, AugmentParams, JointTransform, PRESETS, sample_params

# source 170x128 = the profile's resize size, so the geometry is exact (no resampling before the warp)
P = Profile(name="tiny", input_w=160, input_h=120, resize_w=170, resize_h=128, fc_hidden=64,
            coarse_channels=(8, 16, 16, 16, 16), fine_channels=8, dropout=0.0)
ON = AugmentConfig(scale=(1.0, 1.0), rotation=0.0, color=(1.0, 1.0), flip=0.0, crop="center")


def _scene(w=170, h=128):
    """A bright, near bar on a dark, far textured background (edges in RGB and depth coincide)."""
    rng = np.random.default_rng(0)
    rgb = (rng.integers(0, 40, (h, w, 3))).astype(np.uint8)
    depth = np.full((h, w), 8.0, np.float32)
    bar = np.zeros((h, w), np.uint8)
    cv2.rectangle(bar, (20, 50), (150, 66), 1, -1)
    cv2.rectangle(bar, (30, 10), (44, 118), 1, -1)
    rgb[bar > 0] = (230, 200, 180)
    depth[bar > 0] = 2.0
    return rgb, depth, np.ones((h, w), bool), bar


def _params(**kw):
    base = dict(scale=1.0, angle=0.0, crop_x=5.0, crop_y=4.0, flip=False, color=np.ones(3, np.float32))
    base.update(kw)
    return AugmentParams(**base)


def test_depth_is_divided_by_the_scale():
    rgb, depth, valid, _ = _scene()
    jt = JointTransform(P, AugmentConfig(scale=(1.3, 1.3), rotation=0.0, flip=0.0))
    s = jt(rgb, np.full_like(depth, 4.0), valid, np.random.default_rng(1))
    assert s.params.scale == pytest.approx(1.3)
    assert s.valid.all()
    np.testing.assert_allclose(s.depth, 4.0 / 1.3, rtol=1e-6)
    # and the image is magnified: the bar is thicker in the scaled input than in the unscaled one
    s1 = jt(rgb, depth, valid, params=_params(scale=1.0))
    s2 = jt(rgb, depth, valid, params=_params(scale=1.4, crop_x=30, crop_y=25))
    near1, near2 = (s1.depth < 3).sum(), (s2.depth < 3 / 1.4 + 0.01).sum()
    assert near2 > 1.3 * near1


def test_flip_flips_rgb_and_depth_together():
    rgb, depth, valid, _ = _scene()
    jt = JointTransform(P, ON, keep_rgb=True)
    a = jt(rgb, depth, valid, params=_params(flip=False))
    b = jt(rgb, depth, valid, params=_params(flip=True))
    np.testing.assert_array_equal(b.rgb, a.rgb[:, ::-1])
    np.testing.assert_allclose(b.image, a.image[:, :, ::-1], atol=1e-6)
    assert np.mean(b.depth == a.depth[:, ::-1]) > 0.97  # nearest-neighbour ties at the edges aside
    assert np.mean(b.depth == a.depth) < 0.9             # the scene is not symmetric: a flip is visible


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("angle", [5.0, -5.0, 20.0])
def test_rotation_keeps_rgb_and_depth_aligned(angle):
    rgb, depth, valid, _ = _scene()
    jt = JointTransform(P, ON, keep_rgb=True)
    s = jt(rgb, depth, valid, params=_params(angle=angle))
    s0 = jt(rgb, depth, valid, params=_params(angle=0.0))
    # bright pixels of the input, brought to the output map by area averaging
    bright = (s.rgb.astype(np.float32).mean(axis=2) > 120).astype(np.float32)
    x0, y0, x1, y1 = P.output_region()
    bright_out = cv2.resize(bright[int(y0):int(y1), int(x0):int(x1)], (P.output_w, P.output_h),
                            interpolation=cv2.INTER_AREA) > 0.5
    near = s.valid & (s.depth < 5)
    assert _iou(bright_out, near) > 0.85
    # the same comparison against the unrotated depth is clearly worse: the test sees misalignment
    assert _iou(bright_out, s0.valid & (s0.depth < 5)) < _iou(bright_out, near) - 0.05
    # edges: depth discontinuities sit on RGB edges
    e_rgb = cv2.Canny((bright_out * 255).astype(np.uint8), 50, 150) > 0
    e_d = cv2.Canny((near * 255).astype(np.uint8), 50, 150) > 0
    dil = cv2.dilate(e_rgb.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert e_d.sum() > 20 and (e_d & dil).sum() / e_d.sum() > 0.9


def test_colour_scaling_changes_rgb_only():
    rgb, depth, valid, _ = _scene()
    jt = JointTransform(P, ON)
    a = jt(rgb, depth, valid, params=_params())
    c = np.array([0.8, 1.0, 1.2], np.float32)
    b = jt(rgb, depth, valid, params=_params(color=c))
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.valid, b.valid)
    std = np.asarray(P.std, np.float32).reshape(3, 1, 1)
    mean = np.asarray(P.mean, np.float32).reshape(3, 1, 1)
    raw_a = (a.image * std + mean) * 255
    raw_b = (b.image * std + mean) * 255
    dark = raw_a * 1.2 < 250  # unsaturated pixels
    np.testing.assert_allclose(raw_b[0][dark[0]], raw_a[0][dark[0]] * 0.8, atol=1e-2)
    np.testing.assert_allclose(raw_b[2][dark[2]], raw_a[2][dark[2]] * 1.2, atol=1e-2)
    np.testing.assert_allclose(raw_b[1], raw_a[1], atol=1e-3)
    assert raw_b.max() <= 255.0 + 1e-3


def test_evaluation_mode_is_the_pipeline_transform_plus_centre_crop():
    rng = np.random.default_rng(5)
    prof = Profile(name="nyuish", input_w=160, input_h=120, resize_w=168, resize_h=126, fc_hidden=64,
                   coarse_channels=(8, 16, 16, 16, 16), fine_channels=8, dropout=0.0)
    rgb = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    v, u = np.mgrid[0:240, 0:320]
    depth = (1.0 + u * 0.01 + v * 0.001).astype(np.float32)   # unique per pixel: reveals the geometry
    jt = JointTransform(prof, PRESETS["none"])
    s = jt(rgb, depth, np.ones_like(depth, bool))
    x, t = Preprocessor(prof)(rgb)
    np.testing.assert_array_equal(s.image, x[0])                 # identical to the pipeline's input
    # GT output pixel (i, j) = source depth at the camera pixel under its centre (nearest)
    x0, y0, x1, y1 = prof.output_region()
    j, i = np.mgrid[0:prof.output_h, 0:prof.output_w]
    xi = x0 + (i + 0.5) * (x1 - x0) / prof.output_w - 0.5
    yi = y0 + (j + 0.5) * (y1 - y0) / prof.output_h - 0.5
    uc, vc = t.input_to_camera(xi, yi)
    expect = depth[np.clip(np.round(vc).astype(int), 0, 239), np.clip(np.round(uc).astype(int), 0, 319)]
    assert np.mean(np.isclose(s.depth, expect)) > 0.98
    # centre crop: the output's centre pixel sees the camera's centre
    assert np.mean(s.depth) == pytest.approx(np.mean(depth), rel=0.02)
    # training mode with all ranges degenerate and a centred crop equals evaluation mode
    t2 = compute_transform(320, 240, prof)
    s2 = JointTransform(prof, ON)(rgb, depth, np.ones_like(depth, bool),
                                  params=_params(crop_x=float(t2.crop_x0), crop_y=float(t2.crop_y0)))
    np.testing.assert_array_equal(s2.depth, s.depth)


def test_sampling_uses_the_configured_ranges_and_is_reproducible():
    t = compute_transform(640, 480, Profile(name="n", input_w=304, input_h=228, resize_w=320, resize_h=240))
    ps = [sample_params(PRESETS["nyu"], np.random.default_rng(i), t) for i in range(300)]
    sc = np.array([p.scale for p in ps])
    assert sc.min() >= 1.0 and sc.max() <= 1.5 and sc.max() > 1.4
    ang = np.array([p.angle for p in ps])
    assert np.abs(ang).max() <= 5.0 and ang.min() < -4 and ang.max() > 4
    col = np.stack([p.color for p in ps])
    assert col.min() >= 0.8 and col.max() <= 1.2
    assert 0.4 < np.mean([p.flip for p in ps]) < 0.6
    assert all(0 <= p.crop_x <= p.scale * 320 - 304 + 1e-9 for p in ps)
    k = [sample_params(PRESETS["kitti"], np.random.default_rng(i), t) for i in range(100)]
    assert max(p.scale for p in k) <= 1.2 and all(p.angle == 0 for p in k)
    a = sample_params(PRESETS["nyu"], np.random.default_rng([0, 1, 2]), t)
    b = sample_params(PRESETS["nyu"], np.random.default_rng([0, 1, 2]), t)
    assert a.scale == b.scale and a.crop_x == b.crop_x and np.array_equal(a.color, b.color)
    with pytest.raises(ValueError, match="unknown augmentation option"):
        AugmentConfig.from_dict({"zoom": 2})
