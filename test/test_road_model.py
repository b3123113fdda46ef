"""The shipped road model (mono_depth_ros/models/road.pt): loads, its profile, size, training metadata; which
model runs when none is given; the real-KITTI evaluation command (its baselines, and a run on ../shared/data)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, shared_path
from mono_depth_ros.checkpoint import load_model, read_model_file
from mono_depth_ros.default_models import (DEMO_MODEL, ROAD_MODEL, default_model_for, default_model_for_bag,
                                           default_model_for_files, is_kitti_shaped)


def test_road_model_file_loads_with_its_kitti_profile_and_is_small():
    assert ROAD_MODEL.is_file()
    assert ROAD_MODEL.stat().st_size <= 5 * 1024 * 1024
    model, info = load_model(ROAD_MODEL)
    p = model.profile
    assert info["stage"] == "fine"
    # the paper's KITTI design, reduced: fine net on the bottom rows, KITTI's aspect, metric up to 80 m
    assert p.fine_crop_h is not None and p.fine_crop_h < p.input_h
    assert (p.resize_w, p.resize_h) == (311, 94) and (p.input_w, p.input_h) == (288, 88)
    assert p.max_depth == 80.0 and p.coarse_channels == (32, 64, 96, 96, 64)
    meta = info["meta"]
    cfg = meta["config"]
    assert cfg["data"]["train"]["root"].startswith("data/street_")        # synthetic streets, never real KITTI
    assert "kitti_object_lidar" not in json.dumps(cfg) and "kitti_raw" not in json.dumps(cfg["data"])
    t = meta["training"]
    assert set(t["stages"]) == {"coarse", "fine"}
    assert t["stages"]["coarse"]["samples"] == cfg["train"]["samples"]["coarse"]
    assert 0 < t["wall_s_first_to_last_step"] and t["git_commit"]
    assert 5.0 < meta["train_mean_depth"] < 40.0
    payload = read_model_file(ROAD_MODEL)
    halves = [v.dtype for v in payload["state_dict"].values() if v.is_floating_point()]
    assert halves and all(str(d) == "torch.float16" for d in halves)


def test_road_model_predicts_metric_street_depth_on_a_kitti_sized_frame():
    from mono_depth_ros.pipeline import DepthPipeline
    from mono_depth_ros.synthetic import render_frame

    f = render_frame("street", 123, 1242, 375)          # a street the model never saw (trained on seed 0)
    with DepthPipeline(ROAD_MODEL, backend="torch") as pipe:
        d = pipe.infer_rgb(f.rgb, f.camera_intrinsics()).depth
    assert d.shape == (375, 1242)
    ok = np.isfinite(d) & f.valid
    assert ok.sum() > 0.3 * d.size
    # metric, not relative: the median over the bottom rows (road, 4-10 m away) is within a factor 1.6
    bottom = ok.copy()
    bottom[: 300] = False
    ratio = np.median(d[bottom]) / np.median(f.depth[bottom])
    assert 1 / 1.6 < ratio < 1.6


@pytest.mark.parametrize("size,kitti", [((1242, 375), True), ((1224, 370), True), ((1241, 376), True),
                                        ((621, 188), True), ((640, 480), False), ((320, 240), False),
                                        ((1920, 1080), False), ((311, 94), False)])
def test_kitti_shaped_inputs_get_the_road_model(size, kitti):
    assert is_kitti_shaped(*size) is kitti
    path, why = default_model_for(*size)
    assert path == (ROAD_MODEL if kitti else DEMO_MODEL)
    assert path.name in why and f"{size[0]}x{size[1]}" in why
    assert default_model_for(None, None)[0] == DEMO_MODEL


def test_default_model_for_real_kitti_image_and_bag():
    img = shared_path("kitti_object_lidar", "image_2", "cvml_000114.png")
    assert default_model_for_files([img])[0] == ROAD_MODEL
    nyu = [p for p in (SHARED_DATA / "nyu_depth_v2_samples").rglob("*.png")] if SHARED_DATA.is_dir() else []
    assert default_model_for_files([SHARED_DATA / "missing.png"] + [img])[0] == ROAD_MODEL
    if nyu:
        assert default_model_for_files(nyu[:1])[0] in (DEMO_MODEL, ROAD_MODEL)
    bag = shared_path("ros2_bags", "kitti_2frames_repackaged.mcap")
    path, why = default_model_for_bag(bag)
    assert path == ROAD_MODEL and "1242x375" in why


def test_ground_plane_baseline_rows():
    from training.eval_kitti_real import ground_plane_depth

    d = ground_plane_depth(375, 4, fy=721.5377, cy=172.854, camera_height=1.65)
    assert d.shape == (375, 4)
    v = 300
    assert d[v, 0] == pytest.approx(1.65 * 721.5377 / (v - 172.854), rel=1e-6)
    assert (d[:173] == 80.0).all()                                   # at and above the horizon: 80 m
    first = int(np.floor(172.854 + 1.65 * 721.5377 / 80.0)) + 1     # first row nearer than 80 m (188)
    assert (d[173:first] == 80.0).all() and d[first, 2] < 80.0       # near the horizon: clamped
    assert np.all(np.diff(d[:, 1]) <= 0)


def test_eval_kitti_real_scores_every_real_frame(capsys):
    shared_path("kitti_object_lidar", "image_2")
    from training.eval_kitti_real import main

    assert main(["--per-image"]) == 0
    out = capsys.readouterr().out
    for row in ("model, coarse + fine", "model, coarse only", "ground plane only", "mean-depth baseline"):
        assert f"| {row} |" in out
    for frame in ("object/cvml_000114", "object/kov_000000", "object/kov_000002", "object/mmdet3d_000008",
                  "raw/2011_09_26_drive_9999_sync/image_02/0000000000"):
        assert frame in out
    assert "6 real KITTI frames" in out


def test_eval_kitti_real_bad_input_is_one_line(tmp_path, capsys):
    from training.eval_kitti_real import main

    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a model")
    assert main(["--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eval_kitti_real: error:")


# ---- where the road model runs without --model (one process each: the CLI as users run it) ----------------
def _cli(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "mono_depth_ros", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_predict_without_model_on_a_kitti_frame_runs_the_road_model(tmp_path):
    img = shared_path("kitti_object_lidar", "image_2", "cvml_000114.png")
    r = _cli("predict", str(img), "--out", str(tmp_path / "pred"), "--backend", "torch")
    assert r.returncode == 0, r.stderr
    assert "road.pt" in r.stdout and "KITTI-shaped" in r.stdout
    d = np.load(tmp_path / "pred" / "cvml_000114_depth.npy")
    assert d.shape == (375, 1242) and np.nanmax(d) > 15.0            # street depth, not a 10 m room


def test_kitti2bag_then_bag_eval_without_model_runs_the_road_model(tmp_path):
    drive = shared_path("kitti_raw_layout_repackaged", "2011_09_26", "2011_09_26_drive_9999_sync")
    assert _cli("kitti2bag", str(drive), "--out", str(tmp_path / "k"), "--no-progress").returncode == 0
    r = _cli("bag", str(tmp_path / "k"), "--out", str(tmp_path / "d"), "--eval", "--no-progress", "--backend", "torch")
    assert r.returncode == 0, r.stderr
    assert "road.pt" in r.stdout + r.stderr and "KITTI-shaped" in r.stdout + r.stderr
    assert "garg80" in r.stdout or "Garg" in r.stdout


def test_demo_street_runs_end_to_end_with_the_road_model(tmp_path):
    from mono_depth_ros.demo import run_demo

    logs = []
    res = run_demo(out=tmp_path / "demo", frames=2, width=621, height=188, scene="street", progress=False,
                   log=logs.append, backend="torch")
    assert Path(res.model) == ROAD_MODEL and res.frames == 2
    assert res.metrics is not None and res.metrics["model"]["abs_rel"] < res.metrics["mean"]["abs_rel"]
    assert any("street" in line for line in logs)


def test_eval_kitti_real_figures_are_small_pngs_and_never_overwrite(tmp_path):
    shared_path("kitti_object_lidar", "image_2", "cvml_000114.png")
    import cv2

    from training.eval_kitti_real import write_figures

    model, _ = load_model(ROAD_MODEL)
    paths = write_figures(model, tmp_path, ["cvml_000114"], label="road.pt")
    assert [p.name for p in paths] == ["cvml_000114_depth.png", "cvml_000114_cloud.png"]
    for p in paths:
        assert 0 < p.stat().st_size < 300 * 1024 and cv2.imread(str(p)) is not None
    with pytest.raises(FileExistsError):
        write_figures(model, tmp_path, ["cvml_000114"])


def test_eval_launch_without_model_picks_the_road_model_for_a_kitti_bag(monkeypatch):
    """eval.launch.py's _setup against launch stand-ins (test_launch.py; the real launch runs it in
    test_ros2_full.py): model:="" -> depth.launch.py gets road.pt and one LogInfo says why; a given model
    is passed on as it is."""
    from test_launch import _load_eval_with_stand_ins

    module = _load_eval_with_stand_ins(monkeypatch)
    bag = shared_path("ros2_bags", "kitti_2frames_repackaged.mcap")
    defaults = {e[1]: e[2] for e in module.generate_launch_description() if isinstance(e, tuple) and e[0] == "arg"}
    ctx = {**{k: v for k, v in defaults.items() if v is not None}, "bag": str(bag), "model": ""}

    def passed(actions):
        (include,) = [e for e in actions if isinstance(e, tuple) and e[0] == "IncludeLaunchDescription"]
        return dict(include[2]["launch_arguments"])

    try:
        actions = module._setup(ctx)
        said = [e for e in actions if isinstance(e, tuple) and e[0] == "LogInfo"]
        assert passed(actions)["model"] == str(ROAD_MODEL)
        assert len(said) == 1 and "road.pt" in said[0][2]["msg"]
        actions = module._setup({**ctx, "model": "/x/my.pt"})
        assert passed(actions)["model"] == "/x/my.pt"
        assert not [e for e in actions if isinstance(e, tuple) and e[0] == "LogInfo"]
    finally:
        module._remove_temp_files()



def test_ship_model_reads_cpu_seconds_from_gnu_time_output():
    """ship_model --time-log: CPU seconds (user + system, loader workers included), wall and peak memory of the
    training command; anything that is not GNU `time -v` output is refused."""
    from training.ship_model import parse_time_log

    text = ("\tCommand being timed: \"python -m training.train\"\n\tUser time (seconds): 1103.17\n"
            "\tSystem time (seconds): 144.56\n\tPercent of CPU this job got: 116%\n"
            "\tElapsed (wall clock) time (h:mm:ss or m:ss): 17:54.78\n\tMaximum resident set size (kbytes): 5434332\n")
    t = parse_time_log(text)
    assert t["cpu_s"] == pytest.approx(1247.73) and t["wall_s"] == pytest.approx(1074.78)
    assert t["max_rss_mb"] == pytest.approx(5307.0, abs=0.1)
    assert parse_time_log(text.replace("17:54.78", "1:02:03"))["wall_s"] == pytest.approx(3723.0)
    with pytest.raises(ValueError):
        parse_time_log("real 0m1.0s\n")
