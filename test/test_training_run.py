"""training.train / training.evaluate end to end: real frames overfit far below the mean-depth baseline,
exact resume, refusal to overwrite, clear data errors, and DDP (gloo, 2 processes) == one process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT, log_lines_at_least, shared_path, signal_when
from mono_depth_ros.checkpoint import load_model, read_model_file
from training.datasets import DatasetError, build_source
from training.evaluate import evaluate_model, format_results
from training.train import TrainError, train

TINY = {"name": "tiny", "input_w": 160, "input_h": 120, "resize_w": 168, "resize_h": 126, "fc_hidden": 64,
        "coarse_channels": [8, 16, 16, 16, 16], "fine_channels": 8, "dropout": 0.0}


def _sync_data(root: Path, n=6):
    """A small NYU-sync-layout dataset (JPEG + uint16 mm PNG) with structure the net can learn."""
    rng = np.random.default_rng(0)
    for i in range(n):
        scene = root / f"room_{i % 2:04d}"
        scene.mkdir(parents=True, exist_ok=True)
        h, w = 150, 200
        v, u = np.mgrid[0:h, 0:w]
        depth = 1.5 + 3.0 * v / h + 0.5 * i
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[..., 0] = (255 * v / h).astype(np.uint8)
        rgb[..., 1] = rng.integers(0, 60, (h, w))
        rgb[..., 2] = 40 * i
        x0 = 20 + 25 * i
        depth[40:110, x0:x0 + 40] = 1.0
        rgb[40:110, x0:x0 + 40] = (250, 250, 250)
        cv2.imwrite(str(scene / f"rgb_{i:05d}.jpg"), rgb[:, :, ::-1])
        cv2.imwrite(str(scene / f"sync_depth_{i:05d}.png"), (depth * 1000).astype(np.uint16))
    return root


def _cfg(data_root, **train_kw):
    cfg = {"profile": dict(TINY), "data": {"train": {"type": "nyu_sync", "root": str(data_root), "cache": True}},
           "augment": {"preset": "nyu"},
           "optim": {"lr": {"conv": 0.01, "fc": 0.01, "f1": 0.01, "f3": 0.01, "f4": 0.01}},
           "train": {"batch_size": 4, "samples": {"coarse": 12, "fine": 8}, "workers": 0, "log_every": 1,
                     "image_every": 0, "checkpoint_every": 0, "tensorboard": False, "progress": False}}
    cfg["train"].update(train_kw)
    return cfg


def _state(path):
    return read_model_file(path)["state_dict"]


def test_short_real_data_run_overfits_far_below_mean_depth_baseline(tmp_path):
    root = shared_path("kitti_object_lidar")
    prof = {"name": "tiny_kitti", "input_w": 224, "input_h": 64, "resize_w": 240, "resize_h": 72,
            "coarse_channels": [16, 32, 32, 32, 32], "fc_hidden": 128, "fine_channels": 16, "dropout": 0.0,
            "min_depth": 0.001, "max_depth": 80.0}
    cfg = {"profile": prof, "data": {"train": {"type": "kitti_object", "root": str(root), "cache": True}},
           "augment": {"preset": "none"},
           "optim": {"lr": {"conv": 0.01, "fc": 0.01, "f1": 0.01, "f3": 0.01, "f4": 0.01}, "clip_grad_norm": 10.0},
           "train": {"batch_size": 4, "samples": {"coarse": 400, "fine": 200}, "workers": 0, "log_every": 10,
                     "image_every": 150, "checkpoint_every": 0, "tensorboard": True, "progress": False}}
    res = train(cfg, tmp_path / "run")
    losses = [l for _, l in res["stages"]["coarse"]["losses"]]
    assert losses[-1] < 0.05 * losses[0], losses
    assert np.mean(losses[-3:]) < 0.2 * np.mean(losses[:3])
    fine = [l for _, l in res["stages"]["fine"]["losses"]]
    assert fine[-1] < 0.5 * fine[0]
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    log = [json.loads(ln) for ln in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} == {"coarse", "fine"} and all(np.isfinite(r["loss"]) for r in log)
    model, info = load_model(tmp_path / "run" / "model.pt")
    assert info["stage"] == "fine" and model.profile.name == "tiny_kitti"
    out = evaluate_model(model, build_source({"type": "kitti_object", "root": str(root)}), "kitti",
                         image_dir=tmp_path / "vis", num_images=1)
    text = format_results(out)
    print(text)
    for proto in ("paper", "modern"):
        rows = out["protocols"][proto]["rows"]
        base, coarse = rows["mean-depth baseline"], rows["coarse"]
        assert coarse["images"] == 4 and base["images"] == 4
        assert coarse["abs_rel"] < 0.3 * base["abs_rel"]
        assert coarse["rmse_log"] < 0.4 * base["rmse_log"] and coarse["delta1"] > 0.8 > base["delta1"]
        assert "coarse + fine" in rows
    assert "| mean-depth baseline |" in text and len(list((tmp_path / "vis").glob("*.png"))) == 1


def test_resume_after_interruption_is_bit_exact(tmp_path):
    data = _sync_data(tmp_path / "data")
    cfg = _cfg(data)
    cfg["profile"]["dropout"] = 0.5      # the RNG state must be restored too
    full = train(cfg, tmp_path / "a")
    # interrupted in the coarse stage, then in the fine stage, then finished
    r1 = train(cfg, tmp_path / "b", max_steps=2)
    assert r1["interrupted"] and not (tmp_path / "b" / "model.pt").exists()
    r2 = train(cfg, tmp_path / "b", resume=True, max_steps=2)
    assert r2["interrupted"] and (tmp_path / "b" / "coarse.pt").exists()
    train(cfg, tmp_path / "b", resume=True)
    for name in ("coarse.pt", "model.pt", "checkpoint.pt"):
        a, b = _state(tmp_path / "a" / name), _state(tmp_path / "b" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    la = [(r["stage"], r["step"], r["loss"]) for r in map(json.loads, (tmp_path / "a" / "log.jsonl").read_text().splitlines())]
    lb = [(r["stage"], r["step"], r["loss"]) for r in map(json.loads, (tmp_path / "b" / "log.jsonl").read_text().splitlines())]
    assert la == lb and len(la) == 5
    # a finished run is not overwritten without being asked
    with pytest.raises(TrainError, match="already holds a run.*--resume.*--overwrite"):
        train(cfg, tmp_path / "a")
    before = (tmp_path / "a" / "model.pt").read_bytes()
    with pytest.raises(TrainError, match="nothing to resume"):
        train(cfg, tmp_path / "c", resume=True)
    assert (tmp_path / "a" / "model.pt").read_bytes() == before


def test_missing_dataset_and_empty_split_errors(tmp_path):
    cfg = _cfg(tmp_path / "no_such_dir")
    with pytest.raises(DatasetError, match="NYU sync dataset root.*rgb_NNNNN.jpg.*no_such_dir does not exist"):
        train(cfg, tmp_path / "run")
    (tmp_path / "empty_list.txt").write_text("# nothing\n")
    (tmp_path / "d").mkdir()
    cfg = _cfg(tmp_path / "d")
    cfg["data"]["train"]["list"] = str(tmp_path / "empty_list.txt")
    with pytest.raises(DatasetError, match="empty_list.txt lists no frames"):
        train(cfg, tmp_path / "run2")
    with pytest.raises(TrainError, match="no data.train"):
        train({"profile": "nyu"}, tmp_path / "run3")


def test_misspelt_config_keys_are_rejected_with_the_closest_match(tmp_path, capsys):
    from training.train import main as train_main
    from training.utils import apply_overrides

    data = tmp_path / "d"
    data.mkdir()
    base = _cfg(data)
    cases = {"trian.samples.coarse=3": "unknown config key 'trian'; did you mean 'train'",
             "train.nope=3": "unknown config key 'train.nope'.*known keys under 'train'",
             "train.samples.coarce=3": "unknown config key 'train.samples.coarce'; did you mean 'train.samples.coarse'",
             "optim.lr.f2=0.1": "unknown config key 'optim.lr.f2'",
             "train.samples=3": "'train.samples' must be a mapping",
             "train.batch_size.x=3": "'train.batch_size' takes a value like 32, not a mapping"}
    for override, msg in cases.items():
        with pytest.raises(TrainError, match=msg):
            train(apply_overrides(base, [override]), tmp_path / "run")
    assert not (tmp_path / "run").exists()       # rejected before anything is written
    # the inline profile is free-form; dataset specs take their source's arguments (issue 11: a typo there gets
    # a suggestion, see test_user_errors.py); the defaults' own keys pass
    ok = apply_overrides(base, ["data.train.limit=4", "profile.base=nyu", "train.samples.coarse=3",
                                "optim.lr.f4=0.1", "export.half=true"])
    from training.train import resolve_config

    assert resolve_config(ok)["train"]["samples"] == {"coarse": 3, "fine": 8}
    # the CLI: a clear one-line error and exit 2
    import yaml

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(base))
    rc = train_main(["--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run"),
                     "--set", "trian.samples.coarse=3"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown config key 'trian'; did you mean 'train'?" in err
    # and a misspelt key in the YAML file itself
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**base, "optm": {"momentum": 0.5}}))
    assert train_main(["--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "run")]) == 2
    assert "did you mean 'optim'?" in capsys.readouterr().err


def test_ddp_two_processes_equal_one_process(tmp_path):
    data = _sync_data(tmp_path / "data")
    cfg = _cfg(data, samples={"coarse": 8, "fine": 4})
    single = train(cfg, tmp_path / "single")
    import yaml

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _state(tmp_path / "single" / "model.pt"), _state(tmp_path / "ddp" / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    # the weights did move: equality is not trivial
    untrained = load_model(tmp_path / "single" / "coarse.pt")[0].state_dict()
    assert not torch.equal(untrained["fine.f3.weight"], a["fine.f3.weight"])
    la = [r["loss"] for r in map(json.loads, (tmp_path / "single" / "log.jsonl").read_text().splitlines())]
    lb = [r["loss"] for r in map(json.loads, (tmp_path / "ddp" / "log.jsonl").read_text().splitlines())]
    assert len(la) == len(lb) == 3
    np.testing.assert_allclose(lb, la, rtol=1e-5)
    assert single["stages"]["coarse"]["steps_run"] == 2 and single["stages"]["fine"]["steps_run"] == 1


def test_synthetic_config_trains_and_evaluate_cli_prints_and_saves(tmp_path, capsys):
    from training.evaluate import main as evaluate_main
    from training.utils import apply_overrides, load_yaml_config

    cfg = load_yaml_config(ROOT / "training" / "configs" / "synthetic_smoke.yaml")
    cfg = apply_overrides(cfg, ["train.samples.coarse=8", "train.samples.fine=8", "train.batch_size=4",
                                "train.workers=0", "train.tensorboard=false", "train.progress=false",
                                "data.train.n=8", "data.val.n=3"])
    res = train(cfg, tmp_path / "run")
    assert not res["interrupted"]
    model, info = load_model(tmp_path / "run" / "model.pt")
    assert (model.profile.input_w, model.profile.input_h) == (160, 120) and model.profile.name == "smoke_indoor"
    args = ["--checkpoint", str(tmp_path / "run" / "model.pt"), "--dataset", "synthetic", "--workers", "0",
            "--synthetic", '{"kind": "indoor", "n": 3, "seed": 5, "width": 200, "height": 150}',
            "--out", str(tmp_path / "eval.json"), "--images", str(tmp_path / "vis"), "--num-images", "2"]
    assert evaluate_main(args) == 0
    out = capsys.readouterr().out
    assert "| coarse + fine |" in out and "| mean-depth baseline |" in out
    saved = json.loads((tmp_path / "eval.json").read_text())
    rows = saved["protocols"]["paper"]["rows"]
    assert set(rows) == {"coarse", "coarse + fine", "mean-depth baseline"} and rows["coarse"]["images"] == 3
    assert len(list((tmp_path / "vis").glob("*.png"))) == 2
    assert evaluate_main(args) == 2            # refuses to overwrite the JSON
    assert evaluate_main(args[:-4] + ["--stage", "coarse", "--overwrite"]) == 0
    assert "coarse + fine" not in json.loads((tmp_path / "eval.json").read_text())["protocols"]["paper"]["rows"]


def test_evaluate_images_folder_is_not_overwritten_without_overwrite(tmp_path, capsys):
    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet
    from training.evaluate import main as evaluate_main
    from training.utils import profile_from_config

    torch.manual_seed(0)
    ckpt = save_model(EigenDepthNet(profile_from_config(dict(TINY))).eval(), tmp_path / "m.pt")
    vis = tmp_path / "vis"
    args = ["--checkpoint", str(ckpt), "--dataset", "synthetic", "--workers", "0", "--stage", "coarse",
            "--synthetic", '{"kind": "indoor", "n": 2, "seed": 3, "width": 200, "height": 150}',
            "--images", str(vis), "--num-images", "2"]
    assert evaluate_main(args + ["--out", str(tmp_path / "a.json")]) == 0
    pngs = sorted(vis.glob("*.png"))
    assert len(pngs) == 2
    for p in pngs:                       # marks: a rewrite would replace these bytes
        p.write_bytes(b"user's file")
    (vis / "notes.png").write_bytes(b"unrelated")  # not a side-by-side name: ignored
    capsys.readouterr()
    assert evaluate_main(args + ["--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert f"{pngs[0]} exists (2 side-by-side PNG(s)" in err and "--overwrite" in err
    assert all(p.read_bytes() == b"user's file" for p in pngs) and not (tmp_path / "b.json").exists()
    # fewer images than the clash: only the frames this run would write count
    (pngs[1]).unlink()
    assert evaluate_main(args[:-1] + ["1", "--out", str(tmp_path / "c.json")]) == 2
    # the library call refuses too, before evaluating
    src = build_source({"type": "synthetic", "kind": "indoor", "n": 2, "seed": 3, "width": 200, "height": 150})
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        evaluate_model(load_model(ckpt)[0], src, "nyu", "coarse", image_dir=vis, num_images=2)
    assert evaluate_main(args + ["--out", str(tmp_path / "d.json"), "--overwrite"]) == 0
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in sorted(vis.glob("0*.png")))
    assert (vis / "notes.png").read_bytes() == b"unrelated"


def test_demo_profile_model_file_is_under_20_mb_in_half_precision(tmp_path):
    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet
    from training.utils import load_yaml_config, profile_from_config

    prof = profile_from_config(load_yaml_config(ROOT / "training" / "configs" / "synthetic_demo.yaml")["profile"])
    path = save_model(EigenDepthNet(prof), tmp_path / "demo.pt", half=True)
    assert 5e6 < path.stat().st_size < 20e6
    model, _ = load_model(path)
    assert model.profile == prof


def test_sigterm_saves_a_checkpoint_and_resume_continues(tmp_path):
    import signal

    import yaml

    data = _sync_data(tmp_path / "data")
    cfg = _cfg(data, samples={"coarse": 40000, "fine": 8})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    rc, err = signal_when([sys.executable, "-m", "training.train", "--config", str(tmp_path / "cfg.yaml"),
                           "--out", str(run)], log_lines_at_least(run / "log.jsonl", 3), signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM, err[-2000:]   # stopped by a signal: not a finished run
    assert "--resume" in err
    ckpt = read_model_file(run / "checkpoint.pt")
    step = ckpt["train_state"]["step"]
    assert ckpt["train_state"]["stage"] == "coarse" and 3 <= step < 10000
    assert not (run / "model.pt").exists()
    res = train(cfg, run, resume=True, max_steps=2)
    assert res["stages"]["coarse"]["start_step"] == step and res["stages"]["coarse"]["steps_run"] == 2
    with pytest.raises(TrainError, match="already holds a run"):
        train(cfg, run)


def test_evaluate_cli_on_a_nyu_labelled_mat_built_here(tmp_path, capsys):
    import h5py

    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet
    from mono_depth_ros.profiles import Profile
    from training.evaluate import main as evaluate_main

    rng = np.random.default_rng(0)
    n, h, w = 4, 240, 320
    rgb = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    depth = (1.0 + 3 * rng.random((n, h, w))).astype(np.float32)
    with h5py.File(tmp_path / "nyu.mat", "w") as f:
        f.create_dataset("images", data=rgb.transpose(0, 3, 2, 1))
        f.create_dataset("depths", data=depth.transpose(0, 2, 1))
    (tmp_path / "split.txt").write_text("a/rgb_00001.jpg a/sync_depth_00001.png 518.8579\n"
                                        "b/rgb_00003.jpg b/sync_depth_00003.png 518.8579\n")
    save_model(EigenDepthNet(Profile.from_dict(dict(TINY, coarse_channels=(8, 16, 16, 16, 16)))),
               tmp_path / "m.pt", stage="coarse")
    args = ["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "nyu", "--data", str(tmp_path / "nyu.mat"),
            "--split", str(tmp_path / "split.txt"), "--workers", "0", "--out", str(tmp_path / "r.json")]
    assert evaluate_main(args) == 0
    out = capsys.readouterr().out
    assert "modern protocol: NYU Eigen crop" in out and "| coarse |" in out and "coarse + fine" not in out
    res = json.loads((tmp_path / "r.json").read_text())
    modern = res["protocols"]["modern"]["rows"]
    assert modern["coarse"]["images"] == 2
    # the baseline constant is the mean GT depth over the evaluated pixels of the two test images
    assert modern["mean-depth baseline"]["constant"] == pytest.approx(float(depth[[1, 3]].mean()), rel=0.01)
    # the Eigen crop counts fewer pixels than the whole region the network sees
    assert modern["coarse"]["pixels"] < res["protocols"]["paper"]["rows"]["coarse"]["pixels"]
