"""Bag I/O helpers: static tf composition, PointCloud2 parsing, GT matching, writer finalisation."""
import numpy as np
import pytest

from mono_depth_ros.bag import io as bio
from mono_depth_ros.bag.evaluate import StampMatcher
from mono_depth_ros.bag.tf import (OPTICAL_IN_BODY, StaticTransforms, TransformError, invert, make_transform,
                                   matrix_to_quaternion, quaternion_to_matrix)


def _random_rigid(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return make_transform(quaternion_to_matrix(*q), rng.normal(size=3))


def test_quaternion_round_trip_and_optical_rotation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        R = _random_rigid(rng)[:3, :3]
        np.testing.assert_allclose(quaternion_to_matrix(*matrix_to_quaternion(R)), R, atol=1e-12)
    # REP 103: body -> optical is the well-known (-0.5, 0.5, -0.5, 0.5)
    np.testing.assert_allclose(matrix_to_quaternion(OPTICAL_IN_BODY), (-0.5, 0.5, -0.5, 0.5), atol=1e-12)
    # optical z (forward) is body x; optical x (right) is body -y; optical y (down) is body -z
    np.testing.assert_allclose(OPTICAL_IN_BODY @ [0, 0, 1], [1, 0, 0])
    np.testing.assert_allclose(OPTICAL_IN_BODY @ [1, 0, 0], [0, -1, 0])


def test_static_transforms_compose_across_branches():
    rng = np.random.default_rng(1)
    T_base_imu, T_imu_velo, T_base_cam = (_random_rigid(rng) for _ in range(3))
    tf = StaticTransforms()
    tf.add("base_link", "imu", T_base_imu)
    tf.add("/imu", "velo", T_imu_velo)         # a leading slash is ignored, as tf2 does
    tf.add("base_link", "cam", T_base_cam)
    T = tf.lookup("cam", "velo")
    expected = invert(T_base_cam) @ T_base_imu @ T_imu_velo
    np.testing.assert_allclose(T, expected, atol=1e-12)
    np.testing.assert_allclose(tf.lookup("velo", "cam"), invert(expected), atol=1e-12)
    p = np.array([1.0, 2.0, 3.0, 1.0])
    np.testing.assert_allclose(T @ p, invert(T_base_cam) @ (T_base_imu @ (T_imu_velo @ p)), atol=1e-12)
    assert np.array_equal(tf.lookup("cam", "cam"), np.eye(4))
    tf.add("other", "island", np.eye(4))
    with pytest.raises(TransformError, match="not connected"):
        tf.lookup("cam", "island")
    with pytest.raises(TransformError, match="'nowhere' is not in the static transforms"):
        tf.lookup("cam", "nowhere")
    # republishing a child replaces its transform
    tf.add("base_link", "cam", np.eye(4))
    np.testing.assert_allclose(tf.lookup("cam", "imu"), T_base_imu, atol=1e-12)


def test_pointcloud2_xyz_with_padding_rows_and_endianness():
    f = bio.MessageFactory()
    pts = np.arange(2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3) * 0.5
    pts[0, 1] = np.nan                                     # an invalid point of an organised cloud
    dt = np.dtype({"names": ["x", "y", "z"], "formats": [">f8"] * 3, "offsets": [8, 16, 0], "itemsize": 32})
    arr = np.zeros((2, 4), dtype=dt)                        # row padding: 4 slots, 3 used
    arr["x"][:, :3], arr["y"][:, :3], arr["z"][:, :3] = pts[..., 0], pts[..., 1], pts[..., 2]
    msg = f.pointcloud2(f.header(0, "l"), arr, 3, 2, [("z", 0, 8), ("x", 8, 8), ("y", 16, 8)], 32, False)
    msg.is_bigendian = True
    msg.row_step = 4 * 32
    xyz = bio.pointcloud2_xyz(msg)
    expected = pts.reshape(-1, 3)
    np.testing.assert_array_equal(xyz, expected[np.isfinite(expected).all(1)])
    msg.data = msg.data[:100]
    with pytest.raises(bio.BagError, match="too few"):
        bio.pointcloud2_xyz(msg, "/cloud")
    msg.fields = msg.fields[:2]
    with pytest.raises(bio.BagError, match="/cloud.*no field"):
        bio.pointcloud2_xyz(msg, "/cloud")


def test_depth_image_ground_truth_units():
    f = bio.MessageFactory()
    mm = np.array([[0, 1500], [65535, 20]], dtype=np.uint16)
    d = bio.depth_image_to_metres(f.image(f.header(0, "c"), mm, "16UC1"))
    assert np.isnan(d[0, 0]) and d[0, 1] == pytest.approx(1.5) and d[1, 0] == pytest.approx(65.535)
    m = np.array([[np.nan, 2.5], [-1, 0]], dtype=np.float32)
    d = bio.depth_image_to_metres(f.image(f.header(0, "c"), m, "32FC1"))
    assert np.isnan(d).sum() == 3 and d[0, 1] == 2.5
    with pytest.raises(bio.BagError, match="/gt.*encoding"):
        bio.depth_image_to_metres(f.image(f.header(0, "c"), m.view(np.uint8)[:, :6].copy(), "bayer_rggb8"), "/gt")


def test_gt_matcher_pairs_nearest_within_tolerance():
    m = StampMatcher(max_dt_ns=50)
    out = []
    out += m.add_gt(0, "g0")
    out += m.add_image(3, "i0")           # g0 at dt 3, but a nearer one may still come
    out += m.add_gt(100, "g1")            # now nothing nearer than g0 can come for i0
    out += m.add_image(98, "i1")
    out += m.add_image(145, "i2")         # g1 45 away, g2 (still to come) 55 away
    out += m.add_gt(200, "g2")
    out += m.add_image(199, "i3")
    out += m.add_image(330, "i4")         # the nearest (g2) is 130 away: no ground truth
    out += m.finish()
    assert out == [("i0", "g0"), ("i1", "g1"), ("i2", "g1"), ("i3", "g2"), ("i4", None)]


def test_writer_finalises_atomically(tmp_path):
    out = tmp_path / "bag"
    w = bio.BagWriter(out)
    w.open()
    w.add_topic("/t", bio.TF_MESSAGE)
    w.write("/t", 5, w.factory.tf_message([]))
    assert not out.exists()                                  # only a hidden partial directory so far
    w.close()
    assert (out / "metadata.yaml").exists() and [p.name for p in tmp_path.iterdir()] == ["bag"]
    with bio.BagReader(out) as r:
        assert r.topics["/t"].count == 1
    with pytest.raises(FileExistsError, match="exists"):
        bio.BagWriter(out).open()
    with pytest.raises(bio.BagError, match="directory name"):
        bio.BagWriter(tmp_path / "x.mcap").open()
    with pytest.raises(RuntimeError):
        with bio.BagWriter(out, overwrite=True) as w2:
            w2.add_topic("/u", bio.TF_MESSAGE)
            raise RuntimeError("boom")
    with bio.BagReader(out) as r:                            # the old bag is untouched
        assert list(r.topics) == ["/t"]
    assert [p.name for p in tmp_path.iterdir()] == ["bag"]


def test_topic_detection():
    T = bio.TopicInfo
    topics = {"/a/image_raw": T("/a/image_raw", bio.IMAGE, 3), "/a/camera_info": T("/a/camera_info", bio.CAMERA_INFO, 3),
              "/b/image": T("/b/image", bio.IMAGE, 3), "/depth/image": T("/depth/image", bio.IMAGE, 3),
              "/velodyne_points": T("/velodyne_points", bio.POINTCLOUD2, 3)}
    assert bio.detect_image_topic(topics) == "/a/image_raw"          # the one with a camera_info
    assert bio.detect_camera_info_topic(topics, "/a/image_raw") == "/a/camera_info"
    assert bio.detect_lidar_topic(topics) == "/velodyne_points"
    topics["/b/camera_info"] = T("/b/camera_info", bio.CAMERA_INFO, 3)
    with pytest.raises(bio.BagError, match="several image topics.*--image-topic"):
        bio.detect_image_topic(topics)
    with pytest.raises(bio.BagError, match="/c/image.*camera_info"):
        bio.detect_camera_info_topic(topics, "/c/image")


def _small_bag(path, n=1):
    with bio.BagWriter(path) as w:
        w.add_topic("/t", bio.TF_MESSAGE)
        for i in range(n):
            w.write("/t", 5 + i, w.factory.tf_message([]))
    return path


def test_is_bag_path_only_for_bags(tmp_path):
    bag = _small_bag(tmp_path / "bag")
    assert bio.is_bag_path(bag)
    mcap = next(bag.glob("*.mcap"))
    assert bio.is_bag_path(mcap)                               # a single .mcap file (magic checked)
    (tmp_path / "fake.mcap").write_text("not an mcap")
    assert not bio.is_bag_path(tmp_path / "fake.mcap")
    (tmp_path / "notes.txt").write_text("x")
    assert not bio.is_bag_path(tmp_path / "notes.txt")
    assert not bio.is_bag_path(tmp_path)                       # a folder holding a bag is not a bag
    assert not bio.is_bag_path(tmp_path / "missing")
    (bag / "extra.txt").write_text("x")                        # anything else inside: not a bag
    assert not bio.is_bag_path(bag)
    (bag / "extra.txt").unlink()
    (bag / "sub").mkdir()
    assert not bio.is_bag_path(bag)
    (bag / "sub").rmdir()
    assert bio.is_bag_path(bag)
    meta = (bag / "metadata.yaml").read_text()
    (bag / "metadata.yaml").write_text("just: yaml\n")        # not rosbag2 metadata
    assert not bio.is_bag_path(bag)
    (bag / "metadata.yaml").write_text(meta)
    other = tmp_path / "other"
    other.mkdir()
    (other / "metadata.yaml").write_text(meta)                 # metadata but no storage file
    assert not bio.is_bag_path(other)


def test_writer_overwrite_replaces_only_bags_and_never_the_input(tmp_path):
    bag = _small_bag(tmp_path / "bag", n=2)
    with bio.BagWriter(bag, overwrite=True) as w:             # a bag is replaced
        w.add_topic("/u", bio.TF_MESSAGE)
        w.write("/u", 1, w.factory.tf_message([]))
    with bio.BagReader(bag) as r:
        assert list(r.topics) == ["/u"]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "data.txt").write_text("precious")
    with pytest.raises(bio.BagError, match="is not a rosbag2"):
        bio.BagWriter(plain, overwrite=True).open()
    assert (plain / "data.txt").read_text() == "precious"
    src = _small_bag(tmp_path / "d" / "src")
    for out, msg in ((src, "is the input bag"), (tmp_path / "d", "contains the input bag"),
                     (tmp_path, "contains the input bag"), (src / "x", "is inside the input bag")):
        with pytest.raises(bio.BagError, match=msg):
            bio.BagWriter(out, overwrite=True, protect=[("input bag", src)]).open()
    with bio.BagReader(src) as r:
        assert r.topics["/t"].count == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "d", "plain"]


def test_writer_close_rechecks_the_target(tmp_path):
    """A bag that was replaced by something else while writing is not deleted at close."""
    bag = _small_bag(tmp_path / "bag")
    w = bio.BagWriter(bag, overwrite=True)
    w.open()
    w.add_topic("/u", bio.TF_MESSAGE)
    w.write("/u", 1, w.factory.tf_message([]))
    (bag / "added_meanwhile.txt").write_text("x")
    with pytest.raises(bio.BagError, match="no longer a rosbag2"):
        w.close()
    assert (bag / "added_meanwhile.txt").exists() and (bag / "metadata.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]
