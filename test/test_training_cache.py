"""training.cache: decode once into memory-mapped arrays; round trip, refusal of a stale cache, atomic and
never-overwriting writes, and training from it (same loss curve as the decode path)."""
import json
import os

import cv2
import numpy as np
import pytest

from conftest import shared_path
from mono_depth_ros.profiles import Profile, get_profile
from training.cache import (CacheError, FrameCache, FramePreparer, build_cache, cache_settings, main as cache_main)
from training.datasets import build_source

TINY_KITTI = Profile(name="tiny_kitti", input_w=224, input_h=64, resize_w=240, resize_h=72,
                     coarse_channels=(8, 16, 16, 16, 16), fc_hidden=64, fine_channels=8, dropout=0.0,
                     min_depth=1e-3, max_depth=80.0)


def _nyu_sync(root, n=3, h=120, w=160):
    """NYU sync layout (JPEG + uint16 mm PNG), with a hole and a saturated far region."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        scene = root / f"scene_{i % 2}"
        scene.mkdir(parents=True, exist_ok=True)
        rgb = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (3, 3), 1)
        mm = (800 + 20 * xx + 10 * yy + 100 * i).astype(np.uint16)
        mm[10:20, 10:30] = 0
        cv2.imwrite(str(scene / f"rgb_{i:05d}.jpg"), rgb)
        cv2.imwrite(str(scene / f"sync_depth_{i:05d}.png"), mm)
    return root


NYU_SMALL = Profile(name="nyu_small", input_w=144, input_h=108, resize_w=152, resize_h=114, fc_hidden=64,
                    coarse_channels=(8, 16, 16, 16, 16), fine_channels=8, dropout=0.0, min_depth=0.1, max_depth=10.0)


def test_dense_cache_round_trip_and_manifest(tmp_path):
    data = _nyu_sync(tmp_path / "sync")
    spec = {"type": "nyu_sync", "root": str(data)}
    m = build_cache(spec, NYU_SMALL, tmp_path / "c")
    assert m["frames"] == 3 and m["settings"]["gt"] == "dense" and m["settings"]["depth_scale"] == 1000.0
    assert m["settings"]["mask_min_max"] is True          # nyu_sync's default, the paper's training mask
    assert "root" not in m["settings"]["source"]           # the location is recorded, not hashed
    assert m["source"]["root"] == str(data)
    cache = FrameCache(tmp_path / "c")
    prep = FramePreparer(build_source(spec), NYU_SMALL, cache_settings(spec, NYU_SMALL))
    for i in range(3):
        a, b = cache.frame(i), prep.frame(i)
        assert a.rgb.dtype == np.uint8 and a.rgb.shape == (114, 152, 3) and (a.src_w, a.src_h) == (160, 120)
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.depth, b.depth)
        assert (a.depth == 0).any() and a.depth.max() < 10000     # hole + each image's max masked
    lines = [json.loads(ln) for ln in (tmp_path / "c" / "frames.jsonl").read_text().splitlines()]
    assert lines[0]["sources"][0] == os.path.abspath(data / "scene_0" / "rgb_00000.jpg") and lines[0]["base_size"] == [152, 114]
    assert lines[0]["sources"][1].endswith("sync_depth_00000.png")
    assert cache.name(2) == lines[2]["name"]
    # the decoded depth is the source's (mm), masked: compare one valid pixel through the base map
    d_src = cv2.imread(str(data / "scene_0" / "sync_depth_00000.png"), cv2.IMREAD_UNCHANGED)
    assert abs(int(cache.frame(0).depth[60, 76]) - int(d_src[63, 80])) < 60    # 1 source px ~ 20-30 mm


def test_sparse_kitti_cache_holds_the_lidar_projection(tmp_path):
    root = shared_path("kitti_raw_layout_repackaged")
    spec = {"type": "kitti_raw", "root": str(root), "gt": "velodyne"}
    m = build_cache(spec, TINY_KITTI, tmp_path / "k", workers=1)
    assert m["settings"]["gt"] == "sparse" and m["settings"]["depth_scale"] == 256.0 and m["frames"] == 2
    cache = FrameCache(tmp_path / "k")
    src = build_source(spec)
    for i in range(2):
        fr = cache.frame(i)
        _, depth, _, _ = src.load(i)
        v = depth > 0
        assert len(fr.z) == v.sum() > 1000
        np.testing.assert_array_equal(fr.uv[:, 0], np.nonzero(v)[1])
        np.testing.assert_allclose(fr.z / 256.0, depth[v], atol=0.5 / 256 + 1e-6)


def test_stale_cache_is_refused_and_nothing_is_overwritten(tmp_path, capsys):
    from training.train import train

    data = _nyu_sync(tmp_path / "sync")
    spec = {"type": "nyu_sync", "root": str(data)}
    build_cache(spec, NYU_SMALL, tmp_path / "c")
    FrameCache(tmp_path / "c").check(cache_settings(spec, NYU_SMALL))
    # other settings: max depth, masking, and (through a config) the trainer
    with pytest.raises(CacheError, match=r"other settings.*profile.max_depth: cache 10.0, config 5.0"):
        FrameCache(tmp_path / "c").check(cache_settings(spec, NYU_SMALL.replace(max_depth=5.0)))
    with pytest.raises(CacheError, match="mask_min_max: cache True, config False"):
        FrameCache(tmp_path / "c").check(cache_settings(dict(spec, mask_min_max=False), NYU_SMALL))
    cfg = {"profile": dict(NYU_SMALL.to_dict(), max_depth=8.0), "data": {"train": spec, "train_cache": str(tmp_path / "c")},
           "train": {"batch_size": 2, "samples": {"coarse": 4, "fine": 2}, "workers": 0, "tensorboard": False,
                     "progress": False, "image_every": 0, "checkpoint_every": 0}}
    with pytest.raises(CacheError, match="profile.max_depth"):
        train(cfg, tmp_path / "run")
    # the data moved: the cache stays valid (root is not part of the settings)
    FrameCache(tmp_path / "c").check(cache_settings(dict(spec, root="/elsewhere"), NYU_SMALL))
    # an existing cache is not replaced without --overwrite; a folder that is not a cache never
    stamp = (tmp_path / "c" / "manifest.json").read_bytes()
    cfg_file = tmp_path / "cfg.yaml"
    import yaml

    cfg_file.write_text(yaml.safe_dump({"profile": NYU_SMALL.to_dict(), "data": {"train": spec}}))
    assert cache_main(["--config", str(cfg_file), "--out", str(tmp_path / "c"), "--workers", "0", "--no-progress"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "c" / "manifest.json").read_bytes() == stamp
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert cache_main(["--config", str(cfg_file), "--out", str(tmp_path / "mine"), "--overwrite", "--no-progress",
                       "--workers", "0"]) == 2
    assert "not a training cache" in capsys.readouterr().err and (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert cache_main(["--config", str(cfg_file), "--out", str(tmp_path / "c"), "--overwrite", "--no-progress",
                       "--workers", "0", "--set", "profile.max_depth=9.0"]) == 0
    assert "3 frames" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["settings"]["profile"]["max_depth"] == 9.0
    assert not list(tmp_path.glob(".c.*"))                   # no temporary folder left behind
    # a broken source: exit 2, one line, nothing written
    assert cache_main(["--config", str(cfg_file), "--out", str(tmp_path / "d"), "--no-progress",
                       "--set", f"data.train.root={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cache: error:") and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob(".d.*"))
    # truncated arrays are refused
    with open(tmp_path / "c" / "rgb.u8", "r+b") as f:
        f.truncate(100)
    with pytest.raises(CacheError, match="truncated"):
        FrameCache(tmp_path / "c")


def test_training_from_the_cache_follows_the_decode_path_loss_curve(tmp_path):
    """Synthetic scenes at 2x the base resolution: per-sample (decode) path vs cache + batch augmentation;
    same draws, so the curves agree within the GT resampling's noise."""
    from training.train import train

    prof = {"name": "s", "input_w": 96, "input_h": 72, "resize_w": 100, "resize_h": 75,
            "coarse_channels": [8, 16, 16, 16, 16], "fc_hidden": 64, "fine_channels": 8, "dropout": 0.0}
    spec = {"type": "synthetic", "kind": "indoor", "n": 24, "seed": 0, "width": 200, "height": 150}
    base = {"profile": prof, "data": {"train": dict(spec, cache=True)}, "augment": {"preset": "nyu"},
            "optim": {"lr": {"conv": 1e-3, "fc": 1e-2, "f1": 1e-3, "f3": 1e-2, "f4": 1e-3}, "clip_grad_norm": 10.0},
            "train": {"batch_size": 8, "samples": {"coarse": 8 * 30, "fine": 8 * 6}, "workers": 0, "log_every": 3,
                      "image_every": 0, "checkpoint_every": 0, "tensorboard": False, "progress": False}}
    ref = train(base, tmp_path / "decode")
    build_cache(spec, get_profile("nyu").replace(**{k: v for k, v in prof.items() if k != "name"}), tmp_path / "c")
    cfg = json.loads(json.dumps(base))
    cfg["data"]["train_cache"] = str(tmp_path / "c")
    got = train(cfg, tmp_path / "cached")
    for stage in ("coarse", "fine"):
        a = np.array([v for _, v in ref["stages"][stage]["losses"]])
        b = np.array([v for _, v in got["stages"][stage]["losses"]])
        assert len(a) == len(b) >= 3
        np.testing.assert_allclose(b, a, rtol=0.03, atol=0.005)   # measured here: within 0.5 %
    c = [v for _, v in got["stages"]["coarse"]["losses"]]
    assert np.mean(c[-3:]) < 0.8 * c[0]                          # and it learns


def test_fine_stage_starts_without_coarse_gradients(tmp_path):
    import torch

    from mono_depth_ros.model import EigenDepthNet
    from training.train import Trainer

    prof = NYU_SMALL
    t = Trainer.__new__(Trainer)
    model = EigenDepthNet(prof)
    t._set_stage(model, "coarse")
    model(torch.zeros(2, 3, prof.input_h, prof.input_w), "coarse").sum().backward()
    assert all(p.grad is not None for p in model.coarse.parameters())
    t._set_stage(model, "fine")
    assert all(p.grad is None for p in model.coarse.parameters())


def test_cache_path_resume_is_bit_exact(tmp_path):
    """The batch path keeps the trainer's contract: an interrupted and resumed run equals an uninterrupted one."""
    import torch

    from training.train import train

    data = _nyu_sync(tmp_path / "sync", n=4)
    spec = {"type": "nyu_sync", "root": str(data)}
    build_cache(spec, NYU_SMALL, tmp_path / "c")
    cfg = {"profile": NYU_SMALL.to_dict(), "data": {"train": spec, "train_cache": str(tmp_path / "c")},
           "augment": {"preset": "nyu"},
           "train": {"batch_size": 2, "samples": {"coarse": 8, "fine": 4}, "workers": 1, "prefetch_factor": 2,
                     "log_every": 1, "tensorboard": False, "progress": False, "image_every": 0, "checkpoint_every": 0}}
    train(cfg, tmp_path / "a")
    assert train(cfg, tmp_path / "b", max_steps=3)["interrupted"]
    train(cfg, tmp_path / "b", resume=True)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
