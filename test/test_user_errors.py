"""Issue 11, item by item: nothing a user made is lost, interrupted runs leave complete files and exit 130,
and every user mistake gets one clear line (in-process `main(argv)` where possible; subprocesses where a real
signal matters)."""
from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import TINY_CLI, log_lines_at_least, save_tiny_model, signal_when
from mono_depth_ros import demo
from mono_depth_ros.demo import run as demo_run   # the run step calls export_outputs from there
from mono_depth_ros.cli import main

TINY = TINY_CLI


def tree(root: Path) -> dict:
    """{relative path: sha256} of every file (and empty folder) below ``root``."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("m") / "tiny.pt")


@pytest.fixture(scope="module")
def onnx_model(model, tmp_path_factory):
    from mono_depth_ros.export import export_onnx

    return export_onnx(model, tmp_path_factory.mktemp("o") / "tiny.onnx", check=False)


def _image(path: Path, w=200, h=150, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (h // 10, w // 10, 3), dtype=np.uint8), (w, h))
    cv2.imwrite(str(path), img)
    return path


# ---- 1. export never replaces its input; names the format ---------------------------------------
def test_export_refuses_out_equal_model_and_non_onnx_names(model, tmp_path, capfd):
    m = tmp_path / "e.pt"
    m.write_bytes(model.read_bytes())
    before = tree(tmp_path)
    rc = main(["export", "--model", str(m), "--out", str(m), "--overwrite"])
    assert rc == 2 and "is the input model" in one_error_line(capfd.readouterr().err)
    rc = main(["export", "--model", str(m), "--out", str(tmp_path / "x.txt")])
    assert rc == 2 and ".onnx" in one_error_line(capfd.readouterr().err)
    assert tree(tmp_path) == before


# ---- 2. the demo: validate first, swap in only on success ---------------------------------------
@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MONO_DEPTH_CACHE", str(root / "cache"))
        demo.run_demo(out=root / "D", frames=2, width=128, height=96, progress=False, heldout=0, log=lambda s: None)
    return root / "D"


def _bag_without_camera(path: Path):
    from mono_depth_ros.bag import io as bio

    with bio.BagWriter(path) as w:
        w.add_topic("/tf", bio.TF_MESSAGE)
        f = w.factory
        w.write("/tf", 1, f.tf_message([f.transform_stamped(1, "a", "b", np.eye(4))]))


def test_demo_failure_keeps_previous_output(demo_dir, model, tmp_path, capfd, monkeypatch):
    before = tree(demo_dir.parent / "D")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(model.read_bytes()[:1000])
    good_bag = demo_dir / "input_bag"
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    for f in good_bag.iterdir():
        data = f.read_bytes()
        (trunc / f.name).write_bytes(data[:len(data) // 2] if f.suffix == ".mcap" else data)
    nocam = tmp_path / "nocam"
    _bag_without_camera(nocam)
    foreign = _foreign(_onnx(model, tmp_path), tmp_path / "foreign.onnx")
    (tmp_path / "foreign.yaml").write_text("input_width: 64\ninput_height: 48\noutput: log_depth\n")
    cases = [["--model", str(broken)], ["--input", str(trunc)], ["--input", str(nocam)], ["--model", str(foreign)]]
    for extra in cases:
        rc = main(["demo", "--out", str(demo_dir), "--no-progress", "--frames", "2", "--size", "128x96",
                   "--heldout", "0"] + extra)
        out, err = capfd.readouterr()
        assert rc == 2, (extra, err)
        one_error_line(err)
        assert "replacing" not in out
        assert tree(demo_dir) == before, extra
    # a failure in the middle of the run (after the bags are written) also leaves D as it was
    monkeypatch.setattr(demo_run, "export_outputs", lambda *a, **k: (_ for _ in ()).throw(ValueError("disk trouble")))
    rc = main(["demo", "--out", str(demo_dir), "--no-progress", "--frames", "2", "--size", "128x96", "--heldout", "0"])
    assert rc == 2 and "disk trouble" in one_error_line(capfd.readouterr().err)
    assert tree(demo_dir) == before
    assert sorted(p.name for p in demo_dir.parent.iterdir() if p.name.startswith(".")) == []
    monkeypatch.undo()
    # a good run replaces the previous output; --overwrite into a user's folder keeps the user's files
    rc = main(["demo", "--out", str(demo_dir), "--no-progress", "--frames", "3", "--size", "128x96", "--heldout", "0"])
    assert rc == 0 and len(list((demo_dir / "depth").glob("*.npy"))) == 3
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    rc = main(["demo", "--out", str(user), "--overwrite", "--no-progress", "--frames", "2", "--size", "128x96",
               "--heldout", "0"])
    assert rc == 0 and (user / "notes.txt").read_text() == "keep me" and (user / demo.MARKER).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    capfd.readouterr()


def _foreign(src: Path, dst: Path) -> Path:
    """A copy of an exported ONNX without its mono_depth_ros metadata: a foreign model."""
    import onnx

    m = onnx.load(str(src))
    del m.metadata_props[:]
    onnx.save(m, str(dst))
    return dst


def _onnx(model, tmp_path):
    from mono_depth_ros.export import export_onnx

    p = tmp_path / "exported" / "m.onnx"
    if not p.exists():
        export_onnx(model, p, check=False)
    return p


# ---- 3. predict never writes among its inputs; depth maps are not camera images -------------------
def test_predict_refuses_out_equal_input_folder_and_skips_depth_maps(model, tmp_path, capfd):
    nyu = tmp_path / "nyu"
    nyu.mkdir()
    _image(nyu / "a.png")
    cv2.imwrite(str(nyu / "a_depth.png"), np.full((150, 200), 2500, np.uint16))   # ground truth, 16-bit mm
    before = tree(nyu)
    rc = main(["predict", str(nyu), "--out", str(nyu), "--overwrite", "--model", str(model), "--quiet"])
    assert rc == 2 and "is the input folder" in one_error_line(capfd.readouterr().err)
    assert tree(nyu) == before
    out = tmp_path / "pred"
    rc = main(["predict", str(nyu), "--out", str(out), "--model", str(model), "--quiet", "--backend", "torch"])
    o, err = capfd.readouterr()
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a_color.png", "a_depth.npy", "a_depth.png"]
    assert "skipped 1" in o
    # the outputs of that run, given as input, are not camera images either (colour PNG of a depth, depth PNG)
    rc = main(["predict", str(out), str(nyu / "a.png"), "--out", str(tmp_path / "p3"), "--model", str(model),
               "--quiet", "--backend", "torch"])
    assert rc == 0 and sorted(p.name for p in (tmp_path / "p3").iterdir()) == ["a_color.png", "a_depth.npy",
                                                                               "a_depth.png"]
    capfd.readouterr()
    rc = main(["predict", str(nyu / "a_depth.png"), "--out", str(tmp_path / "p2"), "--model", str(model), "--quiet"])
    assert rc == 2 and "depth map" in one_error_line(capfd.readouterr().err)
    assert tree(nyu) == before and not (tmp_path / "p2").exists()


# ---- 4. interrupted predict: complete sets only, --skip-existing resumes -------------------------
def test_predict_frame_sets_are_atomic_and_resumable(model, tmp_path, capfd, monkeypatch):
    import mono_depth_ros.pointcloud as pc

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        _image(src / f"f{i}.png", seed=i)
    out = tmp_path / "out"
    real = pc.write_ply
    calls = []

    def ply_then_interrupt(path, cloud):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt   # Ctrl-C while the second frame's last file is written
        real(path, cloud)

    monkeypatch.setattr(pc, "write_ply", ply_then_interrupt)
    args = ["predict", str(src), "--out", str(out), "--model", str(model), "--quiet", "--backend", "torch",
            "--fx", "200", "--fy", "200"]
    rc = main(args)
    assert rc == 130 and "--skip-existing" in one_error_line(capfd.readouterr().err)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["f0.ply", "f0_color.png", "f0_depth.npy", "f0_depth.png"]   # no partial set, no temp file
    monkeypatch.setattr(pc, "write_ply", real)
    first = tree(out)
    rc = main(args)
    assert rc == 2 and "--skip-existing" in one_error_line(capfd.readouterr().err)
    assert tree(out) == first
    rc = main(args + ["--skip-existing"])
    o, err = capfd.readouterr()
    assert rc == 0 and "skipped 1 already done" in o, err
    assert len(list(out.iterdir())) == 12
    assert {k: v for k, v in tree(out).items() if k.startswith("f0")} == first


def test_predict_sigint_real_signal_exit_130_complete_sets(model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(150):   # far more than are processed before the signal: the run cannot finish first
        _image(src / f"f{i:03d}.png", w=320, h=240, seed=i)
    out = tmp_path / "out"
    rc, err = signal_when([sys.executable, "-m", "mono_depth_ros", "predict", str(src), "--out", str(out),
                           "--model", str(model), "--backend", "torch", "--quiet", "--fx", "300", "--fy", "300"],
                          lambda: out.is_dir() and len(list(out.glob("*.ply"))) >= 3, signal.SIGINT, poll=0.02)
    assert rc == 130, err
    one_error_line(err)
    stems = {p.name.split("_")[0].split(".")[0] for p in out.iterdir()}
    for s in stems:   # every frame has all four files or none
        assert sorted(p.name for p in out.glob(f"{s}[._]*")) == [f"{s}.ply", f"{s}_color.png", f"{s}_depth.npy",
                                                                  f"{s}_depth.png"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ---- 5. predict validates before touching the file system -------------------------------------
@pytest.mark.parametrize("extra, msg", [
    (["--min-depth", "10", "--max-depth", "1"], "--min-depth"),
    (["--scale", "0"], "--scale"),
    (["--model", "MISSING"], "does not exist"),
    (["--color-min", "5", "--color-max", "1"], "--color-min"),
])
def test_predict_creates_nothing_on_bad_options(model, tmp_path, capfd, extra, msg):
    img = _image(tmp_path / "a.png")
    extra = [str(tmp_path / "nope.pt") if e == "MISSING" else e for e in extra]
    argv = ["predict", str(img), "--out", str(tmp_path / "new"), "--quiet"] + extra
    if "--model" not in extra:
        argv += ["--model", str(model)]
    rc = main(argv)
    assert rc == 2 and msg in one_error_line(capfd.readouterr().err)
    assert not (tmp_path / "new").exists()


# ---- 6 + 8. training: signals exit 128 + n; resume and YAML errors are one line -------------------
def _train_cfg(tmp_path):
    import yaml

    cfg = {"profile": {"name": "tiny", "input_w": 160, "input_h": 120, "resize_w": 168, "resize_h": 126,
                       "fc_hidden": 64, "coarse_channels": [8, 16, 16, 16, 16], "fine_channels": 8, "dropout": 0.0},
           "data": {"train": {"type": "synthetic", "n": 8, "width": 168, "height": 126}},
           "train": {"batch_size": 2, "samples": {"coarse": 40000, "fine": 4}, "workers": 0, "log_every": 1,
                     "image_every": 0, "checkpoint_every": 0, "tensorboard": False, "progress": False}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_training_sigint_exits_130_with_checkpoint(tmp_path):
    cfg = _train_cfg(tmp_path)
    run = tmp_path / "run"
    rc, err = signal_when([sys.executable, "-m", "training.train", "--config", str(cfg), "--out", str(run)],
                          log_lines_at_least(run / "log.jsonl", 2), signal.SIGINT, timeout=90)
    assert rc == 130, err[-2000:]
    assert "--resume" in err and (run / "checkpoint.pt").is_file() and not (run / "model.pt").exists()


@pytest.mark.parametrize("content", [b"", b"this is text, not a checkpoint\n", "TRUNCATED"])
def test_train_resume_with_bad_checkpoint_is_one_line(tmp_path, capfd, content, model):
    from training.train import main as train_main

    cfg = _train_cfg(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    data = model.read_bytes()[:500] if content == "TRUNCATED" else content
    (run / "checkpoint.pt").write_bytes(data)
    before = tree(run)
    rc = train_main(["--config", str(cfg), "--out", str(run), "--resume", "--no-progress"])
    line = one_error_line(capfd.readouterr().err)
    assert rc == 2 and "checkpoint.pt" in line and "--resume" in line
    assert tree(run) == before


def test_train_malformed_yaml_and_typos_are_one_line_with_suggestions(tmp_path, capfd):
    from training.train import main as train_main

    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [\n")
    rc = train_main(["--config", str(bad), "--out", str(tmp_path / "r")])
    assert rc == 2 and "not valid YAML (line" in one_error_line(capfd.readouterr().err)
    cfg = _train_cfg(tmp_path)
    rc = train_main(["--config", str(cfg), "--out", str(tmp_path / "r"), "--set", "augment={presett: none}"])
    assert rc == 2 and "did you mean 'preset'" in one_error_line(capfd.readouterr().err)
    rc = train_main(["--config", str(cfg), "--out", str(tmp_path / "r"), "--set", "data.train.nn=4"])
    assert rc == 2 and "did you mean 'n'" in one_error_line(capfd.readouterr().err)
    rc = train_main(["--config", str(cfg), "--out", str(tmp_path / "r"),
                     "--set", "data.train={type: nyu_sync, rooot: /x}"])
    assert rc == 2 and "did you mean 'root'" in one_error_line(capfd.readouterr().err)
    assert not (tmp_path / "r").exists()


# ---- 7. foreign ONNX whose sidecar disagrees with the graph ----------------------------------------
def test_sidecar_size_conflict_is_one_line(model, onnx_model, tmp_path, capfd):
    img = _image(tmp_path / "a.png")
    ks = tmp_path / "ks.onnx"
    ks.write_bytes(onnx_model.read_bytes())
    (tmp_path / "ks.yaml").write_text("input_width: 320\ninput_height: 240\n")
    bag = tmp_path / "bag"
    demo.write_synthetic_bag(bag, n_frames=1, width=64, height=48, progress=False)
    for verb in (["predict", str(img), "--out", str(tmp_path / "p"), "--quiet"],
                 ["bag", str(bag), "--out", str(tmp_path / "b"), "--no-progress"],
                 ["bench", "--iters", "1", "--warmup", "0", "--no-pipeline"]):
        rc = main(verb + ["--model", str(ks)])
        line = one_error_line(capfd.readouterr().err)
        assert rc == 2 and "ks.yaml" in line and "overrides the embedded metadata" in line and "160x120" in line
    assert not (tmp_path / "p").exists() and not (tmp_path / "b").exists()


# ---- 9. an oversized image is refused from its header ---------------------------------------------
def _huge_png(path: Path, w: int, h: int) -> Path:
    """A real, valid 8-bit grey PNG of w x h zeros, written row by row (never the whole image in memory)."""
    def chunk(kind, data):
        c = kind + data
        return len(data).to_bytes(4, "big") + c + zlib.crc32(c).to_bytes(4, "big")

    comp = zlib.compressobj(1)
    row = b"\0" * (w + 1)
    parts = [comp.compress(row * 500) for _ in range(h // 500)] + [comp.compress(row * (h % 500)), comp.flush()]
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


def test_huge_image_refused_before_decoding(model, tmp_path, capfd):
    small = _huge_png(tmp_path / "small.png", 64, 48)
    assert cv2.imread(str(small), cv2.IMREAD_UNCHANGED).shape == (48, 64)   # the writer makes real PNGs
    huge = _huge_png(tmp_path / "huge.png", 20000, 20000)
    rc = main(["predict", str(huge), "--out", str(tmp_path / "p"), "--model", str(model), "--quiet"])
    line = one_error_line(capfd.readouterr().err)
    assert rc == 2 and "20000x20000" in line and "--max-pixels" in line
    assert not (tmp_path / "p").exists()


# ---- 10. messages that say the right thing -----------------------------------------------------
def test_messages_are_right(model, onnx_model, tmp_path, capfd):
    img = _image(tmp_path / "img.png")
    rc = main(["predict", str(img), "--out", str(img), "--model", str(model), "--quiet"])
    assert rc == 2 and "is not a folder" in one_error_line(capfd.readouterr().err)
    rc = main(["kitti2bag", str(img), "--out", str(tmp_path / "x"), "--no-progress"])
    assert rc == 2 and "is a file, not a KITTI drive folder" in one_error_line(capfd.readouterr().err)
    foreign = _foreign(onnx_model, tmp_path / "foreign.onnx")
    (tmp_path / "foreign.yaml").write_text("input_width: 160\ninput_height: 120\noutput: log_depth\n")
    rc = main(["quantize", "--model", str(foreign), "--out", str(tmp_path / "q.onnx")])
    line = one_error_line(capfd.readouterr().err)
    assert rc == 2 and "profile" not in line and "mono-depth export" in line
    # info checks its --image before it prints (or computes) anything
    rc = main(["info", "--model", str(model), "--image", str(tmp_path / "missing.png")])
    out, err = capfd.readouterr()
    assert rc == 2 and out == "" and "cannot read image" in one_error_line(err)


def test_kitti2bag_no_velodyne_needs_no_velo_calibration(tmp_path, capfd):
    from conftest import shared_path

    src = shared_path("kitti_raw_layout_repackaged", "2011_09_26")
    import shutil

    day = tmp_path / "2011_09_26"
    day.mkdir()
    shutil.copy(src / "calib_cam_to_cam.txt", day)
    drive = day / "2011_09_26_drive_9999_sync"
    shutil.copytree(src / drive.name / "image_02", drive / "image_02")
    rc = main(["kitti2bag", str(drive), "--out", str(tmp_path / "b"), "--no-velodyne", "--no-progress",
               "--max-frames", "1"])
    o, err = capfd.readouterr()
    assert rc == 0, err
    assert "camera_color_left -> camera_color_left_optical_frame" in o


def test_interrupted_bag_overwrite_says_old_bag_kept(tmp_path):
    from mono_depth_ros.bag.run import BagRunOptions, run_bag

    bag = tmp_path / "in"
    demo.write_synthetic_bag(bag, n_frames=2, width=64, height=48, progress=False)
    old = tmp_path / "old"
    demo.write_synthetic_bag(old, n_frames=1, width=64, height=48, progress=False)
    before = tree(old)
    logs = []

    def interrupt(rgb, intr):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bag(BagRunOptions(input=bag, output=old, overwrite=True, progress=False), infer=interrupt,
                log=logs.append)
    assert tree(old) == before
    assert any("left as it was" in m for m in logs) and not any("not created" in m for m in logs)


# ---- 11. which model, geometry warning, colour range ------------------------------------------------
def test_predict_says_model_warns_on_geometry_and_colours_the_frame_range(model, tmp_path, capfd):
    wide = _image(tmp_path / "street.png", w=1242, h=375)
    out = tmp_path / "p"
    rc = main(["predict", str(wide), "--out", str(out), "--model", str(model), "--quiet", "--backend", "torch"])
    o, err = capfd.readouterr()
    assert rc == 0 and "tiny.pt" in o
    assert err.count("warning:") == 1 and "1242x375" in err and "trained on" in err
    d = np.load(out / "street_depth.npy")
    col = cv2.imread(str(out / "street_color.png"))
    v = np.isfinite(d)
    # default: the frame's 2-98 % span the colour map: near and far pixels get clearly different colours
    near, far = d[v] <= np.percentile(d[v], 5), d[v] >= np.percentile(d[v], 95)
    assert np.abs(col[v][near].mean(0) - col[v][far].mean(0)).max() > 60
    rc = main(["predict", str(wide), "--out", str(out), "--model", str(model), "--quiet", "--backend", "torch",
               "--overwrite", "--color-min", "0", "--color-max", "80"])
    assert rc == 0
    col80 = cv2.imread(str(out / "street_color.png"))
    assert np.abs(col80[v][near].mean(0) - col80[v][far].mean(0)).max() < 30   # 0-80 m: one colour


# ---- 12. a new user's review: counts, thread limits, help texts, argparse, report verdicts -----------------
def test_one_frame_is_one_frame(model, tmp_path, capfd):
    """'1 frames' nowhere: kitti2bag and bag say '1 frame' (and '2 frames')."""
    from conftest import shared_path

    drive = shared_path("kitti_raw_layout_repackaged", "2011_09_26", "2011_09_26_drive_9999_sync")
    for n, word in (("1", "1 frame ("), ("2", "2 frames (")):
        rc = main(["kitti2bag", str(drive), "--out", str(tmp_path / f"k{n}"), "--no-velodyne", "--no-progress",
                   "--max-frames", n])
        o, err = capfd.readouterr()
        assert rc == 0 and word in o, (o, err)
    rc = main(["bag", str(tmp_path / "k2"), "--out", str(tmp_path / "d1"), "--model", str(model), "--backend", "torch",
               "--max-frames", "1", "--no-progress", "--threads", "0"])   # 0: the backend's default thread count
    o, err = capfd.readouterr()
    assert rc == 0 and f"wrote {tmp_path / 'd1'}: 1 frame;" in o, (o, err)
    from mono_depth_ros.cli import plural

    assert [plural(n, "frame") for n in (0, 1, 2)] == ["0 frames", "1 frame", "2 frames"]


def test_threads_zero_to_64_everywhere(model, tmp_path, capfd):
    """--threads takes the node parameter's range in every command; 0 (the backend's default) runs, on torch too."""
    from mono_depth_ros.commands import MAX_THREADS
    from mono_depth_ros.params import SPECS

    assert SPECS["threads"].range[:2] == (0, MAX_THREADS)
    img = _image(tmp_path / "img.png")
    for backend in ("torch", "onnxruntime"):
        rc = main(["predict", str(img), "--out", str(tmp_path / backend), "--model", str(model), "--quiet",
                   "--backend", backend, "--threads", "0"])
        o, err = capfd.readouterr()
        assert rc == 0 and "wrote depth for 1" in o, err


def _option_help(command: str, option: str) -> str:
    from mono_depth_ros.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return " ".join(next(a for a in sub._actions if option in a.option_strings).help.split())


def test_model_help_says_the_real_default():
    """Without --model, KITTI-shaped input runs road.pt (mono_depth_ros.default_models): every --model help says so."""
    from mono_depth_ros import default_models as dm
    from mono_depth_ros.commands import DEFAULT_MODEL_HELP

    lo, hi = dm.KITTI_ASPECT
    assert f"aspect {lo:.1f}-{hi:.1f}, at least {dm.KITTI_MIN_HEIGHT} rows" in DEFAULT_MODEL_HELP
    assert dm.ROAD_MODEL.name in DEFAULT_MODEL_HELP and dm.DEMO_MODEL.name in DEFAULT_MODEL_HELP
    for command in ("predict", "bag", "demo"):
        text = _option_help(command, "--model")
        assert "road.pt" in text and "demo.pt" in text and DEFAULT_MODEL_HELP in text, (command, text)
    assert "--scene street" in _option_help("demo", "--model")
    assert "0-64" in _option_help("predict", "--threads") and "0-64" in _option_help("bag", "--threads")


def test_argparse_errors_are_one_line_and_help_is_unchanged(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "x.png", "--out", "o", "--backend", "onnxrunitme"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "usage:" not in err
    assert one_error_line(err).startswith("mono-depth predict: error: argument --backend: invalid choice: "
                                          "'onnxrunitme' (choose from ")
    with pytest.raises(SystemExit) as exc:
        main(["bag", "in", "--out", "o", "--no-such-option"])
    line = one_error_line(capsys.readouterr().err)
    assert exc.value.code == 2 and line == ("mono-depth bag: error: unrecognized arguments: --no-such-option "
                                            "(see mono-depth bag --help)")
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and out.startswith("usage: mono-depth predict [-h]") and "--backend" in out


def test_eval_kitti_real_gives_a_verdict_per_target():
    from training.eval_kitti_real import target_verdicts

    lines = target_verdicts({"abs_rel": 0.403, "delta1": 0.487}, 0.589, 1.295)
    assert lines == ["AbsRel 0.403: 31.6 % below the mean-depth baseline's 0.589 (target: >= 30 % below): met",
                     "AbsRel 0.403: 68.9 % below the ground plane's 1.295 (target: below): met",
                     "delta1 0.487 (target >= 0.5): not met"]
    worse = target_verdicts({"abs_rel": 0.7, "delta1": 0.5}, 0.589, 0.6)
    assert worse[0].startswith("AbsRel 0.700: 18.8 % above the mean-depth baseline's") and worse[0].endswith(
        "not met")
    assert worse[1].endswith("(target: below): not met") and worse[2].endswith("): met")
    assert "+" not in " ".join(lines + worse)
