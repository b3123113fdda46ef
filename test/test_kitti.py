"""KITTI calibration parsing and LiDAR projection against the derived maps in ../shared/data."""
import numpy as np
import pytest

from conftest import shared_path
from mono_depth_ros import kitti

NAMES = ["cvml_000114", "kov_000000", "kov_000002", "mmdet3d_000008"]


@pytest.mark.parametrize("name", NAMES)
def test_object_projection_matches_provided_maps(name):
    calib = kitti.load_object_calibration(shared_path("kitti_object_lidar", "calib", f"{name}.txt"))
    scan = kitti.load_velodyne(shared_path("kitti_object_lidar", "velodyne", f"{name}.bin"))
    gt = kitti.read_depth_png(shared_path("kitti_object_lidar", "proj_depth_velodyne", f"{name}.png"))
    depth = kitti.velodyne_to_depth(scan, calib, gt.shape[1], gt.shape[0])
    assert ((depth > 0) == (gt > 0)).all()
    both = gt > 0
    assert both.sum() > 10000
    assert np.abs(depth[both] - gt[both]).max() <= 1.0 / 256 + 1e-6  # uint16 /256 quantisation


def test_raw_calibration_equals_object_calibration_of_same_frame():
    # raw-layout frame 0 is cvml_000114, recorded with the 2011_09_26 calibration
    root = shared_path("kitti_raw_layout_repackaged", "2011_09_26")
    raw = kitti.load_raw_calibration(root, camera=2)
    obj = kitti.load_object_calibration(shared_path("kitti_object_lidar", "calib", "cvml_000114.txt"))
    np.testing.assert_allclose(raw.P_rect, obj.P_rect, rtol=1e-6)
    np.testing.assert_allclose(raw.velo_to_rect, obj.velo_to_rect, atol=1e-6)
    assert raw.image_size == (1242, 375)
    scan = kitti.load_velodyne(root / "2011_09_26_drive_9999_sync" / "velodyne_points" / "data" / "0000000000.bin")
    gt = kitti.read_depth_png(shared_path("kitti_object_lidar", "proj_depth_velodyne", "cvml_000114.png"))
    depth = kitti.velodyne_to_depth(scan, raw, 1242, 375)
    both = (gt > 0) & (depth > 0)
    assert both.sum() > 0.99 * (gt > 0).sum()
    assert np.abs(depth[both] - gt[both]).max() < 0.01


def test_known_point_projects_to_calibrated_pixel():
    calib = kitti.load_object_calibration(shared_path("kitti_object_lidar", "calib", "cvml_000114.txt"))
    # A point 20 m straight ahead on camera 2's optical axis -> its principal point (cx, cy).
    P = calib.P_rect
    X_cam2 = np.array([0.0, 0.0, 20.0, 1.0])
    velo = np.linalg.inv(calib.velo_to_camera_optical) @ X_cam2
    d = kitti.velodyne_to_depth(velo[None, :], calib, 1242, 375)
    v, u = np.nonzero(d)
    assert (u[0], v[0]) == (int(round(P[0, 2])), int(round(P[1, 2])))
    assert d[v[0], u[0]] == pytest.approx(20.0, abs=1e-4)  # depth along camera 2's own optical axis


def test_nearest_point_wins_and_errors(tmp_path):
    K = np.array([[100.0, 0, 5], [0, 100.0, 5], [0, 0, 1]])
    pts = np.array([[0, 0, 5.0], [0, 0, 2.0], [0, 0, 9.0], [0, 0, -3.0], [10, 0, 1.0]])
    d = kitti.project_points_to_depth(pts, K, 10, 10)
    assert d[5, 5] == 2.0 and np.count_nonzero(d) == 1
    with pytest.raises(kitti.CalibrationError, match="does not exist"):
        kitti.load_raw_calibration(tmp_path)
    bad = tmp_path / "calib.txt"
    bad.write_text("P2: 1 2 3\n")
    with pytest.raises(kitti.CalibrationError, match="P2.*3 values"):
        kitti.load_object_calibration(bad)
    trunc = tmp_path / "scan.bin"
    np.arange(7, dtype=np.float32).tofile(trunc)
    with pytest.raises(ValueError, match="truncated"):
        kitti.load_velodyne(trunc)
