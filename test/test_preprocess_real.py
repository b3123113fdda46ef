"""The documented preprocessing + a forward pass on real NYU and KITTI frames from ../shared/data."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import shared_path
from mono_depth_ros.model import EigenDepthNet
from mono_depth_ros.preprocess import Preprocessor, compute_transform, preprocess
from mono_depth_ros.profiles import get_profile


def test_paper_geometry_transforms():
    t = compute_transform(640, 480, get_profile("nyu"))
    assert (t.resized_w, t.resized_h, t.crop_x0, t.crop_y0) == (320, 240, 8, 6)
    t = compute_transform(1242, 375, get_profile("kitti"))
    assert t.resized_h == 188 and abs(t.resized_w - 621) <= 2 and t.input_w == 576
    # camera <-> input mapping is an exact inverse
    u, v = np.array([0.0, 100.5, 1241.0]), np.array([0.0, 50.0, 374.0])
    x, y = t.camera_to_input(u, v)
    uu, vv = t.input_to_camera(x, y)
    np.testing.assert_allclose(uu, u, atol=1e-9)
    np.testing.assert_allclose(vv, v, atol=1e-9)


def test_normalisation_matches_profile():
    p = get_profile("nyu")
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[..., 0] = 255
    x, _ = preprocess(rgb, p)
    assert x.shape == (1, 3, 228, 304) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], (1 - p.mean[0]) / p.std[0], rtol=1e-5)
    np.testing.assert_allclose(x[0, 1], (0 - p.mean[1]) / p.std[1], rtol=1e-5)
    pre = Preprocessor(p)
    a, _ = pre(rgb)
    b, _ = pre(rgb)
    assert a is b  # the buffer is reused across frames
    with pytest.raises(ValueError, match="RGB"):
        pre(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize("profile,parts", [
    ("nyu", ("nyu_depth_v2_samples", "open3d_nyu_raw", "NYU_color.ppm")),
    ("kitti", ("kitti_object_lidar", "image_2", "cvml_000114.png")),
])
def test_forward_pass_on_real_image(profile, parts):
    path = shared_path(*parts)
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    x, t = preprocess(rgb, get_profile(profile))
    torch.manual_seed(0)
    net = EigenDepthNet(profile).eval()
    with torch.no_grad():
        y = net(torch.from_numpy(x))
    p = net.profile
    assert tuple(y.shape) == (1, 1, p.output_h, p.output_w)
    assert torch.isfinite(y).all()
    # a real image is not constant: the normalised input has real contrast
    assert x.std() > 0.3


def test_cli_info_on_real_image():
    path = shared_path("kitti_object_lidar", "image_2", "kov_000000.png")
    r = subprocess.run([sys.executable, "-m", "mono_depth_ros", "info", "--profile", "kitti", "--image", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "142 x 27" in r.stdout and "1224x370" in r.stdout and "forward pass" in r.stdout
    r = subprocess.run([sys.executable, "-m", "mono_depth_ros", "info", "--image", "/nonexistent.png"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot read image" in r.stderr
