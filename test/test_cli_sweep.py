"""The bad-input sweep of issue 11: every CLI verb (mono-depth predict, export, quantize, bench, bag, kitti2bag,
demo, info; python -m training.train / training.evaluate) x bad inputs (missing, empty, truncated and
wrong-type files; out == in; existing outputs) -> a non-zero exit, exactly one line on stderr (captured at the
file-descriptor level, so C libraries' noise counts too) without "Traceback", and the whole work tree
byte-identical afterwards (nothing written, nothing changed). A case with a fourth element also says what the line
must contain, and is refused before anything runs (nothing on stdout: no model loaded, no file read). In-process
(``main(argv)``), one fixture set per module. ``SWEEP_TABLE=path`` writes the table (verb, case, exit, message) as
markdown."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from mono_depth_ros import demo
from mono_depth_ros.checkpoint import save_model
from mono_depth_ros.model import EigenDepthNet
from mono_depth_ros.profiles import Profile

TINY = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
               fine_channels=8, min_depth=0.1, max_depth=10.0, resize_w=160, resize_h=120)
DRIVE = SHARED_DATA / "kitti_raw_layout_repackaged" / "2011_09_26"
ROWS: list = []


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


def _bad(root: Path, good: Path, kind: str, suffix: str) -> str:
    """A bad variant of ``good``: missing / empty / truncated (first half) / wrong-type (text)."""
    p = root / "bad" / f"{kind}_{good.stem}{suffix}"
    p.parent.mkdir(exist_ok=True)
    if kind == "missing":
        return str(p)
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        if good.is_dir():   # a bag folder with its .mcap cut in half
            p.mkdir(exist_ok=True)
            for f in good.iterdir():
                b = f.read_bytes()
                (p / f.name).write_bytes(b[:len(b) // 2] if f.suffix == ".mcap" else b)
        else:
            b = good.read_bytes()
            p.write_bytes(b[:len(b) // 2])
    else:
        p.write_text("this is a note, not the file you are looking for\n")
    return str(p)


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    torch.manual_seed(0)
    pt = root / "tiny.pt"
    save_model(EigenDepthNet(TINY).eval(), pt)
    from mono_depth_ros.export import export_onnx

    onnx = export_onnx(pt, root / "tiny.onnx", check=False)
    imgs = root / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    img = imgs / "img.png"
    cv2.imwrite(str(img), cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (160, 120)))
    bag = root / "bag"
    demo.write_synthetic_bag(bag, n_frames=2, width=64, height=48, progress=False)
    demo.write_synthetic_bag(root / "old_bag", n_frames=1, width=64, height=48, progress=False)
    pred = root / "pred"      # outputs of an earlier run (the "existing outputs" case)
    from mono_depth_ros.cli import main

    assert main(["predict", str(img), "--out", str(pred), "--model", str(pt), "--quiet", "--backend", "torch"]) == 0
    (root / "user_dir").mkdir()
    (root / "user_dir" / "notes.txt").write_text("mine")
    (root / "user_file.txt").write_text("mine too")
    (root / "existing.onnx").write_bytes(b"an older export the user keeps")
    (root / "bench.json").write_text("{}")
    (root / "eval.json").write_text("{}")
    drive = None
    if DRIVE.is_dir():
        shutil.copytree(DRIVE, root / "2011_09_26")
        drive = root / "2011_09_26" / "2011_09_26_drive_9999_sync"
        shutil.rmtree(drive / "velodyne_points")
        shutil.rmtree(drive / "oxts", ignore_errors=True)
        (root / "drive_trunc").mkdir()
        shutil.copytree(drive, root / "drive_trunc" / drive.name)
        for f in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
            shutil.copy(drive.parent / f, root / "drive_trunc")
        png = sorted((root / "drive_trunc" / drive.name / "image_02" / "data").glob("*.png"))[-1]
        png.write_bytes(png.read_bytes()[:200])
        (root / "empty_drive").mkdir()
    run = root / "run"
    run.mkdir()
    import yaml

    cfg = {"profile": {"name": "tiny", "input_w": 160, "input_h": 120, "resize_w": 168, "resize_h": 126,
                       "fc_hidden": 64, "coarse_channels": [8, 16, 16, 16, 16], "fine_channels": 8},
           "data": {"train": {"type": "synthetic", "n": 4, "width": 168, "height": 126}},
           "train": {"batch_size": 2, "samples": {"coarse": 2, "fine": 2}, "workers": 0, "tensorboard": False,
                     "progress": False}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (root / "done_run").mkdir()
    (root / "done_run" / "model.pt").write_bytes(pt.read_bytes())   # "a run is there" for the existing case
    return {"root": root, "pt": pt, "onnx": onnx, "img": img, "imgs": imgs, "bag": bag, "pred": pred,
            "drive": drive}


KINDS = ("missing", "empty", "truncated", "wrong-type")
NOT_A_BAG = "exists and is not a rosbag2 bag"   # said at once, not "pass --overwrite" first


def _cases(w):
    r, pt, onnx, img, bag = w["root"], w["pt"], w["onnx"], w["img"], w["bag"]
    new = str(r / "new_out")
    c = []
    P = ["--quiet", "--backend", "torch"]
    for k in KINDS:
        c.append(("predict", f"image {k}", ["predict", _bad(r, img, k, ".png"), "--out", new, "--model", str(pt)] + P))
        c.append(("predict", f"model {k}", ["predict", str(img), "--out", new, "--model", _bad(r, pt, k, ".pt")] + P))
    c += [("predict", f"--threads {n}", ["predict", str(img), "--out", new, "--model", str(pt), "--threads", n] + P,
           "--threads must be 0-64") for n in ("-3", "65")]
    c += [("predict", "out == input file", ["predict", str(img), "--out", str(img), "--model", str(pt)] + P),
          ("predict", "out == input folder", ["predict", str(w["imgs"]), "--out", str(w["imgs"]), "--overwrite",
                                              "--model", str(pt)] + P),
          ("predict", "existing outputs", ["predict", str(img), "--out", str(w["pred"]), "--model", str(pt)] + P)]
    for k in KINDS:
        c.append(("export", f"model {k}", ["export", "--model", _bad(r, pt, k, ".pt"), "--out", new + ".onnx"]))
    c += [("export", "out == in (--overwrite)", ["export", "--model", str(pt), "--out", str(pt), "--overwrite"]),
          ("export", "existing output", ["export", "--model", str(pt), "--out", str(r / "existing.onnx")]),
          ("export", "wrong output type", ["export", "--model", str(pt), "--out", str(r / "x.txt")])]
    for k in KINDS:
        c.append(("quantize", f"model {k}", ["quantize", "--model", _bad(r, onnx, k, ".onnx"), "--out", new + ".onnx"]))
    c += [("quantize", "out == in (--overwrite)", ["quantize", "--model", str(onnx), "--out", str(onnx),
                                                   "--overwrite"]),
          ("quantize", "existing output", ["quantize", "--model", str(onnx), "--out", str(r / "existing.onnx")])]
    B = ["--iters", "1", "--warmup", "0", "--no-pipeline"]
    for k in KINDS:
        c.append(("bench", f"model {k}", ["bench", "--model", _bad(r, onnx, k, ".onnx")] + B))
    c.append(("bench", "existing --json", ["bench", "--model", str(onnx), "--json", str(r / "bench.json")] + B))
    for k in KINDS:
        c.append(("bag", f"input {k}", ["bag", _bad(r, bag, k, "" if k == "truncated" else ".mcap"), "--out", new,
                                        "--no-progress", "--model", str(pt)]))
        c.append(("bag", f"model {k}", ["bag", str(bag), "--out", new, "--no-progress", "--model",
                                        _bad(r, pt, k, ".pt")]))
    c += [("bag", "out == in (--overwrite)", ["bag", str(bag), "--out", str(bag), "--overwrite", "--no-progress"]),
          ("bag", "existing output (not a bag, --overwrite)", ["bag", str(bag), "--out", str(r / "user_dir"),
                                                              "--overwrite", "--no-progress"], NOT_A_BAG),
          ("bag", "existing output (a folder, not a bag)", ["bag", str(bag), "--out", str(r / "user_dir"),
                                                            "--no-progress"], NOT_A_BAG),
          ("bag", "existing output (a file)", ["bag", str(bag), "--out", str(r / "user_file.txt"), "--no-progress"],
           NOT_A_BAG),
          ("bag", "existing output bag", ["bag", str(bag), "--out", str(r / "old_bag"), "--no-progress"],
           "exists; refusing to overwrite it (pass --overwrite)")]
    for opt, v, msg in (("--max-frames", "0", "--max-frames must be >= 1"),
                        ("--max-frames", "-1", "--max-frames must be >= 1"),
                        ("--threads", "-1", "--threads must be 0-64"), ("--threads", "65", "--threads must be 0-64"),
                        ("--gt-max-dt", "-1", "--gt-max-dt must be >= 0"),
                        ("--gt-depth-scale", "0", "--gt-depth-scale must be > 0")):
        c.append(("bag", f"{opt} {v}", ["bag", str(bag), "--out", new, "--no-progress", "--eval", opt, v], msg))
    if w["drive"] is not None:
        d = w["drive"]
        c += [("kitti2bag", "drive missing", ["kitti2bag", str(r / "nope_drive"), "--out", new, "--no-progress"]),
              ("kitti2bag", "drive empty", ["kitti2bag", str(r / "empty_drive"), "--out", new, "--no-progress",
                                            "--calib-dir", str(d.parent)]),
              ("kitti2bag", "drive truncated (image)", ["kitti2bag", str(r / "drive_trunc" / d.name), "--out", new,
                                                        "--no-progress", "--no-velodyne"]),
              ("kitti2bag", "drive wrong-type (a file)", ["kitti2bag", str(img), "--out", new, "--no-progress"]),
              ("kitti2bag", "out == in (--overwrite)", ["kitti2bag", str(d), "--out", str(d), "--overwrite",
                                                        "--no-progress", "--no-velodyne"]),
              ("kitti2bag", "existing output", ["kitti2bag", str(d), "--out", str(r / "user_dir"),
                                                "--no-progress", "--no-velodyne"], NOT_A_BAG),
              ("kitti2bag", "existing output (a file, --overwrite)", ["kitti2bag", str(d), "--out",
                                                                     str(r / "user_file.txt"), "--no-progress",
                                                                     "--no-velodyne", "--overwrite"], NOT_A_BAG),
              ("kitti2bag", "--start -1", ["kitti2bag", str(d), "--out", new, "--no-progress", "--no-velodyne",
                                            "--start", "-1"],
               "--start must be >= 0")]
        c += [("kitti2bag", f"--max-frames {n}", ["kitti2bag", str(d), "--out", new, "--no-progress", "--no-velodyne",
                                                  "--max-frames", n], "--max-frames must be >= 1") for n in ("0", "-1")]
    D = ["--out", str(r / "demo_out"), "--no-progress", "--frames", "2", "--size", "64x48", "--heldout", "0"]
    for k in KINDS:
        c.append(("demo", f"model {k}", ["demo", "--model", _bad(r, pt, k, ".pt")] + D))
        c.append(("demo", f"input {k}", ["demo", "--input", _bad(r, bag, k, "" if k == "truncated" else ".mcap")] + D))
    c.append(("demo", "existing output (not the demo's)", ["demo", "--out", str(r / "user_dir"), "--no-progress",
                                                           "--frames", "2", "--size", "64x48", "--heldout", "0"]))
    c += [("bench", "--threads -2", ["bench", "--threads", "-2"] + B, "--threads must be 0-64"),
          ("demo", "--threads -1", ["demo", "--threads", "-1"] + D, "--threads must be 0-64")]
    folder = str(r / "user_dir")   # a folder given as the model file
    for verb, argv in (("predict", ["predict", str(img), "--out", new, "--model", folder] + P),
                       ("bag", ["bag", str(bag), "--out", new, "--no-progress", "--model", folder]),
                       ("export", ["export", "--model", folder, "--out", new + ".onnx"]),
                       ("quantize", ["quantize", "--model", folder, "--out", new + ".onnx"]),
                       ("bench", ["bench", "--model", folder] + B),
                       ("demo", ["demo", "--model", folder] + D),
                       ("info", ["info", "--model", folder])):
        c.append((verb, "model is a folder", argv, f"--model {folder} is a folder, not a model file"))
    # argparse's own errors: one line, no usage dump
    c += [("predict", "invalid choice", ["predict", str(img), "--out", new, "--backend", "onnxrunitme"],
           "mono-depth predict: error: argument --backend: invalid choice: 'onnxrunitme' (choose from"),
          ("predict", "missing --out", ["predict", str(img)], "the following arguments are required: --out"),
          ("predict", "not a number", ["predict", str(img), "--out", new, "--threads", "many"],
           "argument --threads: invalid int value: 'many'"),
          ("bag", "unknown option", ["bag", str(bag), "--out", new, "--max-frame-rate", "1"],
           "mono-depth bag: error: unrecognized arguments: --max-frame-rate 1"),
          ("mono-depth", "unknown command", ["predcit", str(img)], "mono-depth: error: argument COMMAND: invalid "
                                                                  "choice: 'predcit'")]
    for k in KINDS:
        c.append(("info", f"model {k}", ["info", "--model", _bad(r, pt, k, ".pt")]))
        c.append(("info", f"image {k}", ["info", "--model", str(pt), "--image", _bad(r, img, k, ".png")]))
    T = ["--out", str(r / "new_run"), "--no-progress"]
    for k in KINDS:
        c.append(("training.train", f"config {k}", ["T", "--config", _bad(r, r / "cfg.yaml", k, ".yaml")] + T))
    for k in KINDS:
        rd = r / f"resume_{k}"
        rd.mkdir(exist_ok=True)
        if k != "missing":
            src = _bad(r, w["pt"], k, ".pt")
            shutil.copy(src, rd / "checkpoint.pt")
        c.append(("training.train", f"--resume checkpoint {k}", ["T", "--config", str(r / "cfg.yaml"), "--out",
                                                                 str(rd), "--resume", "--no-progress"]))
    c.append(("training.train", "existing run", ["T", "--config", str(r / "cfg.yaml"), "--out", str(r / "done_run"),
                                                 "--no-progress"]))
    E = ["--dataset", "synthetic", "--synthetic", json.dumps({"n": 2, "width": 168, "height": 126}), "--workers", "0"]
    for k in KINDS:
        c.append(("training.evaluate", f"checkpoint {k}", ["E", "--checkpoint", _bad(r, pt, k, ".pt"), "--out",
                                                           new + ".json"] + E))
    c.append(("training.evaluate", "existing --out", ["E", "--checkpoint", str(pt), "--out", str(r / "eval.json")]
              + E))
    return c


def _run(argv):
    if argv[0] == "T":
        from training.train import main

        return main(argv[1:])
    if argv[0] == "E":
        from training.evaluate import main

        return main(argv[1:])
    from mono_depth_ros.cli import main

    return main(argv)


def test_every_verb_with_bad_inputs(w, capfd, monkeypatch):
    monkeypatch.chdir(w["root"])
    cases = _cases(w)
    failures = []
    capfd.readouterr()
    for verb, case, argv, *expect in cases:
        before = _tree(w["root"])
        crash = ""
        try:
            rc = _run(argv)
        except SystemExit as exc:   # argparse
            rc = exc.code
        except Exception as exc:  # noqa: BLE001 - what a user would see as a traceback
            rc, crash = "traceback", f"Traceback: {type(exc).__name__}: {exc}"
        out, err = capfd.readouterr()
        err += crash
        lines = [ln for ln in err.splitlines() if ln.strip()]
        msg = lines[0] if lines else ""
        ROWS.append((verb, case, rc, " / ".join(lines)))
        after = _tree(w["root"])
        problems = []
        if not rc:
            problems.append(f"exit {rc}")
        if len(lines) != 1 or "Traceback" in err:
            problems.append(f"{len(lines)} stderr lines")
        if expect and expect[0] not in msg:
            problems.append(f"the line does not say {expect[0]!r}")
        if expect and out.strip():
            problems.append(f"ran before refusing (stdout {out.strip()[:200]!r})")
        if after != before:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            problems.append(f"tree changed: {changed[:3]}")
        if problems:
            failures.append(f"{verb} / {case}: {'; '.join(problems)}; stderr: {err[-600:]!r}")
    table = os.environ.get("SWEEP_TABLE")
    if table:
        root = str(w["root"]) + "/"
        with open(table, "w", encoding="utf-8") as f:
            f.write("| verb | bad input | exit | message (stderr) |\n|---|---|---|---|\n")
            for verb, case, rc, msg in ROWS:
                f.write(f"| {verb} | {case} | {rc} | {msg.replace(root, '').replace('|', '/')} |\n")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 60
