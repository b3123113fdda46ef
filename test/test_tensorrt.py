"""TensorRT backend: engine cache logic (pure Python, runs everywhere), the mypy check against
tensorrt-stubs, and runtime tests that skip where TensorRT / a CUDA GPU is not available."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest

from mono_depth_ros import trt_engine
from mono_depth_ros.trt_engine import (EngineCacheError, cached_engine_path, engine_metadata, make_key,
                                       read_sidecar, resolve_engine, sidecar_path, write_sidecar)

ROOT = Path(__file__).resolve().parents[1]


def _trt_available() -> Optional[str]:
    """None when TensorRT + CUDA can run here, else the reason to skip."""
    try:
        import tensorrt
    except ImportError:
        return "tensorrt is not installed (TensorRT 10 needs an NVIDIA GPU machine)"
    if not hasattr(tensorrt, "Builder"):
        return "only the tensorrt type stubs are installed, not TensorRT itself"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    return None


TRT_SKIP = _trt_available()


# ---- cache key ----------------------------------------------------------------------------------
def _key(**kw):
    args = dict(onnx_sha256="a" * 64, trt_version="10.13.0.35", gpu_name="NVIDIA H100 80GB HBM3",
                compute_capability=(9, 0), precision="fp16", options={"max_batch": 1})
    args.update(kw)
    return make_key(**args)


def test_key_changes_with_every_field_and_only_then():
    base = _key()
    assert base.digest == _key().digest
    assert base.compute_capability == "9.0"
    variants = [_key(onnx_sha256="b" * 64), _key(trt_version="10.3.0"), _key(gpu_name="NVIDIA A100"),
                _key(compute_capability=(8, 0)), _key(precision="int8"), _key(options={"max_batch": 8})]
    digests = {v.digest for v in variants}
    assert base.digest not in digests and len(digests) == len(variants)
    # option order does not matter
    assert _key(options={"a": 1, "b": 2}).digest == _key(options={"b": 2, "a": 1}).digest
    with pytest.raises(ValueError, match="precision"):
        _key(precision="fp8")


def test_cached_engine_path_is_stable_and_distinguishes_models(tmp_path):
    a = tmp_path / "a" / "model.onnx"
    b = tmp_path / "b" / "model.onnx"
    pa = cached_engine_path(a, "fp16", tmp_path / "cache")
    assert pa == cached_engine_path(a, "fp16", tmp_path / "cache")
    assert pa.parent == tmp_path / "cache" and pa.name.startswith("model-") and pa.name.endswith(".fp16.engine")
    assert pa != cached_engine_path(b, "fp16", tmp_path / "cache")
    assert pa != cached_engine_path(a, "int8", tmp_path / "cache")


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MONO_DEPTH_CACHE", raising=False)
    monkeypatch.setenv("MONO_DEPTH_TRT_CACHE", str(tmp_path / "x"))
    assert trt_engine.default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("MONO_DEPTH_TRT_CACHE")
    monkeypatch.setenv("MONO_DEPTH_CACHE", str(tmp_path / "root"))
    assert trt_engine.default_cache_dir() == tmp_path / "root" / "trt"
    monkeypatch.delenv("MONO_DEPTH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert trt_engine.default_cache_dir() == tmp_path / "xdg" / "mono_depth_ros" / "trt"


# ---- sidecar --------------------------------------------------------------------------------------
def test_sidecar_roundtrip_and_bad_sidecars(tmp_path):
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"engine")
    meta = {"mono_depth_ros.profile": json.dumps({"name": "nyu"}), "mono_depth_ros.metric": "true"}
    key = _key()
    p = write_sidecar(eng, key, tmp_path / "m.onnx", meta, "image", (1, 3, 228, 304), build_seconds=12.345)
    assert p == sidecar_path(eng) == tmp_path / "m.engine.json"
    doc = read_sidecar(eng)
    assert doc is not None
    assert doc["key"] == key.digest and doc["key_fields"]["gpu_name"] == "NVIDIA H100 80GB HBM3"
    assert doc["onnx"] == str((tmp_path / "m.onnx").resolve())
    assert doc["input_name"] == "image" and doc["input_shape"] == [1, 3, 228, 304]
    assert doc["build_seconds"] == 12.35
    assert engine_metadata(eng) == meta
    p.write_text("{not json")
    assert read_sidecar(eng) is None and engine_metadata(eng) == {}
    p.write_text(json.dumps({"format": "something else", "key": "x"}))
    assert read_sidecar(eng) is None
    p.unlink()
    assert read_sidecar(eng) is None


# ---- load-or-build decision ------------------------------------------------------------------------
class FakeTRT:
    """Stands in for TensorRT: 'engines' are bytes tagged with the ONNX content; b'garbage' is corrupt."""

    def __init__(self, version: str = "10.13.0.35", gpu: str = "GPU A"):
        self.version, self.gpu = version, gpu
        self.builds: List[Path] = []

    def key_for(self, sha):
        return make_key(sha, self.version, self.gpu, (9, 0), "fp16")

    def build(self, onnx: Path) -> bytes:
        self.builds.append(onnx)
        return b"ENGINE:" + onnx.read_bytes()

    @staticmethod
    def deserialize(data: bytes):
        return ("engine", data) if data.startswith(b"ENGINE:") else None

    def resolve(self, eng, onnx):
        return resolve_engine(eng, onnx, self.key_for, self.build, self.deserialize,
                              metadata={"mono_depth_ros.output": "log_depth"}, input_info=("image", (1, 3, 8, 8)))


def test_build_once_then_cache_hit(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx v1")
    eng = tmp_path / "cache" / "m.fp16.engine"
    fake = FakeTRT()
    r1 = fake.resolve(eng, onnx)
    assert r1.built and eng.read_bytes() == b"ENGINE:onnx v1" and len(fake.builds) == 1
    assert r1.sidecar["mono_depth_ros.output"] == "log_depth"
    assert r1.sidecar["key"] == fake.key_for(trt_engine.sha256_file(onnx)).digest
    r2 = fake.resolve(eng, onnx)
    assert not r2.built and r2.reason == "cache hit" and len(fake.builds) == 1
    assert r2.engine == ("engine", b"ENGINE:onnx v1")


@pytest.mark.parametrize("change", ["trt_version", "gpu_name", "onnx"])
def test_rebuild_when_key_changes(tmp_path, change):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx v1")
    eng = tmp_path / "m.engine"
    FakeTRT().resolve(eng, onnx)
    fake = FakeTRT(version="10.14.0") if change == "trt_version" else \
        FakeTRT(gpu="GPU B") if change == "gpu_name" else FakeTRT()
    if change == "onnx":
        onnx.write_bytes(b"onnx v2")
    r = fake.resolve(eng, onnx)
    assert r.built and len(fake.builds) == 1
    assert ("onnx_sha256" if change == "onnx" else change) in r.reason
    assert eng.read_bytes() == b"ENGINE:" + onnx.read_bytes()
    assert read_sidecar(eng)["key"] == fake.key_for(trt_engine.sha256_file(onnx)).digest
    assert not fake.resolve(eng, onnx).built  # and now it is cached again


def test_corrupt_engine_is_rebuilt_from_onnx(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx v1")
    eng = tmp_path / "m.engine"
    fake = FakeTRT()
    fake.resolve(eng, onnx)
    eng.write_bytes(b"garbage")  # truncated / overwritten, sidecar still says the key is current
    r = fake.resolve(eng, onnx)
    assert r.built and "corrupt" in r.reason and eng.read_bytes() == b"ENGINE:onnx v1"


def test_corrupt_engine_without_onnx_is_refused_with_the_fix(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx v1")
    eng = tmp_path / "m.engine"
    fake = FakeTRT()
    fake.resolve(eng, onnx)
    onnx.unlink()
    assert not fake.resolve(eng, onnx).built  # a current engine needs no ONNX
    eng.write_bytes(b"garbage")
    with pytest.raises(EngineCacheError) as ei:
        fake.resolve(eng, onnx)
    msg = str(ei.value)
    assert str(eng) in msg and "corrupt" in msg and "does not exist" in msg and "Fix:" in msg
    assert len(fake.builds) == 1


def test_mismatched_engine_without_onnx_is_refused(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx v1")
    eng = tmp_path / "m.engine"
    FakeTRT().resolve(eng, onnx)
    with pytest.raises(EngineCacheError, match=r"trt_version '10.13.0.35' -> '10.14.0'.*Fix:"):
        FakeTRT(version="10.14.0").resolve(eng, None)
    assert eng.read_bytes() == b"ENGINE:onnx v1"  # nothing was overwritten


def test_engine_without_sidecar(tmp_path):
    eng = tmp_path / "foreign.engine"
    eng.write_bytes(b"ENGINE:foreign")
    r = FakeTRT().resolve(eng, None)  # deserializes: used as is, unverified
    assert not r.built and "unverified" in r.reason
    eng.write_bytes(b"garbage")
    with pytest.raises(EngineCacheError, match="foreign.engine"):
        FakeTRT().resolve(eng, None)


def test_missing_engine_and_onnx(tmp_path):
    with pytest.raises(EngineCacheError, match="no cached engine"):
        FakeTRT().resolve(tmp_path / "x.engine", tmp_path / "x.onnx")


# ---- backend module without TensorRT ---------------------------------------------------------------
def test_backend_module_imports_without_tensorrt_and_fails_clearly(tmp_path):
    from mono_depth_ros.backends import tensorrt_backend as tb

    assert tb.TensorRTBackend.name == "tensorrt"
    if TRT_SKIP is None:
        pytest.skip("TensorRT is installed here; the missing-TensorRT message is not reachable")
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(RuntimeError, match="(?i)tensorrt"):
        tb.TensorRTBackend(onnx)


def test_engine_path_resolution_for_engine_files(tmp_path):
    from mono_depth_ros.backends.tensorrt_backend import _engine_and_onnx_paths

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    eng, src = _engine_and_onnx_paths(onnx, "fp16", tmp_path / "c")
    assert src == onnx and eng == cached_engine_path(onnx, "fp16", tmp_path / "c")
    user_eng = tmp_path / "out" / "m.engine"
    user_eng.parent.mkdir()
    user_eng.write_bytes(b"e")
    assert _engine_and_onnx_paths(user_eng, "fp16", None) == (user_eng, None)
    write_sidecar(user_eng, _key(), onnx)
    assert _engine_and_onnx_paths(user_eng, "fp16", None) == (user_eng, onnx.resolve())


def test_ort_quantised_model_is_refused_for_tensorrt(tmp_path):
    from mono_depth_ros.backends.tensorrt_backend import check_onnx_for_tensorrt

    check_onnx_for_tensorrt({"mono_depth_ros.output": "log_depth"}, tmp_path / "m.onnx")
    with pytest.raises(EngineCacheError, match=r"m\.int8\.onnx was quantised for ONNX Runtime.*fp32 ONNX"):
        check_onnx_for_tensorrt({"mono_depth_ros.quantization": "{}"}, tmp_path / "m.int8.onnx")


# ---- static type check --------------------------------------------------------------------------------
def test_tensorrt_backend_typechecks_against_stubs():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    if importlib.util.find_spec("tensorrt_stubs") is None:
        pytest.skip("tensorrt-stubs is not installed")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "typecheck_tensorrt.py"),
                        "mono_depth_ros/backends/tensorrt_backend.py", "mono_depth_ros/trt_engine.py"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


# ---- runtime (GPU machines with TensorRT only) ---------------------------------------------------------
def _tiny_profile():
    from mono_depth_ros.profiles import Profile

    return Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
                   fine_channels=8)


@pytest.fixture
def tiny_onnx(tmp_path):
    """A tiny model exported with the project's exporter: (onnx path, input, PyTorch reference output)."""
    torch = pytest.importorskip("torch")
    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.export import export_onnx
    from mono_depth_ros.model import EigenDepthNet

    torch.manual_seed(0)
    model = EigenDepthNet(_tiny_profile()).eval()
    save_model(model, tmp_path / "tiny.pt")
    path = export_onnx(tmp_path / "tiny.pt", tmp_path / "tiny.onnx")
    x = torch.randn(1, 3, 120, 160)
    with torch.no_grad():
        ref = model(x).numpy()
    return path, x.numpy(), ref


def test_engine_sidecar_configures_the_pipeline(tiny_onnx):
    """An engine + the sidecar this module writes is a complete model description for load_spec."""
    from mono_depth_ros.model_spec import load_spec

    onnx_path, _, _ = tiny_onnx
    from mono_depth_ros.backends.tensorrt_backend import read_onnx_io

    meta, name, shape = read_onnx_io(onnx_path)
    eng = onnx_path.with_suffix(".engine")
    eng.write_bytes(b"not really an engine")
    write_sidecar(eng, _key(), onnx_path, meta, name, shape)
    spec = load_spec(eng)
    assert spec.kind == "engine" and spec.profile == _tiny_profile() and spec.output == "log_depth"
    assert spec.metric and spec.input_name == "image" and spec.stage == "fine"
    assert spec.extra["key"] == _key().digest


@pytest.mark.skipif(TRT_SKIP is not None, reason=str(TRT_SKIP))
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_trt_engine_matches_torch_and_is_cached(tiny_onnx, tmp_path, precision):
    from mono_depth_ros.backends.tensorrt_backend import TensorRTBackend

    onnx_path, x, ref = tiny_onnx
    be = TensorRTBackend(onnx_path, precision=precision, cache_dir=tmp_path / "cache")
    y = be.run(x).copy()
    assert y.shape == ref.shape and y.dtype == np.float32
    tol = 1e-3 if precision == "fp32" else 5e-2  # fp16: ~3 significant digits on |log depth| ~ 1
    assert np.abs(y - ref).max() < tol
    eng = be.engine_path
    assert eng.is_file() and read_sidecar(eng)["key_fields"]["precision"] == precision
    be.close()
    mtime = eng.stat().st_mtime_ns
    be2 = TensorRTBackend(onnx_path, precision=precision, cache_dir=tmp_path / "cache")
    assert eng.stat().st_mtime_ns == mtime  # cache hit: not rebuilt
    np.testing.assert_allclose(be2.run(x), y, atol=1e-6)
    # an engine file alone runs (ONNX source recorded in the sidecar), in the precision it was built
    # for, whatever precision the caller asks (no rebuild)
    be3 = TensorRTBackend(eng, precision="int8")
    assert be3.precision == precision and eng.stat().st_mtime_ns == mtime
    np.testing.assert_allclose(be3.run(x), y, atol=1e-6)


@pytest.mark.skipif(TRT_SKIP is not None, reason=str(TRT_SKIP))
def test_trt_corrupt_engine_is_rebuilt(tiny_onnx, tmp_path):
    from mono_depth_ros.backends.tensorrt_backend import TensorRTBackend

    onnx_path, x, ref = tiny_onnx
    be = TensorRTBackend(onnx_path, precision="fp32", cache_dir=tmp_path / "cache")
    eng = be.engine_path
    be.close()
    eng.write_bytes(eng.read_bytes()[:100])
    be = TensorRTBackend(onnx_path, precision="fp32", cache_dir=tmp_path / "cache")
    assert np.abs(be.run(x) - ref).max() < 1e-3


@pytest.mark.skipif(TRT_SKIP is not None, reason=str(TRT_SKIP))
def test_export_cli_builds_engines_that_run(tiny_onnx, tmp_path, capsys):
    """`mono-depth export --out X.engine` (fp16) and `--precision int8 --calib DIR` on a real GPU."""
    import cv2

    from mono_depth_ros.backends.tensorrt_backend import TensorRTBackend
    from mono_depth_ros.cli import main
    from mono_depth_ros.model_spec import load_spec
    from mono_depth_ros.quantize import synthetic_frames

    onnx_path, x, ref = tiny_onnx
    pt = onnx_path.with_suffix(".pt")
    eng = tmp_path / "out" / "tiny.engine"
    assert main(["export", "--model", str(pt), "--out", str(eng)]) == 0
    assert f"wrote {eng} + tiny.engine.json" in capsys.readouterr().out
    assert eng.with_suffix(".onnx").is_file() and read_sidecar(eng)["key_fields"]["precision"] == "fp16"
    assert load_spec(eng).profile == _tiny_profile()
    be = TensorRTBackend(eng)
    assert be.precision == "fp16" and np.abs(be.run(x) - ref).max() < 5e-2
    be.close()
    assert main(["export", "--model", str(pt), "--out", str(eng)]) == 2      # no silent overwrite
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, f in enumerate(synthetic_frames(4, seed=3)):
        cv2.imwrite(str(calib / f"{i}.png"), f)
    eng8 = tmp_path / "tiny8.engine"
    assert main(["export", "--model", str(onnx_path), "--out", str(eng8), "--precision", "int8",
                 "--calib", str(calib)]) == 0
    side = read_sidecar(eng8)
    assert side["key_fields"]["precision"] == "int8" and "calib" in side["key_fields"]["options"]
    be = TensorRTBackend(eng8)
    y = be.run(x)
    assert y.shape == ref.shape and np.isfinite(y).all()
    be.close()
