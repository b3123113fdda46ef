"""The demo's steps (mono_depth_ros.demo / `mono-depth demo`) on a few small frames: every output exists and
agrees with the others (bags re-read, PNG vs NPY, PLY vs valid pixels), metrics beat the mean-depth baseline
with the shipped model, the output directory is never taken from a user, bad inputs give clear errors."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from mono_depth_ros import demo
from mono_depth_ros.bag import io as bio

N = 4
W, H = 224, 168   # small, 4:3 like the demo model's 320x240 camera


def _needs_model():
    if not demo.DEMO_MODEL.is_file():
        pytest.skip(f"the shipped demo model {demo.DEMO_MODEL} is not there")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    _needs_model()
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MONO_DEPTH_CACHE", str(root / "cache"))   # the ONNX export cache: not the user's ~/.cache
        res = demo.run_demo(out=root / "out", frames=N, width=W, height=H, progress=False, heldout=2,
                            log=lambda s: None)
    return res


def test_outputs_exist(demo_run):
    out = demo_run.out
    assert demo_run.frames == N
    assert (out / demo.MARKER).is_file() and (out / "README.md").is_file()
    for d, ext in (("depth", ".png"), ("depth", ".npy"), ("color", ".png"), ("side_by_side", ".png"),
                   ("clouds", ".ply")):
        files = sorted((out / d).glob(f"*{ext}"))
        assert [f.stem for f in files] == [f"frame_{i:04d}" for i in range(N)], (d, ext)
        assert all(f.stat().st_size > 0 for f in files)
    for bag in ("input_bag", "depth_bag"):
        assert (out / bag / "metadata.yaml").is_file() and list((out / bag).glob("*.mcap"))
    import cv2

    sbs = cv2.imread(str(out / "side_by_side" / "frame_0000.png"))
    assert sbs.shape == (H, 4 * W, 3)   # RGB | GT | prediction | error
    assert str(out / "depth_bag") in (out / "README.md").read_text()
    # a new output folder has mkdir's mode (0777 less the umask), not the 0700 of its temporary staging folder
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask


def test_bags_reread(demo_run):
    stamps = [demo.STAMP0_NS + i * int(1e9 / demo.DEMO_FPS) for i in range(N)]
    with bio.BagReader(demo_run.input_bag) as r:
        counts = {t: i.count for t, i in r.topics.items()}
        assert counts == {demo.IMAGE_TOPIC: N, demo.INFO_TOPIC: N, demo.GT_TOPIC: N, demo.TF_TOPIC: N}
        imgs = list(r.messages([demo.IMAGE_TOPIC]))
        assert [bio.stamp_to_ns(m.header.stamp) for _, _, m in imgs] == stamps
        assert [t for _, t, _ in imgs] == stamps
        assert all(m.encoding == "rgb8" and (m.width, m.height) == (W, H) for _, _, m in imgs)
    with bio.BagReader(demo_run.depth_bag) as r:
        topics = r.topics
        for k in ("image", "camera_info", "points", "colored"):
            t = f"{demo.NAMESPACE}/{k}"
            assert topics[t].count == N, t
            msgs = list(r.messages([t]))
            assert [bio.stamp_to_ns(m.header.stamp) for _, _, m in msgs] == stamps
            assert all(m.header.frame_id == demo.FRAME_ID for _, _, m in msgs)
        # the input's topics are copied in (one bag to play)
        assert topics[demo.IMAGE_TOPIC].count == N and topics[demo.GT_TOPIC].count == N
        from mono_depth_ros.ros.conversions import image_msg_to_depth

        depth0 = image_msg_to_depth(next(iter(r.messages([f"{demo.NAMESPACE}/image"])))[2])
    np.testing.assert_array_equal(depth0, np.load(demo_run.out / "depth" / "frame_0000.npy"))


def test_depth_png_npy_ply_consistent(demo_run):
    import cv2

    from mono_depth_ros.pointcloud import read_ply

    for i in range(N):
        d = np.load(demo_run.out / "depth" / f"frame_{i:04d}.npy")
        assert d.shape == (H, W) and d.dtype == np.float32
        valid = np.isfinite(d) & (d > 0)
        assert 0.5 * d.size < valid.sum() < d.size   # NaN outside the region the network sees, depth inside
        mm = cv2.imread(str(demo_run.out / "depth" / f"frame_{i:04d}.png"), cv2.IMREAD_UNCHANGED)
        assert mm.dtype == np.uint16 and mm.shape == (H, W)
        assert (mm[~valid] == 0).all()
        np.testing.assert_allclose(mm[valid] / 1000.0, d[valid], atol=5.1e-4)
        xyz, rgb = read_ply(demo_run.out / "clouds" / f"frame_{i:04d}.ply")
        assert len(xyz) == int(valid.sum())
        assert rgb is not None and len(rgb) == len(xyz)
        np.testing.assert_allclose(np.sort(xyz[:, 2]), np.sort(d[valid]), rtol=1e-6)


def test_metrics_beat_baseline(demo_run):
    m = json.loads((demo_run.out / "metrics.json").read_text())
    rows = m["rows"]
    assert m["frames"] == N
    for row in rows.values():
        for k in ("delta1", "delta2", "delta3", "abs_rel", "sq_rel", "rmse", "rmse_log", "si_log"):
            assert math.isfinite(row[k]), k
    assert rows["model"]["abs_rel"] < rows["mean_depth_baseline"]["abs_rel"]
    assert rows["model"]["delta1"] > rows["mean_depth_baseline"]["delta1"]
    assert rows["model"]["pixels"] == rows["mean_depth_baseline"]["pixels"]  # the same pixels
    md = (demo_run.out / "metrics.md").read_text()
    assert "mean-depth baseline" in md and "AbsRel" in md


def test_heldout_check(demo_run, tmp_path, monkeypatch):
    h = json.loads((demo_run.out / "metrics.json").read_text())["heldout"]
    assert h["seeds"] == [demo.HELDOUT_SEEDS0, demo.HELDOUT_SEEDS0 + 1] and h["frames_per_sequence"] == N
    rows = h["rows"]
    assert rows["model"]["images"] == 2 * N
    assert rows["model"]["abs_rel"] < rows["mean_depth_baseline"]["abs_rel"]
    assert h["abs_rel_improvement_over_mean_baseline"] == pytest.approx(
        1 - rows["model"]["abs_rel"] / rows["mean_depth_baseline"]["abs_rel"])
    # the same figures as the documented held-out evaluation on those sequences
    monkeypatch.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))
    direct = demo.evaluate_heldout(None, h["seeds"], N, W, H, progress=False)
    assert direct["model"]["abs_rel"] == pytest.approx(rows["model"]["abs_rel"], rel=1e-6)
    assert direct["mean"]["abs_rel"] == pytest.approx(rows["mean_depth_baseline"]["abs_rel"], rel=1e-6)
    md = (demo_run.out / "metrics.md").read_text()
    assert md.index(f"## The demo sequence (seed {demo.DEMO_SEED}") < md.index("## Held-out check: 2 more sequences")


def test_heldout_rejects_negative(tmp_path):
    with pytest.raises(demo.DemoError, match="--heldout"):
        demo.run_demo(out=tmp_path / "o", heldout=-1, progress=False, log=lambda s: None)
    assert not (tmp_path / "o").exists()


def test_out_dir_ownership(tmp_path, demo_run):
    # a directory the demo did not make is refused, and left exactly as it was
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    (user / "depth").mkdir()
    with pytest.raises(demo.DemoError, match="not made by the demo"):
        demo.prepare_out_dir(user)
    assert sorted(p.name for p in user.iterdir()) == ["depth", "notes.txt"]
    # --overwrite: only the demo's own entries are replaced
    demo.prepare_out_dir(user, overwrite=True, log=lambda s: None)
    assert (user / "notes.txt").read_text() == "keep me" and (user / demo.MARKER).is_file()
    assert not (user / "depth").exists()
    # a demo directory is reused; a file is refused
    (user / "clouds").mkdir()
    demo.prepare_out_dir(user, log=lambda s: None)
    assert not (user / "clouds").exists() and (user / "notes.txt").is_file()
    (tmp_path / "f").write_text("x")
    with pytest.raises(demo.DemoError, match="not a directory"):
        demo.prepare_out_dir(tmp_path / "f")


def test_bad_input_clear_error(tmp_path, capsys):
    from mono_depth_ros.cli import main

    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    cases = {str(tmp_path / "missing.mcap"): "no such file",
             str(tmp_path / "notes.txt"): "not a bag",
             str(tmp_path / "empty"): "no images",
             str(tmp_path / "broken.png"): "cannot read it as an image"}
    for i, (inp, msg) in enumerate(cases.items()):
        rc = main(["demo", "--input", inp, "--out", str(tmp_path / f"o{i}"), "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and inp in err, (inp, err)
        assert not (tmp_path / f"o{i}").exists()   # nothing written for a bad input
    rc = main(["demo", "--model", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o9"), "--no-progress"])
    assert rc == 2 and "nope.pt" in capsys.readouterr().err


def test_image_folder_input_no_metrics(tmp_path, demo_run):
    import cv2

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rgb = cv2.imread(str(demo_run.out / "side_by_side" / "frame_0000.png"))[:, :W]
    for i in range(2):
        cv2.imwrite(str(imgs / f"img_{i}.png"), np.roll(rgb, 8 * i, axis=1))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))
        res = demo.run_demo(out=tmp_path / "o", input=str(imgs), progress=False, log=lambda s: None)
    assert res.frames == 2 and res.metrics is None
    assert not (res.out / "metrics.json").exists()
    assert len(list((res.out / "clouds").glob("*.ply"))) == 2
    assert len(list((res.out / "side_by_side").glob("*.png"))) == 2
    with bio.BagReader(res.depth_bag) as r:
        assert r.topics[f"{demo.NAMESPACE}/points"].count == 2


def test_shipped_model_file_and_pipeline_default(tmp_path, monkeypatch):
    _needs_model()
    from mono_depth_ros.checkpoint import read_model_file
    from mono_depth_ros.pipeline import DepthPipeline

    assert demo.DEMO_MODEL.stat().st_size < 20e6
    payload = read_model_file(demo.DEMO_MODEL)
    assert payload["stage"] == "fine"
    monkeypatch.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))
    pipe = DepthPipeline(backend="torch")          # no model: the shipped demo model
    assert Path(pipe.spec.path).resolve() == demo.DEMO_MODEL.resolve() and pipe.metric
    assert (pipe.profile.resize_w, pipe.profile.resize_h) == (168, 126)   # its camera: 320x240 (4:3)
    pipe.close()


def test_outputs_are_read_back_one_frame_at_a_time(demo_run):
    """export_outputs streams both bags: at most one depth frame is alive at a time, and the input bag's image
    and ground truth are found by stamp also when the depth run skipped frames (a few held, not all)."""
    import weakref

    from mono_depth_ros.ros import conversions as conv

    alive = []

    class CountingConv:
        def __getattr__(self, name):
            return getattr(conv, name)

        def image_msg_to_depth(self, m):
            a = conv.image_msg_to_depth(m).astype(np.float32)   # a new array per message
            alive.append(weakref.ref(a))
            return a

    stamps = []
    with bio.BagReader(demo_run.depth_bag) as r:
        for s, d, intr, col in demo._depth_frames(r, bio, CountingConv()):
            assert d.shape == (H, W) and intr is not None and col is not None
            stamps.append(s)
            del d, col
            assert sum(w() is not None for w in alive) <= 1
    assert stamps == [demo.STAMP0_NS + i * int(1e9 / demo.DEMO_FPS) for i in range(N)]

    with bio.BagReader(demo_run.input_bag) as r:
        direct = {bio.stamp_to_ns(m.header.stamp): conv.image_msg_to_rgb(m) for _, _, m in r.messages([demo.IMAGE_TOPIC])}
    with bio.BagReader(demo_run.input_bag) as r:
        inputs = demo._InputByStamp(r, demo.IMAGE_TOPIC, demo.GT_TOPIC, keep=2)
        for s in (stamps[1], stamps[3]):   # frames 0 and 2 skipped, as if the depth run had dropped them
            rgb, gt = inputs.get(s)
            assert np.array_equal(rgb, direct[s]) and gt is not None and gt.shape == (H, W)
            assert len(inputs._held) <= 2
        assert inputs.get(stamps[0]) == (None, None)   # gone: only forward, nothing hoarded


def test_bag_input_readme_names_the_cameras_frame(tmp_path):
    """With a user's bag the README's rviz2 hint names that camera's frame (the depth's frame_id), not the
    synthetic sequence's camera_optical_frame (rviz2 would show nothing)."""
    _needs_model()
    from conftest import shared_path

    bag = shared_path("ros2_bags", "kitti_2frames_repackaged.mcap")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))
        lines = []
        res = demo.run_demo(out=tmp_path / "o", input=str(bag), progress=False, log=lines.append)
    with bio.BagReader(res.depth_bag) as r:
        frame = next(m for _, _, m in r.messages([f"{demo.NAMESPACE}/image"])).header.frame_id
    assert frame and frame != demo.FRAME_ID and res.frame_id == frame
    text = (res.out / "README.md").read_text()
    assert f"Fixed Frame `{frame}`" in text and demo.FRAME_ID not in text
    # KITTI's camera (1242x375): the road model runs, and that is the model the console and README name
    assert _model_mentions(text) == {"road.pt"} and _model_mentions("\n".join(lines)) == {"road.pt"}, lines


def _model_mentions(text: str) -> set:
    """The model files (``*.pt``) a text names."""
    import re

    return {Path(m).name for m in re.findall(r"[\w./-]+\.pt\b", text)}


def test_kitti_shaped_input_names_the_model_that_runs(tmp_path, capsys):
    """No --model and a KITTI-shaped image (aspect 3.3): default_models picks road.pt once, and the console,
    the summary, the output's README.md and the depth bag's run all name road.pt; demo.pt appears nowhere."""
    from mono_depth_ros import default_models as dm
    from mono_depth_ros.cli import main
    from mono_depth_ros.synthetic import render_sequence

    if not dm.ROAD_MODEL.is_file():
        pytest.skip(f"the shipped road model {dm.ROAD_MODEL} is not there")
    import cv2

    w, h = 528, 160   # KITTI's aspect (1242 / 375 = 3.31), small enough to be quick
    assert dm.is_kitti_shaped(w, h)
    img = tmp_path / "kitti_like.png"
    cv2.imwrite(str(img), cv2.cvtColor(render_sequence("street", seed=1, n_frames=1, width=w, height=h)[0].rgb,
                                       cv2.COLOR_RGB2BGR))
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))
        res = demo.run_demo(out=tmp_path / "o", input=str(img), progress=False, log=lines.append)
        assert Path(res.model).resolve() == dm.ROAD_MODEL.resolve()
        console = "\n".join(lines)
        assert sum("no model given" in s for s in lines) == 1   # resolved once, its reason said once
        assert "road.pt" in next(s for s in lines if s.startswith("2/3 "))
        readme = (res.out / "README.md").read_text()
        for text in (console, readme, demo.describe(res, False)):
            assert _model_mentions(text) == {"road.pt"}, text
        # the CLI's whole output (progress off) names road.pt only
        rc = main(["demo", "--input", str(img), "--out", str(tmp_path / "cli"), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 0 and _model_mentions(cap.out + cap.err) == {"road.pt"}, cap.out + cap.err


def test_kitti_shaped_rendering_metrics_name_the_model_that_runs(tmp_path):
    """A rendered sequence of a KITTI-shaped size runs road.pt (default_models): the metrics files, the bag
    evaluation and the held-out check name it and score it (the held-out rows are road.pt's, not demo.pt's)."""
    from mono_depth_ros import default_models as dm

    if not dm.ROAD_MODEL.is_file():
        pytest.skip(f"the shipped road model {dm.ROAD_MODEL} is not there")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))
        res = demo.run_demo(out=tmp_path / "o", frames=2, width=528, height=160, heldout=1, progress=False,
                            log=lambda s: None)
        direct = demo.evaluate_heldout(str(dm.ROAD_MODEL), [demo.HELDOUT_SEEDS0], 2, 528, 160, progress=False)
    assert Path(res.model).resolve() == dm.ROAD_MODEL.resolve()
    doc = json.loads((res.out / "metrics.json").read_text())
    assert doc["model"] == "road.pt"
    assert doc["heldout"]["rows"]["model"]["abs_rel"] == pytest.approx(direct["model"]["abs_rel"], rel=1e-6)
    texts = [(res.out / n).read_text() for n in ("metrics.md", "README.md")]
    texts += [f.read_text() for f in (res.out / "depth_bag_eval").iterdir() if f.suffix in (".md", ".json")]
    for text in texts:
        assert _model_mentions(text) <= {"road.pt"} and "demo.pt" not in text
    assert "road.pt" in texts[0]
