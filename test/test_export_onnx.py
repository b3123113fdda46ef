"""Export to ONNX (metadata, checker, overwrite), ONNX Runtime vs PyTorch parity, model specs (.pt, .onnx,
YAML sidecar for foreign models, .engine.json), the ONNX cache, and backend selection."""
from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
import torch

from mono_depth_ros.backends import BackendError, auto_order, create_backend
from mono_depth_ros.checkpoint import ModelFileError, save_model
from mono_depth_ros.export import cached_onnx, export_onnx
from mono_depth_ros.model import EigenDepthNet
from mono_depth_ros.model_spec import load_spec
from mono_depth_ros.pipeline import DepthPipeline
from mono_depth_ros.profiles import Profile

TINY = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
               fine_channels=8)
TINY_K = TINY.replace(name="tiny_kitti", fine_crop_h=80, min_depth=1e-3, max_depth=80.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    fine = EigenDepthNet(TINY).eval()
    with torch.no_grad():  # non-trivial outputs: perturb the small-init output layers
        fine.fine.f4.weight.normal_(0, 0.05)
        fine.coarse.c7.weight.normal_(0, 0.05)
    save_model(fine, d / "tiny.pt")
    torch.manual_seed(1)
    crop = EigenDepthNet(TINY_K).eval()
    save_model(crop, d / "tiny_kitti_coarse.pt", stage="coarse")
    return d, fine, crop


def test_export_metadata_checker_and_parity(models, tmp_path):
    d, fine, _ = models
    out = export_onnx(d / "tiny.pt", tmp_path / "tiny.onnx")
    m = onnx.load(str(out))
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version >= 17
    assert [i.name for i in m.graph.input] == ["image"] and [o.name for o in m.graph.output] == ["log_depth"]
    dims = [x.dim_value for x in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 120, 160]
    md = {p.key: p.value for p in m.metadata_props}
    assert Profile.from_dict(json.loads(md["mono_depth_ros.profile"])) == TINY
    assert md["mono_depth_ros.output"] == "log_depth" and md["mono_depth_ros.metric"] == "true"
    assert md["mono_depth_ros.stage"] == "fine"
    # ONNX Runtime vs PyTorch, fp32, on real-ish inputs: max abs diff of log depth < 1e-4
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 120, 160)).astype(np.float32)
    y = sess.run(None, {"image": x})[0]
    with torch.no_grad():
        ref = fine(torch.from_numpy(x)).numpy()
    assert y.shape == ref.shape == (1, 1, TINY.output_h, TINY.output_w)
    assert ref.std() > 0.01  # the check compares something that varies
    assert np.max(np.abs(y - ref)) < 1e-4
    # never overwrite without asking
    with pytest.raises(FileExistsError, match="overwrite"):
        export_onnx(d / "tiny.pt", out)
    export_onnx(d / "tiny.pt", out, overwrite=True)


def test_dynamic_batch_and_coarse_stage_and_backend_parity(models, tmp_path, monkeypatch):
    d, _, crop = models
    monkeypatch.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))
    out = export_onnx(d / "tiny_kitti_coarse.pt", tmp_path / "k.onnx", dynamic_batch=True)
    spec = load_spec(out)
    assert spec.kind == "onnx" and spec.stage == "coarse" and spec.profile == TINY_K
    ort_b = create_backend(spec, "onnxruntime", threads=1)
    torch_b = create_backend(d / "tiny_kitti_coarse.pt", "torch", device="cpu", threads=1)
    x = np.random.default_rng(1).standard_normal((3, 3, 120, 160)).astype(np.float32)
    a = ort_b.run(x).copy()
    assert a.shape == (3, 1, TINY_K.output_h, TINY_K.output_w)
    b = torch_b.run(x)
    with torch.no_grad():
        ref = crop(torch.from_numpy(x), stage="coarse").numpy()
    assert np.max(np.abs(a - ref)) < 1e-4 and np.max(np.abs(b - ref)) < 1e-5
    # batch 1 twice: the preallocated output buffer is reused and right
    y1 = ort_b.run(x[:1]).copy()
    y2 = ort_b.run(x[1:2])
    assert np.max(np.abs(y1 - ref[:1])) < 1e-4 and np.max(np.abs(y2 - ref[1:2])) < 1e-4


def test_onnx_cache_is_keyed_by_checkpoint_hash(models, tmp_path):
    d, _, _ = models
    p1 = cached_onnx(d / "tiny.pt", cache_dir=tmp_path)
    mtime = p1.stat().st_mtime_ns
    assert cached_onnx(d / "tiny.pt", cache_dir=tmp_path) == p1 and p1.stat().st_mtime_ns == mtime
    torch.manual_seed(5)
    save_model(EigenDepthNet(TINY).eval(), tmp_path / "tiny.pt")  # same name, other weights
    p2 = cached_onnx(tmp_path / "tiny.pt", cache_dir=tmp_path)
    assert p2 != p1 and p2.is_file()
    assert not list(tmp_path.glob("onnx/.*.tmp"))  # atomic: no temporary files left


def test_a_checkpoint_is_read_once_on_the_way_to_an_onnxruntime_session(models, tmp_path, monkeypatch):
    """load_spec reads the .pt once; the ONNX export, its cache key (SHA-256) and its source_sha256 come
    from the spec's payload and digest, not from reading the file again."""
    import builtins
    import hashlib
    import io
    import os
    import shutil
    from pathlib import Path

    d, fine, _ = models
    pt = tmp_path / "m.pt"
    shutil.copyfile(d / "tiny.pt", pt)  # a fresh path: no memoised hash from other tests
    opened = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):  # counts every Python-level open of the checkpoint
        if isinstance(file, (str, os.PathLike)) and Path(file).resolve() == pt.resolve():
            opened.append(args[0] if args else kwargs.get("mode", "r"))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)  # pathlib's read_bytes / open go through io.open
    be = create_backend(pt, "onnxruntime", cache_dir=tmp_path / "cache")
    assert opened == ["rb"]
    assert be.spec.payload is None  # dropped once the session holds the model: no second copy of the weights
    monkeypatch.setattr(builtins, "open", real_open)
    monkeypatch.setattr(io, "open", real_open)
    digest = hashlib.sha256(pt.read_bytes()).hexdigest()
    meta = {p.key: p.value for p in onnx.load(str(be.onnx_path)).metadata_props}
    assert meta["mono_depth_ros.source_sha256"] == digest and digest[:32] in be.onnx_path.name
    x = np.random.default_rng(0).standard_normal((1, 3, 120, 160)).astype(np.float32)
    with torch.no_grad():
        ref = fine(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(be.run(x) - ref)) < 1e-4
    # the released spec reads its file again when asked for the weights (e.g. another backend)
    assert be.spec.checkpoint_payload()["stage"] == "fine" and be.spec.sha256() == digest


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_foreign_onnx_with_yaml_sidecar(tmp_path, caplog):
    """A 'Depth Anything'-like model: 3-D inverse-depth output, own normalisation, relative depth."""

    class Foreign(torch.nn.Module):
        def forward(self, x):  # (B,3,96,128) -> (B,48,64) positive "disparity"
            return torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 2)[:, 0].abs() + 0.5

    path = tmp_path / "foreign.onnx"
    torch.onnx.export(Foreign(), (torch.zeros(1, 3, 96, 128),), str(path), dynamo=False, input_names=["pixel_values"],
                      output_names=["predicted_depth"], opset_version=17)
    with pytest.raises(ModelFileError, match="sidecar"):
        load_spec(path)
    (tmp_path / "foreign.yaml").write_text(
        "input_width: 128\ninput_height: 96\nmean: [0.5, 0.5, 0.5]\nstd: [0.5, 0.5, 0.5]\n"
        "output: inverse_depth\nmetric: false\nscale: 2.0\nmin_depth: 0.1\nmax_depth: 100\n")
    with caplog.at_level(logging.WARNING, logger="mono_depth_ros"):
        spec = load_spec(path)
    assert any("RELATIVE" in r.message for r in caplog.records)
    assert (spec.output, spec.metric, spec.scale, spec.foreign) == ("inverse_depth", False, 2.0, True)
    assert spec.input_name == "pixel_values" and spec.profile.mean == (0.5, 0.5, 0.5)
    pipe = DepthPipeline(path, backend="auto", output="network")
    assert pipe.backend_name == "onnxruntime" and not pipe.metric
    rgb = np.full((192, 256, 3), 255, np.uint8)  # normalised to 1.0 -> disparity 1.5 -> depth 2.0 / 1.5
    res = pipe.infer_rgb(rgb)
    assert res.depth.shape == (48, 64)
    np.testing.assert_allclose(res.depth, 2.0 / 1.5, rtol=1e-5)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(path.read_bytes())
    (tmp_path / "bad.yaml").write_text("input_width: 128\ninput_height: 96\noutput: disparity\n")
    with pytest.raises(ModelFileError, match="output must be one of"):
        load_spec(bad)
    (tmp_path / "bad.yaml").write_text("input_width: 128\ninput_hieght: 96\n")
    with pytest.raises(ModelFileError, match="unknown keys"):
        load_spec(bad)


def test_engine_metadata_and_backend_choice(models, tmp_path):
    d, _, _ = models
    eng = tmp_path / "x.engine"
    eng.write_bytes(b"not really an engine")
    with pytest.raises(ModelFileError, match="engine.json"):
        load_spec(eng)
    (tmp_path / "x.engine.json").write_text(json.dumps({"profile": TINY.to_dict(), "output": "log_depth",
                                                        "metric": True, "stage": "fine", "trt_version": "10.0"}))
    spec = load_spec(eng)
    assert spec.kind == "engine" and spec.profile == TINY and spec.extra["trt_version"] == "10.0"
    assert auto_order(spec) == ["tensorrt"]
    pt = load_spec(d / "tiny.pt")
    assert pt.kind == "checkpoint" and pt.stage == "fine" and pt.metric
    order = auto_order(pt, device="cpu")
    assert order == ["onnxruntime", "torch"]  # no TensorRT / CUDA on a CPU device
    try:
        import tensorrt  # noqa: F401
        has_trt = True
    except Exception:  # noqa: BLE001
        has_trt = False
    if not has_trt:
        with pytest.raises(BackendError, match="TensorRT backend unavailable"):
            create_backend(pt, "tensorrt")
    with pytest.raises(BackendError, match="unknown backend"):
        create_backend(pt, "openvino")
    with pytest.raises(BackendError, match="PyTorch backend runs"):
        create_backend(eng, "torch")
    with pytest.raises(BackendError, match="fp16 on CPU"):
        create_backend(pt, "torch", device="cpu", precision="fp16")
    with pytest.raises(BackendError, match="quantised"):
        create_backend(pt, "onnxruntime", precision="int8")
    # fp16 is refused before a checkpoint is exported: nothing is written to the ONNX cache
    with pytest.raises(BackendError, match="own precision"):
        create_backend(pt, "onnxruntime", precision="fp16", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.onnx"))
    with pytest.raises(ModelFileError, match="does not exist"):
        load_spec(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelFileError, match="corrupt"):
        load_spec(tmp_path / "junk.pt")


# ---- mono-depth export --engine --------------------------------------------------------------------
def test_export_engine_without_tensorrt_fails_cleanly_and_writes_nothing(models, tmp_path, capsys):
    from mono_depth_ros.cli import main
    from mono_depth_ros.export import tensorrt_unavailable

    reason = tensorrt_unavailable()
    if reason is None:
        pytest.skip("TensorRT and a CUDA GPU are available here: the missing-TensorRT path is not reachable")
    d, _, _ = models
    onnx_path = export_onnx(d / "tiny.pt", tmp_path / "src.onnx")
    for argv in (["--model", str(d / "tiny.pt"), "--out", str(tmp_path / "m.engine")],
                 ["--model", str(d / "tiny.pt"), "--out", str(tmp_path / "m.onnx"), "--engine"],
                 ["--model", str(d / "tiny.pt"), "--out", str(tmp_path / "m.engine"), "--precision", "int8"],
                 ["--model", str(onnx_path), "--out", str(tmp_path / "m.engine")]):
        assert main(["export"] + argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"mono-depth export: error: cannot build a TensorRT engine here: {reason}." in err
        assert "build the engine on the machine that runs it" in err
        if argv[1].endswith(".onnx"):     # already ONNX: no advice to export it to itself
            assert f"copy {onnx_path} and build" in err and "--out src.onnx" not in err
        # checked before exporting: no ONNX without its engine, no engine files
        assert sorted(p.name for p in tmp_path.iterdir()) == ["src.onnx"]
    # the library function says the same, before writing anything
    from mono_depth_ros.export import TensorRTUnavailable, export_engine

    with pytest.raises(TensorRTUnavailable, match="cannot build a TensorRT engine here"):
        export_engine(onnx_path, tmp_path / "m.engine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.onnx"]


@pytest.mark.parametrize("extra, msg", [
    (["--out", "m.onnx", "--precision", "fp16"], "--precision applies to TensorRT engines"),
    (["--out", "m.onnx", "--calib", "."], "--calib applies to TensorRT engines"),
    (["--out", "m.engine", "--calib", "."], "--calib is for --precision int8"),
    (["--out", "m.engine", "--precision", "int8", "--calib", "no_such_dir"], "calibration path no_such_dir"),
    (["--out", "m.engine", "--max-batch", "4"], "--max-batch > 1 needs --dynamic-batch"),
    (["--out", "m.engine", "--max-batch", "0"], "--max-batch must be >= 1"),
    (["--out", "m.txt", "--engine"], "--out must be X.onnx or X.engine"),
])
def test_export_engine_option_errors(models, tmp_path, capsys, monkeypatch, extra, msg):
    from mono_depth_ros.cli import main

    monkeypatch.chdir(tmp_path)
    d, _, _ = models
    assert main(["export", "--model", str(d / "tiny.pt")] + extra) == 2
    assert msg in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _fake_trt(monkeypatch, fail=False):
    """TensorRT stand-in for the export plumbing: 'builds' by writing bytes + the real sidecar."""
    from mono_depth_ros import export as export_mod
    from mono_depth_ros import trt_build as trtb
    from mono_depth_ros.model_cache import file_sha256 as sha256_file
    from mono_depth_ros.trt_engine import make_key, write_sidecar

    calls = []

    def build_engine(onnx_path, engine_path, precision="fp16", max_batch=1, calib=None, device=0, **kw):
        calls.append({"onnx": onnx_path, "engine": engine_path, "precision": precision, "calib": calib,
                      "max_batch": max_batch})
        if fail:
            raise trtb.EngineCacheError("TensorRT failed to build an engine (fake)")
        meta, name, shape = trtb.read_onnx_io(onnx_path)
        key = make_key(sha256_file(onnx_path), "10.fake", "Fake GPU", (9, 0), precision, {"max_batch": max_batch})
        engine_path.write_bytes(b"engine bytes " + precision.encode())
        write_sidecar(engine_path, key, onnx_path, meta, name, shape, build_seconds=0.1)
        return engine_path

    monkeypatch.setattr(export_mod, "tensorrt_unavailable", lambda: None)   # the CLI's check (re-exported)
    monkeypatch.setattr(trtb, "tensorrt_unavailable", lambda: None)         # export_engine's
    monkeypatch.setattr(trtb, "build_engine", build_engine)
    return calls


def test_export_engine_writes_onnx_engine_and_sidecar(models, tmp_path, capsys, monkeypatch):
    from mono_depth_ros.cli import main
    from mono_depth_ros.trt_engine import read_sidecar

    calls = _fake_trt(monkeypatch)
    d, _, _ = models
    eng = tmp_path / "out" / "m.engine"
    assert main(["export", "--model", str(d / "tiny.pt"), "--out", str(eng), "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {eng} + m.engine.json" in out and "TensorRT 10.fake, fp16, Fake GPU (sm 9.0)" in out
    assert sorted(p.name for p in eng.parent.iterdir()) == ["m.engine", "m.engine.json", "m.onnx"]  # no temp left
    assert calls[0]["onnx"] == eng.with_suffix(".onnx") and calls[0]["precision"] == "fp16"
    side = read_sidecar(eng)
    assert side["onnx"] == str(eng.with_suffix(".onnx").resolve()) and side["key_fields"]["precision"] == "fp16"
    spec = load_spec(eng)                     # the engine + sidecar describe the model on their own
    assert spec.kind == "engine" and spec.profile == TINY and spec.stage == "fine"
    # existing outputs are not replaced without --overwrite; with it, a failed build keeps the old engine
    assert main(["export", "--model", str(d / "tiny.pt"), "--out", str(eng), "--no-verify"]) == 2
    assert "m.onnx exists; refusing to overwrite it" in capsys.readouterr().err
    calls = _fake_trt(monkeypatch, fail=True)
    assert main(["export", "--model", str(eng.with_suffix(".onnx")), "--out", str(eng), "--overwrite",
                 "--precision", "int8", "--calib", str(tmp_path)]) == 2
    assert "failed to build an engine (fake)" in capsys.readouterr().err
    assert eng.read_bytes() == b"engine bytes fp16" and read_sidecar(eng)["key_fields"]["precision"] == "fp16"
    assert calls[0]["calib"] == [str(tmp_path)] and calls[0]["precision"] == "int8"
    assert sorted(p.name for p in eng.parent.iterdir()) == ["m.engine", "m.engine.json", "m.onnx"]
    # --out X.onnx --engine: the engine goes beside the ONNX
    _fake_trt(monkeypatch)
    assert main(["export", "--model", str(d / "tiny.pt"), "--out", str(tmp_path / "b.onnx"), "--engine",
                 "--precision", "fp32"]) == 0
    assert "ONNX Runtime vs PyTorch max |diff|" in capsys.readouterr().out
    assert read_sidecar(tmp_path / "b.engine")["key_fields"]["precision"] == "fp32"


def test_onnxruntime_sessions_do_not_spin_between_parallel_sections():
    """The node shares two cores with the camera driver, DDS and its own publishing thread: ORT's
    spinning intra-op workers took those cores (docs/performance.md, 2026-12-03 run)."""
    import onnxruntime as ort

    from mono_depth_ros.backends.onnxruntime_backend import _session_options

    so = _session_options(ort, 2)
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.intra_op_num_threads == 2
