"""mono-depth bag: sample bag -> depth bag (real pipeline, tiny model), evaluation, errors, interruption."""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import shared_path
from mono_depth_ros import kitti
from mono_depth_ros import metrics as M
from mono_depth_ros.bag import io as bio
from mono_depth_ros.bag.evaluate import camera_info_K, lidar_to_depth
from mono_depth_ros.bag.run import BagRunOptions, run_bag
from mono_depth_ros.bag.tf import StaticTransforms
from mono_depth_ros.cli import main

SAMPLE = ("ros2_bags", "kitti_2frames_repackaged.mcap")
IMG = "/kitti/camera_color_left/image_raw"
INFO = "/kitti/camera_color_left/camera_info"
VELO = "/kitti/velodyne_points"


def _read(path, topics=None):
    out = {}
    with bio.BagReader(path) as r:
        for topic, t, m in r.messages(topics or list(r.topics)):
            out.setdefault(topic, []).append((t, m))
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet
    from mono_depth_ros.profiles import Profile

    torch.manual_seed(0)
    model = EigenDepthNet(Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64,
                                  coarse_channels=(8, 16, 16, 16, 16), fine_channels=8))
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(model, path)
    return path


@pytest.fixture(scope="module")
def sample_gt():
    """Independent ground truth of the sample bag's frames: its /tf_static, camera_info, LiDAR."""
    msgs = _read(shared_path(*SAMPLE))
    tf = StaticTransforms()
    for _, m in msgs["/tf_static"]:
        tf.add_message(m)
    gts = []
    for (_, info), (_, cloud) in zip(msgs[INFO], msgs[VELO]):
        T = tf.lookup(info.header.frame_id, cloud.header.frame_id)
        gts.append(lidar_to_depth(bio.pointcloud2_xyz(cloud), T, camera_info_K(info.k, info.p), info.width, info.height))
    return gts


def test_bag_command_real_pipeline_one_depth_per_image(tiny_model, tmp_path, capsys):
    src = shared_path(*SAMPLE)
    out = tmp_path / "depth_bag"
    rc = main(["bag", str(src), "--model", str(tiny_model), "--out", str(out), "--no-progress", "--points-stride", "2"])
    assert rc == 0, capsys.readouterr().err
    assert (out / "metadata.yaml").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    inp = _read(src, [IMG, INFO])
    res = _read(out)
    assert set(res) == {"/tf_static", "/depth/image", "/depth/camera_info", "/depth/points", "/depth/colored"}
    images = inp[IMG]
    for topic in ("/depth/image", "/depth/camera_info", "/depth/points", "/depth/colored"):
        assert len(res[topic]) == len(images) == 2
        # same stamps, same order, same frame as the input images; log time = the input's
        assert [bio.stamp_to_ns(m.header.stamp) for _, m in res[topic]] == \
            [bio.stamp_to_ns(m.header.stamp) for _, m in images]
        assert [t for t, _ in res[topic]] == [t for t, _ in images]
        assert all(m.header.frame_id == "camera_color_left" for _, m in res[topic])
    for (_, d), (_, info), (_, pts), (_, col), (_, im) in zip(res["/depth/image"], res["/depth/camera_info"],
                                                             res["/depth/points"], res["/depth/colored"], images):
        assert d.encoding == "32FC1" and (d.width, d.height) == (im.width, im.height)
        depth = bio.image_to_array(d)
        assert np.isfinite(depth).sum() > 1000 and (depth[np.isfinite(depth)] > 0).all()
        assert (info.width, info.height) == (d.width, d.height)
        assert np.asarray(info.k).reshape(3, 3)[0, 0] == pytest.approx(721.5377)
        assert (pts.width, pts.height) == ((d.width + 1) // 2, (d.height + 1) // 2)  # organised, stride 2
        assert [f.name for f in pts.fields][:3] == ["x", "y", "z"]
        assert col.encoding == "rgb8" and (col.width, col.height) == (d.width, d.height)
    # the depth bag itself is a valid input for another run (a rosbag2 directory)
    rc = main(["bag", str(out), "--model", str(tiny_model), "--out", str(tmp_path / "again"), "--no-progress",
               "--image-topic", "/depth/colored", "--camera-info-topic", "/depth/camera_info", "--no-points"])
    assert rc == 0
    assert len(_read(tmp_path / "again", ["/depth/image"])["/depth/image"]) == 2


class _Replay:
    """A stand-in for the pipeline (tests only): returns given depth maps in order."""

    def __init__(self, maps):
        self.maps = list(maps)
        self.calls = 0

    def __call__(self, rgb, intrinsics):
        d = np.asarray(self.maps[self.calls], dtype=np.float32)
        self.calls += 1
        return SimpleNamespace(depth=d, intrinsics=intrinsics, rgb=rgb, metric=True)


def test_eval_gt_as_prediction_is_perfect(tmp_path, sample_gt):
    preds = [np.where(g > 0, g, np.nan) for g in sample_gt]
    res = run_bag(BagRunOptions(shared_path(*SAMPLE), tmp_path / "o", evaluate=True, progress=False,
                                eval_dir=tmp_path / "ev"), infer=_Replay(preds), log=lambda s: None)
    for proto in ("paper", "garg80"):
        t = res.totals["totals"][proto]
        assert t["images"] == 2
        for k in ("delta1", "delta2", "delta3"):
            assert t[k] == 1.0
        for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "si_log"):
            assert t[k] == pytest.approx(0.0, abs=1e-6)
    assert res.totals["totals"]["paper"]["pixels"] == sum(int((g > 0).sum()) for g in sample_gt)
    doc = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert len(doc["frames"]) == 2 and doc["frames"][0]["paper_abs_rel"] == pytest.approx(0, abs=1e-6)
    csv = (tmp_path / "ev" / "eval_frames.csv").read_text().splitlines()
    assert len(csv) == 3 and csv[0].startswith("frame,name,stamp_ns,time_s,paper_n")
    assert "| model |" in (tmp_path / "ev" / "eval.md").read_text()
    assert (tmp_path / "ev" / "eval_per_frame.png").stat().st_size > 1000
    assert (tmp_path / "ev" / "eval_worst_frame.png").stat().st_size > 1000


def _independent_constant_metrics(c, g):
    """The eight metrics of the constant prediction c against ground-truth values g (numpy only)."""
    g = g.astype(np.float64)
    p = np.full_like(g, c)
    r = np.maximum(p / g, g / p)
    d = np.log(p) - np.log(g)
    return {"delta1": np.mean(r < 1.25), "delta2": np.mean(r < 1.25 ** 2), "delta3": np.mean(r < 1.25 ** 3),
            "abs_rel": np.mean(np.abs(p - g) / g), "sq_rel": np.mean((p - g) ** 2 / g),
            "rmse": np.sqrt(np.mean((p - g) ** 2)), "rmse_log": np.sqrt(np.mean(d ** 2)),
            "si_log": np.sqrt(max(np.mean(d ** 2) - np.mean(d) ** 2, 0.0))}


def test_eval_constant_prediction_matches_mean_depth_baseline(tmp_path, sample_gt):
    # the paper's mean-depth baseline under the Garg / 80 m protocol, computed independently
    h, w = sample_gt[0].shape
    crop = np.zeros((h, w), bool)
    crop[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    vals = [g[crop & (g > 1e-3) & (g <= 80)] for g in sample_gt]
    c = float(np.concatenate(vals).astype(np.float64).mean())
    assert c == pytest.approx(M.mean_depth_baseline(sample_gt, [crop, crop], max_depth=80.0))
    expected = {k: np.mean([_independent_constant_metrics(c, v)[k] for v in vals]) for k in M.METRIC_NAMES}
    res = run_bag(BagRunOptions(shared_path(*SAMPLE), tmp_path / "o", evaluate=True, progress=False,
                                protocols=["garg80"], plots=False),
                  infer=_Replay([np.full((h, w), c, np.float32)] * 2), log=lambda s: None)
    got = res.totals["totals"]["garg80"]
    base = res.totals["mean_depth_baseline"]["garg80"]
    assert base["constant"] == pytest.approx(c, rel=1e-9)
    for k in M.METRIC_NAMES:
        assert got[k] == pytest.approx(expected[k], rel=1e-6, abs=1e-9), k
        assert base[k] == pytest.approx(expected[k], rel=1e-6, abs=1e-9), k
    assert "mean-depth baseline" in res.markdown


def test_eval_against_calibration_file_equals_tf(tmp_path, sample_gt):
    """--calib (KITTI raw calibration) instead of the bag's tf: same GT pixels up to kitti2mcap's
    2-3 mm camera offset (see test_bag_kitti2bag)."""
    preds = [np.where(g > 0, g, np.nan) for g in sample_gt]
    res = run_bag(BagRunOptions(shared_path(*SAMPLE), tmp_path / "o", evaluate=True, progress=False, plots=False,
                                calib=shared_path("kitti_raw_layout_repackaged", "2011_09_26")),
                  infer=_Replay(preds), log=lambda s: None)
    t = res.totals["totals"]["paper"]
    assert t["delta1"] > 0.8 and t["abs_rel"] < 0.1   # mostly the same pixels, not all
    assert t["delta1"] < 1.0                           # but not the tf's projection exactly


def test_interrupted_run_leaves_no_bag_or_a_readable_one(tmp_path, sample_gt):
    class Interrupt(_Replay):
        def __call__(self, rgb, intrinsics):
            if self.calls == 1:
                raise KeyboardInterrupt
            return super().__call__(rgb, intrinsics)

    maps = [np.full(sample_gt[0].shape, 5.0, np.float32)] * 2
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        run_bag(BagRunOptions(shared_path(*SAMPLE), out, progress=False), infer=Interrupt(maps), log=lambda s: None)
    assert list(tmp_path.iterdir()) == []          # nothing, not even a partial directory
    with pytest.raises(KeyboardInterrupt):
        run_bag(BagRunOptions(shared_path(*SAMPLE), out, progress=False, keep_partial=True), infer=Interrupt(maps),
                log=lambda s: None)
    got = _read(out)
    assert len(got["/depth/image"]) == 1 and len(got["/tf_static"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["o"]


def _make_bag(path, src, topics):
    """A bag holding only ``topics`` of ``src`` (raw copies)."""
    with bio.BagReader(src) as r, bio.BagWriter(path) as w:
        info = r.topics
        for t in topics:
            w.add_topic(t, info[t].msgtype, typestore=r.typestore)
        for conn, t, raw in r.raw_messages(topics):
            w.write_raw(conn.topic, t, raw)
    return path


def test_errors_name_the_bag_or_topic(tmp_path, capsys):
    src = shared_path(*SAMPLE)
    out = str(tmp_path / "o")

    def err(*args):
        rc = main(["bag", *map(str, args), "--out", out, "--no-progress", "--model", "unused.pt"])
        assert rc != 0
        assert not (tmp_path / "o").exists()
        return capsys.readouterr().err

    # corrupt / truncated
    data = src.read_bytes()
    (tmp_path / "trunc.mcap").write_bytes(data[: len(data) // 2])
    e = err(tmp_path / "trunc.mcap")
    assert "trunc.mcap" in e and "corrupt or truncated" in e
    (tmp_path / "garbage.mcap").write_bytes(b"not a bag at all")
    assert "garbage.mcap" in err(tmp_path / "garbage.mcap")
    assert "does not exist" in err(tmp_path / "missing.mcap")
    (tmp_path / "nometa").mkdir()
    assert "no metadata.yaml" in err(tmp_path / "nometa")
    # missing topics
    assert "'/nope' is not in bag" in err(src, "--image-topic", "/nope")
    assert "/kitti/velodyne_points" in err(src, "--image-topic", VELO)  # wrong type, named
    only_images = _make_bag(tmp_path / "imgs", src, [IMG, "/tf_static"])
    e = err(only_images)
    assert IMG in e and "no camera_info" in e
    e = err(only_images, "--camera-info-topic", "/cam/camera_info")
    assert IMG in e and "/cam/camera_info" in e
    no_lidar = _make_bag(tmp_path / "nolidar", src, [IMG, INFO, "/tf_static"])
    e = err(no_lidar, "--eval")
    assert "no LiDAR" in e and "nolidar" in e
    no_tf = _make_bag(tmp_path / "notf", src, [IMG, INFO, VELO])
    e = err(no_tf, "--eval")
    assert "velodyne" in e and "camera_color_left" in e and "--calib" in e


def test_no_tf_eval_fails_before_any_inference(tmp_path):
    src = shared_path(*SAMPLE)
    no_tf = _make_bag(tmp_path / "notf", src, [IMG, INFO, VELO])
    replay = _Replay([np.ones((375, 1242), np.float32)] * 2)
    with pytest.raises(bio.BagError, match="not in the static transforms"):
        run_bag(BagRunOptions(no_tf, tmp_path / "o", evaluate=True, progress=False), infer=replay, log=lambda s: None)
    assert not (tmp_path / "o").exists()


def test_compressed_images_are_decoded(tmp_path):
    import cv2

    src = shared_path(*SAMPLE)
    bag = tmp_path / "compressed"
    with bio.BagReader(src) as r, bio.BagWriter(bag) as w:
        CI = w.typestore.types[bio.COMPRESSED_IMAGE]
        w.add_topic("/cam/image_raw/compressed", bio.COMPRESSED_IMAGE)
        w.add_topic("/cam/camera_info", bio.CAMERA_INFO, typestore=r.typestore)
        for conn, t, raw in r.raw_messages([IMG, INFO]):
            if conn.topic == INFO:
                w.write_raw("/cam/camera_info", t, raw)
                continue
            m = r.deserialize(raw, conn)
            ok, png = cv2.imencode(".png", cv2.cvtColor(bio.image_to_array(m), cv2.COLOR_RGB2BGR))
            w.write("/cam/image_raw/compressed", t, CI(header=m.header, format="png", data=png.reshape(-1)))
    seen = []

    def infer(rgb, intr):
        seen.append(rgb)
        return SimpleNamespace(depth=np.full(rgb.shape[:2], 7.0, np.float32), intrinsics=intr, rgb=rgb)

    res = run_bag(BagRunOptions(bag, tmp_path / "o", progress=False, copy="none"), infer=infer, log=lambda s: None)
    assert res.topics["/depth/image"] == 2 and len(seen) == 2
    ref = bio.image_to_array(_read(src, [IMG])[IMG][0][1])
    assert np.array_equal(seen[0], ref)   # lossless PNG: the same pixels as the raw image


def _tree(root):
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def test_out_is_never_the_input_bag(tmp_path, capsys):
    """`bag X --out X --overwrite` used to replace the input recording."""
    src = shared_path(*SAMPLE)
    inp = _make_bag(tmp_path / "d" / "in", src, [IMG, INFO, "/tf_static"])
    before = _tree(tmp_path)
    replay = _Replay([np.full((375, 1242), 5.0, np.float32)] * 2)
    for out, msg in ((inp, "is the input bag"), (tmp_path / "d", "contains the input bag"),
                     (inp / "depth", "is inside the input bag")):
        with pytest.raises(bio.BagError, match=msg):
            run_bag(BagRunOptions(inp, out, overwrite=True, progress=False), infer=replay, log=lambda s: None)
        rc = main(["bag", str(inp), "--out", str(out), "--overwrite", "--no-progress", "--model", "unused.pt"])
        assert rc == 2 and msg in capsys.readouterr().err
    # a single-file input: --out its folder (a copy: a regression must not delete ../shared/data)
    single = tmp_path / "f" / "single.mcap"
    single.parent.mkdir()
    single.write_bytes(src.read_bytes())
    before = _tree(tmp_path)
    with pytest.raises(bio.BagError, match="contains the input bag"):
        run_bag(BagRunOptions(single, single.parent, overwrite=True, progress=False), infer=replay, log=lambda s: None)
    assert replay.calls == 0 and _tree(tmp_path) == before
    # a non-bag directory is not replaced, even with --overwrite
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "results.txt").write_text("precious")
    rc = main(["bag", str(inp), "--out", str(plain), "--overwrite", "--no-progress", "--model", "unused.pt"])
    assert rc == 2 and "is not a rosbag2" in capsys.readouterr().err
    assert (plain / "results.txt").read_text() == "precious"


def test_existing_eval_outputs_refused_before_inference(tmp_path, sample_gt, capsys):
    preds = [np.where(g > 0, g, np.nan) for g in sample_gt]
    src = shared_path(*SAMPLE)
    ev = tmp_path / "ev"
    run_bag(BagRunOptions(src, tmp_path / "o1", evaluate=True, progress=False, eval_dir=ev), infer=_Replay(preds),
            log=lambda s: None)
    names = sorted(p.name for p in ev.iterdir())
    assert names == ["eval.json", "eval.md", "eval_frames.csv", "eval_per_frame.png", "eval_worst_frame.png"]
    before = _tree(ev)
    for name in names:  # each single existing output is enough to refuse (plots too, even with plots off)
        keep = {n: (ev / n).read_bytes() for n in names}
        for n in names:
            if n != name:
                (ev / n).unlink()
        for plots in (True, False):
            replay = _Replay(preds)
            with pytest.raises(FileExistsError, match=name.replace(".", r"\.")):
                run_bag(BagRunOptions(src, tmp_path / "o2", evaluate=True, progress=False, eval_dir=ev, plots=plots),
                        infer=replay, log=lambda s: None)
            assert replay.calls == 0 and not (tmp_path / "o2").exists()
        for n, b in keep.items():
            (ev / n).write_bytes(b)
    assert _tree(ev) == before
    # the default <OUT>_eval/ likewise; the CLI says so and exits 2
    (tmp_path / "o4_eval").mkdir()
    (tmp_path / "o4_eval" / "eval.md").write_text("an earlier run")
    rc = main(["bag", str(src), "--out", str(tmp_path / "o4"), "--eval", "--no-progress", "--model", "unused.pt"])
    err = capsys.readouterr().err
    assert rc == 2 and "eval.md exists" in err and "--overwrite" in err
    replay = _Replay(preds)
    with pytest.raises(FileExistsError, match="eval.md"):
        run_bag(BagRunOptions(src, tmp_path / "o4", evaluate=True, progress=False), infer=replay, log=lambda s: None)
    assert replay.calls == 0 and not (tmp_path / "o4").exists()
    assert (tmp_path / "o4_eval" / "eval.md").read_text() == "an earlier run"
    # --eval-dir inside a bag is refused
    with pytest.raises(ValueError, match="inside the output bag"):
        run_bag(BagRunOptions(src, tmp_path / "o3", evaluate=True, progress=False, eval_dir=tmp_path / "o3" / "ev"),
                infer=_Replay(preds), log=lambda s: None)
    # with --overwrite: replaced; files of this name the new run does not make (plots) are removed
    res = run_bag(BagRunOptions(src, tmp_path / "o2", evaluate=True, progress=False, eval_dir=ev, plots=False,
                                overwrite=True), infer=_Replay(preds), log=lambda s: None)
    assert sorted(p.name for p in ev.iterdir()) == ["eval.json", "eval.md", "eval_frames.csv"]
    assert json.loads((ev / "eval.json").read_text())["output_bag"] == str(tmp_path / "o2")
    assert set(res.eval_paths) == {"csv", "json", "md"}


def test_out_of_range_predictions_are_scored_clamped_with_coverage(tmp_path, sample_gt):
    """A pixel the node publishes as NaN because its depth is outside [min_depth, max_depth] still
    counts (clamped to the protocol range), instead of leaving the metrics."""
    preds, evals = [], []
    for g in sample_gt:
        thr = float(np.median(g[g > 0]))
        full = np.where(g > thr, 2.0 * g, g).astype(np.float32)    # near: exact; far: twice too far
        full[g <= 0] = 10.0
        evals.append(full)
        preds.append(np.where(full > 2.0 * thr, np.nan, full).astype(np.float32))  # the node's max_depth 2 thr
    masked = [np.isnan(p) & (g > 0) for p, g in zip(preds, sample_gt)]
    assert 0.4 < sum(m.sum() for m in masked) / sum((g > 0).sum() for g in sample_gt) < 0.6   # half the GT pixels

    class WithEval(_Replay):
        def __call__(self, rgb, intrinsics):
            r = super().__call__(rgb, intrinsics)
            r.eval_depth = evals[self.calls - 1]
            return r

    res = run_bag(BagRunOptions(shared_path(*SAMPLE), tmp_path / "o", evaluate=True, progress=False, plots=False,
                                eval_dir=tmp_path / "ev"), infer=WithEval(preds), log=lambda s: None)
    old = run_bag(BagRunOptions(shared_path(*SAMPLE), tmp_path / "o_excl", evaluate=True, progress=False,
                                plots=False), infer=_Replay(preds), log=lambda s: None)   # NaN pixels excluded
    # the bag holds what the node publishes (NaN out of range), the metrics use every GT pixel
    d0 = bio.image_to_array(_read(tmp_path / "o", ["/depth/image"])["/depth/image"][0][1])
    assert np.array_equal(np.isnan(d0), np.isnan(preds[0]))
    h, w = sample_gt[0].shape
    crop = np.zeros((h, w), bool)
    crop[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    for proto, region, cap in (("paper", np.ones((h, w), bool), np.inf), ("garg80", crop, 80.0)):
        sel = [region & (g > 1e-3) & (g <= cap) for g in sample_gt]
        expected = {}
        for k in M.METRIC_NAMES:  # independent numpy: prediction clamped to [1e-3, cap]
            vals = []
            for e, g, s in zip(evals, sample_gt, sel):
                p, t = np.clip(e[s].astype(np.float64), 1e-3, cap), g[s].astype(np.float64)
                r, dl = np.maximum(p / t, t / p), np.log(p) - np.log(t)
                vals.append({"delta1": np.mean(r < 1.25), "delta2": np.mean(r < 1.25 ** 2),
                             "delta3": np.mean(r < 1.25 ** 3), "abs_rel": np.mean(np.abs(p - t) / t),
                             "sq_rel": np.mean((p - t) ** 2 / t), "rmse": np.sqrt(np.mean((p - t) ** 2)),
                             "rmse_log": np.sqrt(np.mean(dl ** 2)),
                             "si_log": np.sqrt(max(np.mean(dl ** 2) - np.mean(dl) ** 2, 0))}[k])
            expected[k] = np.mean(vals)
        got, excl = res.totals["totals"][proto], old.totals["totals"][proto]
        for k in M.METRIC_NAMES:
            assert got[k] == pytest.approx(expected[k], rel=1e-6, abs=1e-9), (proto, k)
        assert got["abs_rel"] > 0.2 and excl["abs_rel"] == pytest.approx(0.0, abs=1e-6)  # excluding hid the errors
        assert got["delta1"] < 0.8 and excl["delta1"] == 1.0
        n_gt = int(sum(s.sum() for s in sel))
        assert got["pixels"] == got["gt_pixels"] == n_gt and got["coverage"] == 1.0
        assert excl["gt_pixels"] == n_gt and 0.4 < excl["coverage"] < 0.6
        assert excl["pixels"] == n_gt - int(sum((m & s).sum() for m, s in zip(masked, sel)))
        # the baseline is on the same pixels as the model: every GT pixel now
        base = res.totals["mean_depth_baseline"][proto]
        assert base["pixels"] == n_gt
    doc = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert doc["totals"]["paper"]["coverage"] == 1.0
    assert doc["frames"][0]["paper_coverage"] == 1.0 and doc["frames"][0]["paper_gt_n"] == int((sample_gt[0] > 0).sum())
    header = (tmp_path / "ev" / "eval_frames.csv").read_text().splitlines()[0].split(",")
    assert "paper_coverage" in header and "garg80_gt_n" in header
    assert "coverage 100.0 %" in (tmp_path / "ev" / "eval.md").read_text()
    assert "coverage 100.0 %" not in old.markdown and "coverage" in old.markdown


def test_pipeline_eval_counts_out_of_range_pixels_and_bag_matches_node(tiny_model, tmp_path, sample_gt):
    """The real pipeline path: the bag keeps the node's range mask, the evaluation does not."""
    from mono_depth_ros.pipeline import DepthPipeline
    from mono_depth_ros.ros import conversions as conv

    src = shared_path(*SAMPLE)
    inp = _read(src, [IMG, INFO])
    rgbs = [conv.image_msg_to_rgb(m) for _, m in inp[IMG]]
    intrs = [conv.camera_info_to_intrinsics(m) for _, m in inp[INFO]]
    with DepthPipeline(model=str(tiny_model), backend="torch") as pipe:
        d = pipe.infer_rgb(rgbs[0], intrs[0]).depth
        cap = float(np.median(d[np.isfinite(d)]))            # the node's max_depth: about half the pixels out
        u0, v0, u1, v1 = pipe.camera_region(rgbs[0].shape[1], rgbs[0].shape[0])
    with DepthPipeline(model=str(tiny_model), backend="torch", max_depth=cap) as pipe:
        node = [pipe.infer_rgb(r, i).depth.copy() for r, i in zip(rgbs, intrs)]
    seen = np.zeros(sample_gt[0].shape, bool)
    seen[v0:v1, u0:u1] = True
    assert 0.2 < np.isnan(node[0][seen]).mean() < 0.8
    rc = main(["bag", str(src), "--model", str(tiny_model), "--out", str(tmp_path / "o"), "--no-progress",
               "--backend", "torch", "--max-depth", f"{cap!r}", "--no-points", "--eval", "--no-plots",
               "--protocols", "paper"])
    assert rc == 0
    got = [bio.image_to_array(m) for _, m in _read(tmp_path / "o", ["/depth/image"])["/depth/image"]]
    for a, b in zip(got, node):                               # what depth_node publishes, bit for bit
        assert np.array_equal(a, b, equal_nan=True)
    t = json.loads((tmp_path / "o_eval" / "eval.json").read_text())["totals"]["paper"]
    n_seen = int(sum(((g > 1e-3) & seen).sum() for g in sample_gt))
    n_gt = int(sum((g > 1e-3).sum() for g in sample_gt))
    assert t["pixels"] == n_seen and t["gt_pixels"] == n_gt   # every GT pixel the network sees
    assert t["coverage"] == pytest.approx(n_seen / n_gt)


def _resized_bag(path, src, size):
    """``src`` with its camera images resized (binned) or cut to ``size``; camera_info, LiDAR, tf as they are."""
    import cv2

    w_, h_ = size
    with bio.BagReader(src) as r, bio.BagWriter(path) as w:
        for t in (IMG, INFO, VELO, "/tf_static"):
            w.add_topic(t, r.topics[t].msgtype, typestore=r.typestore)
        Image = w.typestore.types[bio.IMAGE]
        for conn, t, raw in r.raw_messages([IMG, INFO, VELO, "/tf_static"]):
            if conn.topic != IMG:
                w.write_raw(conn.topic, t, raw)
                continue
            m = r.deserialize(raw, conn)
            rgb = bio.image_to_array(m)
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if rgb.shape[0] / h_ == rgb.shape[1] / w_ \
                else np.ascontiguousarray(rgb[:h_, :w_])
            w.write(IMG, t, Image(header=m.header, height=h_, width=w_, encoding="rgb8", is_bigendian=0, step=w_ * 3,
                                  data=rgb.reshape(-1)))
    return path


def test_camera_info_of_another_size_follows_the_one_policy(tiny_model, tmp_path, capsys):
    """camera.fit_intrinsics on the bag tools: 2x2-binned images with the full-size camera_info are run with
    the scaled intrinsics (outputs and evaluation; one warning); another aspect ratio is one error line."""
    from mono_depth_ros.camera import CameraIntrinsics

    src = shared_path(*SAMPLE)
    msgs = _read(src)
    full = CameraIntrinsics.from_camera_info_fields(msgs[INFO][0][1].k, msgs[INFO][0][1].p, 1242, 375)
    scaled = full.scaled_to(621, 188)
    tf = StaticTransforms()
    for _, m in msgs["/tf_static"]:
        tf.add_message(m)
    gts = [lidar_to_depth(bio.pointcloud2_xyz(c), tf.lookup(i.header.frame_id, c.header.frame_id), scaled.K(), 621, 188)
           for (_, i), (_, c) in zip(msgs[INFO], msgs[VELO])]
    seen, logged = [], []

    def infer(rgb, intr):
        seen.append(intr)
        return SimpleNamespace(depth=np.where(gts[len(seen) - 1] > 0, gts[len(seen) - 1], np.nan).astype(np.float32),
                               intrinsics=intr, rgb=rgb, metric=True)

    binned = _resized_bag(tmp_path / "binned", src, (621, 188))
    res = run_bag(BagRunOptions(binned, tmp_path / "o", evaluate=True, progress=False, eval_dir=tmp_path / "ev",
                                plots=False), infer=infer, log=logged.append)
    assert seen == [scaled, scaled]
    assert len([s for s in logged if "scaling the intrinsics" in s]) == 1, logged
    infos = _read(tmp_path / "o", ["/depth/camera_info"])["/depth/camera_info"]
    assert all((m.width, m.height) == (621, 188) and np.allclose(np.reshape(m.k, (3, 3)), scaled.K()) for _, m in infos)
    t = res.totals["totals"]["paper"]    # the LiDAR projected with the scaled K: the prediction is the GT
    assert t["pixels"] == sum(int((g > 1e-3).sum()) for g in gts) > 1000 and t["abs_rel"] == pytest.approx(0, abs=1e-6)
    cut = _resized_bag(tmp_path / "cut", src, (1242, 200))
    rc = main(["bag", str(cut), "--out", str(tmp_path / "o2"), "--no-progress", "--model", str(tiny_model),
               "--backend", "torch"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and not (tmp_path / "o2").exists()
    assert err[-1].startswith("mono-depth bag: error:") and "another aspect ratio" in err[-1] and "1242x200" in err[-1]


def test_eval_without_matplotlib_says_the_plots_were_skipped(tiny_model, tmp_path, monkeypatch, capsys):
    """A ROS install without matplotlib (e.g. the ROS bundle's venv): metrics written, plots skipped, and the
    user told so in one line instead of plots silently missing."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    rc = main(["bag", str(shared_path(*SAMPLE)), "--model", str(tiny_model), "--out", str(tmp_path / "o"),
               "--no-progress", "--backend", "torch", "--no-points", "--max-frames", "2", "--eval",
               "--protocols", "paper"])
    out = capsys.readouterr().out
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "o_eval").iterdir())
    assert names == ["eval.json", "eval.md", "eval_frames.csv"], names
    assert [ln for ln in out.splitlines() if ln.startswith("no plots")] == [
        "no plots: matplotlib is not installed (pip install matplotlib)"]
