"""CameraIntrinsics: resize/crop in the pixel-centre convention, constructors, validation."""
import numpy as np
import pytest

from mono_depth_ros.camera import CameraIntrinsics


CAM = CameraIntrinsics(640, 480, 525.0, 520.0, 319.5, 241.25)


def test_scaled_to_follows_the_resized_image():
    """A 3-D point seen at pixel (u, v) is seen at ((u + 0.5) s - 0.5, (v + 0.5) s - 0.5) after a resize by s."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.uniform(-2, 2, 50), rng.uniform(-1, 1, 50), rng.uniform(1, 10, 50)]
    uv = CAM.project(X)
    small = CAM.scaled_to(320, 240)
    assert (small.width, small.height) == (320, 240)
    assert small.fx == pytest.approx(262.5) and small.cx == pytest.approx(159.5)
    np.testing.assert_allclose(small.project(X), (uv + 0.5) * 0.5 - 0.5, atol=1e-9)
    odd = CAM.scaled_to(333, 251)
    s = np.array([333 / 640, 251 / 480])
    np.testing.assert_allclose(odd.project(X), (uv + 0.5) * s - 0.5, atol=1e-9)
    back = small.scaled_to(640, 480)
    np.testing.assert_allclose([back.fx, back.fy, back.cx, back.cy], [CAM.fx, CAM.fy, CAM.cx, CAM.cy])


def test_crop_and_affine():
    c = CAM.crop(16, 12, 608, 456)
    assert (c.width, c.height, c.cx, c.cy, c.fx) == (608, 456, 303.5, 229.25, 525.0)
    X = np.array([[0.3, -0.2, 2.0]])
    np.testing.assert_allclose(c.project(X), CAM.project(X) - [16, 12])
    # affine: pixel (i, j) of the new image looks along (2 i + 3, 4 j + 1) of this camera
    a = CAM.affine(2.0, 3.0, 4.0, 1.0, 100, 50)
    ij = a.project(X)
    np.testing.assert_allclose(CAM.project(X), [[2 * ij[0, 0] + 3, 4 * ij[0, 1] + 1]])
    # equal to scale + crop when the map is one
    sc = CAM.scaled_to(320, 240).crop(8, 6, 304, 228)
    af = CAM.affine(2.0, 2 * 8 + 0.5, 2.0, 2 * 6 + 0.5, 304, 228)
    np.testing.assert_allclose([sc.fx, sc.fy, sc.cx, sc.cy], [af.fx, af.fy, af.cx, af.cy])


def test_K_and_validate():
    np.testing.assert_array_equal(CAM.K(), [[525, 0, 319.5], [0, 520, 241.25], [0, 0, 1]])
    assert CAM.P().shape == (3, 4)
    CAM.validate()
    for bad in (CameraIntrinsics(640, 480, 0.0, 520, 320, 240), CameraIntrinsics(640, 480, -5, 520, 320, 240),
                CameraIntrinsics(640, 480, float("nan"), 520, 320, 240), CameraIntrinsics(0, 480, 5, 5, 1, 1),
                CameraIntrinsics(640, 480, 500, 500, float("inf"), 240)):
        with pytest.raises(ValueError):
            bad.validate()


def test_from_K_and_camera_info_fields():
    K = [500, 0, 320, 0, 505, 240, 0, 0, 1]
    assert CameraIntrinsics.from_K(K, 640, 480) == CameraIntrinsics(640, 480, 500, 505, 320, 240)
    P = [490, 0, 318, 0, 0, 491, 238, 0, 0, 0, 1, 0]
    assert CameraIntrinsics.from_camera_info_fields(K, P, 640, 480).fx == 490  # rectified P wins
    assert CameraIntrinsics.from_camera_info_fields(K, [0.0] * 12, 640, 480).fx == 500
    assert CameraIntrinsics.from_K(np.array(P).reshape(3, 4), 640, 480).cy == 238
    with pytest.raises(ValueError):
        CameraIntrinsics.from_K([1, 2, 3], 640, 480)


def test_from_ros_calibration_yaml(tmp_path):
    y = tmp_path / "cam.yaml"
    y.write_text("""image_width: 1242
image_height: 375
camera_name: kitti_cam2
camera_matrix:
  rows: 3
  cols: 3
  data: [721.5377, 0, 609.5593, 0, 721.5377, 172.854, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}
rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
projection_matrix:
  rows: 3
  cols: 4
  data: [721.5377, 0, 609.5593, 44.85728, 0, 721.5377, 172.854, 0.2163791, 0, 0, 1, 0.002745884]
""")
    c = CameraIntrinsics.from_yaml(y)
    assert (c.width, c.height) == (1242, 375)
    assert c.fx == pytest.approx(721.5377) and c.cy == pytest.approx(172.854)
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_width: 10\n")
    with pytest.raises(ValueError, match="image_height"):
        CameraIntrinsics.from_yaml(bad)
    zero = tmp_path / "zero.yaml"
    zero.write_text("image_width: 10\nimage_height: 10\ncamera_matrix: {data: [0,0,0,0,0,0,0,0,0]}\n")
    with pytest.raises(ValueError, match="focal"):
        CameraIntrinsics.from_yaml(zero)
    with pytest.raises(ValueError):
        CameraIntrinsics.from_yaml(tmp_path / "missing.yaml")
