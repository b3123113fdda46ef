"""training.datasets: NYU .mat (v7.3/HDF5) and sync layouts built here, KITTI raw + official GT, split files."""
import shutil

import cv2
import h5py
import numpy as np
import pytest

from conftest import shared_path
from mono_depth_ros import kitti
from mono_depth_ros.profiles import Profile
from training.datasets import (DatasetError, DepthDataset, KittiObject, KittiRaw, NyuLabeledMat, NyuSync,
                               StreamBatchSampler, build_source, nyu_split_indices, parse_kitti_list)

TINY = Profile(name="tiny", input_w=160, input_h=120, resize_w=168, resize_h=126, fc_hidden=64,
               coarse_channels=(8, 16, 16, 16, 16), fine_channels=8, dropout=0.0)


def _nyu_frames(n=5, h=48, w=64):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    depth = np.stack([1.0 + 0.05 * xx + 0.01 * yy + k for k in range(n)]).astype(np.float32)  # not symmetric
    return rgb, depth


def _write_mat(path, rgb, depth):
    # MATLAB v7.3 writes column-major arrays: h5py sees images as (N, 3, W, H), depths as (N, W, H)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=rgb.transpose(0, 3, 2, 1))
        f.create_dataset("depths", data=depth.transpose(0, 2, 1).astype(np.float32))
        f.create_dataset("rawDepths", data=depth.transpose(0, 2, 1).astype(np.float32))


def test_nyu_labeled_mat_reader_transposes_and_splits(tmp_path):
    rgb, depth = _nyu_frames()
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    _write_mat(mat, rgb, depth)
    split = tmp_path / "test.txt"
    split.write_text("bathroom/rgb_00003.jpg bathroom/sync_depth_00003.png 518.8579\n"
                     "kitchen/rgb_00001.jpg kitchen/sync_depth_00001.png 518.8579\n")
    test = NyuLabeledMat(mat, split="test", split_file=split)
    assert test.indices == [1, 3] and len(test) == 2
    fr = test.frame(1)
    assert fr.rgb.shape == (48, 64, 3) and fr.depth.shape == (48, 64)
    np.testing.assert_array_equal(fr.rgb, rgb[3])
    np.testing.assert_array_equal(fr.depth, depth[3])
    assert fr.valid.all()
    train = NyuLabeledMat(mat, split="train", split_file=split)
    assert train.indices == [0, 2, 4]
    np.testing.assert_array_equal(train.frame(2).rgb, rgb[4])
    # paper's training mask: each image's min and max depth dropped
    fr = train.frame(0, mask_min_max=True)
    assert not fr.valid[0, 0] and not fr.valid[-1, -1] and fr.valid[10, 10]
    with pytest.raises(DatasetError, match="split_file"):
        NyuLabeledMat(mat, split="test")
    with pytest.raises(DatasetError, match="nyu_depth_v2_labeled.mat.*does not exist"):
        NyuLabeledMat(tmp_path / "missing.mat")
    bad = tmp_path / "bad.mat"
    with h5py.File(bad, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 3, 8, 6), np.uint8))
    with pytest.raises(DatasetError, match="no dataset 'depths'"):
        NyuLabeledMat(bad, split="all")


def test_nyu_official_split_file_has_654_indices():
    idx = nyu_split_indices(shared_path("splits", "nyu", "nyudepthv2_test_files_with_gt_bts.txt"))
    assert len(idx) == 654 and len(set(idx)) == 654 and min(idx) >= 0 and max(idx) <= 1448
    assert idx[0] == 45  # first line: bathroom/rgb_00045.jpg


def _write_sync(root, rgb, depth_m, scenes=("bedroom_0001", "office_0002")):
    rows = []
    for i in range(len(rgb)):
        scene = root / scenes[i % len(scenes)]
        scene.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(scene / f"rgb_{i:05d}.jpg"), rgb[i][:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
        cv2.imwrite(str(scene / f"sync_depth_{i:05d}.png"), np.round(depth_m[i] * 1000).astype(np.uint16))
        rows.append(f"/{scene.name}/rgb_{i:05d}.jpg /{scene.name}/sync_depth_{i:05d}.png 518.8579")
    return rows


def test_nyu_sync_layout_reader(tmp_path):
    rgb, depth = _nyu_frames(4)
    rgb[:] = 200
    rgb[..., 2] = 30          # a colour that survives JPEG: checks the channel order
    depth[1, :5, :5] = 0      # missing depth
    rows = _write_sync(tmp_path, rgb, depth)
    ds = NyuSync(tmp_path)
    assert len(ds) == 4
    names = ds.names()
    k = names.index("office_0002/rgb_00001.jpg")
    fr = ds.frame(k)
    assert abs(int(fr.rgb[20, 20, 0]) - 200) <= 3 and abs(int(fr.rgb[20, 20, 2]) - 30) <= 3
    assert not fr.valid[:5, :5].any() and fr.valid[10:, 10:].all() is not None
    np.testing.assert_allclose(fr.depth[fr.valid], depth[1][fr.valid], atol=5e-4)
    lst = tmp_path / "train.txt"
    lst.write_text("\n".join(rows[2:]) + "\n")
    sub = NyuSync(tmp_path, list=lst)
    assert len(sub) == 2 and sub.name(0).endswith("rgb_00002.jpg")
    # min/max masking (the paper's training mask) on by default for sync training data
    fr = sub.frame(0)
    assert not fr.valid[0, 0] and not fr.valid[-1, -1]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no frames found.*rgb_NNNNN.jpg with sync_depth_NNNNN.png"):
        NyuSync(empty)
    with pytest.raises(DatasetError, match="rgb_NNNNN.jpg \\+ sync_depth_NNNNN.png.*does not exist"):
        NyuSync(tmp_path / "nope")
    with pytest.raises(DatasetError, match="lists no frames"):
        (tmp_path / "blank.txt").write_text("\n")
        NyuSync(tmp_path, list=tmp_path / "blank.txt")


def _raw_split(tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("2011_09_26/2011_09_26_drive_9999_sync 0000000000 l\n2011_09_26/2011_09_26_drive_9999_sync 1 l\n")
    return split


@pytest.mark.parametrize("frame,name", [(0, "cvml_000114"), (1, "mmdet3d_000008")])
def test_kitti_raw_velodyne_gt_matches_provided_maps(tmp_path, frame, name):
    root = shared_path("kitti_raw_layout_repackaged")
    ds = KittiRaw(root, list=_raw_split(tmp_path), gt="velodyne")
    fr = ds.frame(frame)
    gt = kitti.read_depth_png(shared_path("kitti_object_lidar", "proj_depth_velodyne", f"{name}.png"))
    assert fr.rgb.shape == (375, 1242, 3)
    np.testing.assert_array_equal(fr.valid, gt > 0)
    assert fr.valid.sum() > 15000
    assert np.abs(fr.depth[fr.valid] - gt[fr.valid]).max() <= 0.5 / 256 + 1e-4  # PNG quantisation only
    obj = cv2.imread(str(shared_path("kitti_object_lidar", "image_2", f"{name}.png")))[:, :, ::-1]
    np.testing.assert_array_equal(fr.rgb, obj)


def test_kitti_official_gt_and_bts_list(tmp_path):
    root = shared_path("kitti_raw_layout_repackaged")
    png = shared_path("kitti_object_lidar", "proj_depth_velodyne", "cvml_000114.png")
    gt_dir = tmp_path / "gt" / "val" / "2011_09_26_drive_9999_sync" / "proj_depth" / "groundtruth" / "image_02"
    gt_dir.mkdir(parents=True)
    shutil.copy(png, gt_dir / "0000000000.png")
    bts = tmp_path / "bts.txt"
    bts.write_text("2011_09_26/2011_09_26_drive_9999_sync/image_02/data/0000000000.png "
                   "2011_09_26_drive_9999_sync/proj_depth/groundtruth/image_02/0000000000.png 721.5377\n"
                   "2011_09_26/2011_09_26_drive_9999_sync/image_02/data/0000000001.png None 721.5377\n")
    ds = KittiRaw(root, list=bts, gt="auto", gt_root=tmp_path / "gt")
    assert [it.frame for it in ds.items] == [0, 1] and ds.items[0].camera == 2
    np.testing.assert_array_equal(ds.frame(0).depth, kitti.read_depth_png(png))
    assert ds.frame(1).valid.sum() > 15000   # no official map: falls back to the projected scan
    strict = KittiRaw(root, list=bts, gt="official", gt_root=tmp_path / "gt")
    with pytest.raises(DatasetError, match="official ground truth .* not found"):
        strict.frame(1)
    with pytest.raises(DatasetError, match="KITTI raw root.*does not exist"):
        KittiRaw(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="no frames found"):
        (tmp_path / "raw").mkdir()
        KittiRaw(tmp_path / "raw")


def test_kitti_eigen_split_files_parse():
    items = parse_kitti_list(shared_path("splits", "kitti", "eigen_test_files_monodepth2.txt"))
    assert len(items) == 697 and len({i.drive for i in items}) == 28
    assert items[0].drive == "2011_09_26_drive_0002_sync" and items[0].frame == 69 and items[0].camera == 2
    bench = parse_kitti_list(shared_path("splits", "kitti", "eigen_benchmark_test_files_monodepth2.txt"))
    assert len(bench) == 652
    bts = parse_kitti_list(shared_path("splits", "kitti", "kitti_eigen_test_files_with_gt_bts.txt"))
    assert len(bts) >= 696 and sum(i.gt_path is None for i in bts) > 0
    assert len(parse_kitti_list(shared_path("splits", "kitti", "eigen_test_files_monodepth2.txt"),
                                both_cameras=False)) == 697


def test_sparse_gt_is_masked_mean_of_lidar_points_per_output_pixel():
    src = KittiObject(shared_path("kitti_object_lidar"), ids=["kov_000002"])
    p = Profile(name="k", input_w=224, input_h=64, resize_w=240, resize_h=72, fc_hidden=64,
                coarse_channels=(8, 16, 16, 16, 16), fine_channels=8, dropout=0.0, min_depth=1e-3, max_depth=80)
    s = DepthDataset(src, p)[0]
    fr = src.frame(0, p)
    from mono_depth_ros.geometry import input_to_output_matrix as output_matrix
    from training.augment import full_input_matrix
    from mono_depth_ros.preprocess import compute_transform

    Mx = output_matrix(p) @ full_input_matrix(compute_transform(fr.rgb.shape[1], fr.rgb.shape[0], p))
    v, u = np.nonzero(fr.valid)
    ox = np.floor(Mx[0, 0] * u + Mx[0, 2] + 0.5).astype(int)
    oy = np.floor(Mx[1, 1] * v + Mx[1, 2] + 0.5).astype(int)
    depth, valid = s["depth"][0].numpy(), s["valid"][0].numpy()
    checked = 0
    for j, i in [(8, 20), (10, 30), (12, 5), (13, 50)]:
        sel = (ox == i) & (oy == j)
        assert valid[j, i] == sel.any()
        if sel.any():
            assert depth[j, i] == pytest.approx(fr.depth[v[sel], u[sel]].mean(), rel=1e-5)
            checked += 1
    assert checked >= 3


def test_build_source_errors_name_what_is_expected(tmp_path):
    with pytest.raises(DatasetError, match="dataset type 'nyu' unknown; expected one of nyu_mat, nyu_sync"):
        build_source({"type": "nyu"})
    with pytest.raises(DatasetError, match="KITTI object root .* does not exist"):
        build_source({"type": "kitti_object", "root": str(tmp_path / "x")})


def test_stream_sampler_is_deterministic_and_partitions_the_global_batch():
    s = StreamBatchSampler(10, 4, seed=3)
    batches = [s.batch(b) for b in range(6)]
    frames = [i for b in batches for i, _ in b]
    assert sorted(frames[:10]) == list(range(10)) and sorted(frames[10:20]) == list(range(10))  # epochs
    r0 = StreamBatchSampler(10, 4, seed=3, rank=0, world_size=2)
    r1 = StreamBatchSampler(10, 4, seed=3, rank=1, world_size=2)
    for b in range(6):
        assert r0.batch(b) + r1.batch(b) == batches[b]
    resumed = list(StreamBatchSampler(10, 4, seed=3, start_batch=2, num_batches=3))
    assert resumed == batches[2:5]


def test_synthetic_source():
    src = build_source({"type": "synthetic", "kind": "indoor", "n": 3, "seed": 1, "width": 200, "height": 150})
    a, b = src.frame(1, TINY), src.frame(1, TINY)
    assert a.rgb.shape == (150, 200, 3) and a.rgb.dtype == np.uint8
    np.testing.assert_array_equal(a.depth, b.depth)
    assert a.valid.mean() > 0.5
    s = DepthDataset(src, TINY)[0]
    assert s["image"].shape == (3, 120, 160) and s["depth"].shape == (1, TINY.output_h, TINY.output_w)


def test_kitti_velodyne_cache_round_trip(tmp_path):
    root = shared_path("kitti_raw_layout_repackaged")
    ds = KittiRaw(root, list=_raw_split(tmp_path), velodyne_cache=tmp_path / "cache")
    a = ds.frame(1).depth
    png = tmp_path / "cache" / "2011_09_26_drive_9999_sync" / "proj_depth" / "velodyne_raw" / "image_02" / "0000000001.png"
    assert png.is_file()
    b = KittiRaw(root, list=_raw_split(tmp_path), velodyne_cache=tmp_path / "cache").frame(1).depth
    np.testing.assert_array_equal(a > 0, b > 0)
    assert np.abs(a - b).max() <= 0.5 / 256 + 1e-6
