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

from mono_depth_ros.model_cache import default_cache_dir, file_sha256
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
    assert default_cache_dir("trt") == tmp_path / "x"
    monkeypatch.delenv("MONO_DEPTH_TRT_CACHE")
    monkeypatch.setenv("MONO_DEPTH_CACHE", str(tmp_path / "root"))
    assert default_cache_dir("trt") == tmp_path / "root" / "trt"
    monkeypatch.delenv("MONO_DEPTH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir("trt") == tmp_path / "xdg" / "mono_depth_ros" / "trt"


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
    assert r1.sidecar["key"] == fake.key_for(file_sha256(onnx)).digest
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
    assert read_sidecar(eng)["key"] == fake.key_for(file_sha256(onnx)).digest
    assert not fake.resolve(eng, onnx).built  # and now it is cached again


def _built_engine(tmp_path):
    """(onnx, engine, FakeTRT) after one build of m.engine from m.onnx."""
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx v1")
    eng = tmp_path / "m.engine"
    fake = FakeTRT()
    fake.resolve(eng, onnx)
    return onnx, eng, fake


def test_corrupt_engine_is_rebuilt_from_onnx(tmp_path):
    onnx, eng, fake = _built_engine(tmp_path)
    eng.write_bytes(b"garbage")  # truncated / overwritten, sidecar still says the key is current
    r = fake.resolve(eng, onnx)
    assert r.built and "corrupt" in r.reason and eng.read_bytes() == b"ENGINE:onnx v1"


def test_corrupt_engine_without_onnx_is_refused_with_the_fix(tmp_path):
    onnx, eng, fake = _built_engine(tmp_path)
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


@pytest.mark.parametrize("change", ["trt_version", "corrupt"])
def test_stale_user_engine_is_rebuilt_into_the_cache_not_overwritten(tmp_path, change):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx v1")
    user = tmp_path / "mine" / "m.engine"
    FakeTRT().resolve(user, onnx)
    if change == "corrupt":
        user.write_bytes(b"garbage")
    before, side_before = user.read_bytes(), sidecar_path(user).read_bytes()
    cache = tmp_path / "cache" / "m.fp16.engine"
    fake = FakeTRT(version="10.14.0") if change == "trt_version" else FakeTRT()
    r = resolve_engine(user, onnx, fake.key_for, fake.build, fake.deserialize, rebuild_to=cache)
    assert r.built and r.path == cache and cache.read_bytes() == b"ENGINE:onnx v1" and len(fake.builds) == 1
    assert user.read_bytes() == before and sidecar_path(user).read_bytes() == side_before  # untouched
    r2 = resolve_engine(user, onnx, fake.key_for, fake.build, fake.deserialize, rebuild_to=cache)
    assert not r2.built and r2.path == cache and len(fake.builds) == 1  # the cache copy is reused


def test_user_engine_without_sidecar_is_used_not_rebuilt_even_with_onnx(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx v1")
    user = tmp_path / "m.engine"  # e.g. from trtexec, next to its ONNX
    user.write_bytes(b"ENGINE:from trtexec")
    fake = FakeTRT()
    cache = tmp_path / "cache" / "m.fp16.engine"
    r = resolve_engine(user, onnx, fake.key_for, fake.build, fake.deserialize, rebuild_to=cache)
    assert not r.built and r.path == user and "unverified" in r.reason and not fake.builds
    user.write_bytes(b"garbage")
    r = resolve_engine(user, onnx, fake.key_for, fake.build, fake.deserialize, rebuild_to=cache)
    assert r.built and r.path == cache and user.read_bytes() == b"garbage"


def test_calibration_cache_is_specific_to_model_images_and_version(tmp_path):
    from mono_depth_ros.trt_build import _drop_stale_calibration_caches, calibration_cache_path

    eng = tmp_path / "m.int8.engine"
    base = calibration_cache_path(eng, "a" * 64, "c1", "10.13.0")
    assert base.parent == tmp_path and base.name.startswith("m.int8.engine.") and base.name.endswith(".calib")
    assert base == calibration_cache_path(eng, "a" * 64, "c1", "10.13.0")
    others = {calibration_cache_path(eng, "b" * 64, "c1", "10.13.0"),
              calibration_cache_path(eng, "a" * 64, "c2", "10.13.0"),
              calibration_cache_path(eng, "a" * 64, "c1", "10.14.0")}
    assert base not in others and len(others) == 3
    for p in [*others, base, eng.with_name(eng.name + ".calib"), tmp_path / "other.engine.x.calib"]:
        p.write_bytes(b"scales")
    _drop_stale_calibration_caches(eng, base)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([base.name, "other.engine.x.calib"])


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
    from mono_depth_ros.trt_build import _engine_and_onnx_paths

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
    from mono_depth_ros.trt_build import check_onnx_for_tensorrt

    check_onnx_for_tensorrt({"mono_depth_ros.output": "log_depth"}, tmp_path / "m.onnx")
    with pytest.raises(EngineCacheError, match=r"m\.int8\.onnx was quantised for ONNX Runtime.*fp32 ONNX"):
        check_onnx_for_tensorrt({"mono_depth_ros.quantization": "{}"}, tmp_path / "m.int8.onnx")


# ---- builder call sequence against a recording stand-in for the TensorRT 10 API ---------------------------
class _Rec:
    """Records TensorRT builder calls (only the API build_serialized_engine uses)."""

    def __init__(self, input_shape, parse_ok=True, build_ok=True):
        import types

        rec = self
        self.calls: List[tuple] = []
        self.input_shape, self.parse_ok, self.build_ok = tuple(input_shape), parse_ok, build_ok

        class Dims(tuple):
            def __new__(cls, shape):
                return tuple.__new__(cls, shape)

        class Tensor:
            name, shape = "image", Dims(self.input_shape)

        class Network:
            num_inputs = 1

            def get_input(self, i):
                return Tensor()

        class Parser:
            num_errors = 1

            def __init__(self, network, logger):
                pass

            def parse_from_file(self, path):
                rec.calls.append(("parse_from_file", path))
                return rec.parse_ok

            def get_error(self, i):
                return "In node 3 (Conv): unsupported"

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                rec.calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

        class Config:
            def set_memory_pool_limit(self, pool, size):
                rec.calls.append(("pool", pool, size))

            def set_flag(self, flag):
                rec.calls.append(("flag", flag))

            def add_optimization_profile(self, profile):
                rec.calls.append(("add_profile",))

            def set_calibration_profile(self, profile):
                rec.calls.append(("calibration_profile",))

            def __setattr__(self, k, v):
                rec.calls.append(("set", k))

        class Builder:
            platform_has_fast_fp16 = True

            def __init__(self, logger):
                pass

            def create_network(self, flags):
                rec.calls.append(("create_network", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                rec.calls.append(("build",))
                return memoryview(b"PLAN") if rec.build_ok else None

        self.module = types.SimpleNamespace(
            Builder=Builder, OnnxParser=Parser, Dims=Dims, Logger=lambda sev: object(),
            MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
            BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8"))
        self.module.Logger.WARNING = 2


@pytest.fixture
def fake_trt_module(monkeypatch):
    from mono_depth_ros import trt_build as tb

    def install(rec):
        monkeypatch.setitem(sys.modules, "tensorrt", rec.module)
        monkeypatch.setattr(tb._Logger, "instance", None)
        return rec
    yield install
    tb._Logger.instance = None


def test_build_serialized_engine_call_sequence(fake_trt_module, tmp_path):
    from mono_depth_ros.trt_build import build_serialized_engine

    rec = fake_trt_module(_Rec((-1, 3, 120, 160)))
    assert build_serialized_engine(tmp_path / "m.onnx", "int8", max_batch=4, workspace_gb=1.0,
                                   calibrator=object()) == b"PLAN"
    assert rec.calls[0] == ("create_network", 0)  # explicit batch: the only (and default) mode in TensorRT 10
    assert ("parse_from_file", str(tmp_path / "m.onnx")) in rec.calls
    assert ("pool", "WORKSPACE", 1 << 30) in rec.calls
    assert ("flag", "FP16") in rec.calls and ("flag", "INT8") in rec.calls and ("set", "int8_calibrator") in rec.calls
    # dynamic batch: 1..max_batch, calibrated at the OPT shape (batch 1, the calibrator's frames)
    assert ("set_shape", "image", (1, 3, 120, 160), (1, 3, 120, 160), (4, 3, 120, 160)) in rec.calls
    assert rec.calls.index(("add_profile",)) < rec.calls.index(("calibration_profile",)) < rec.calls.index(("build",))

    rec = fake_trt_module(_Rec((1, 3, 120, 160)))
    build_serialized_engine(tmp_path / "m.onnx", "fp32")
    assert ("set_shape", "image", (1, 3, 120, 160), (1, 3, 120, 160), (1, 3, 120, 160)) in rec.calls
    assert not [c for c in rec.calls if c[0] == "flag"]  # fp32: no reduced-precision flags

    fake_trt_module(_Rec((1, 3, 120, 160), parse_ok=False))
    with pytest.raises(EngineCacheError, match=r"cannot parse .*m\.onnx: In node 3 \(Conv\): unsupported"):
        build_serialized_engine(tmp_path / "m.onnx", "fp16")
    fake_trt_module(_Rec((1, 3, 120, 160), build_ok=False))
    with pytest.raises(EngineCacheError, match="failed to build"):
        build_serialized_engine(tmp_path / "m.onnx", "fp16")
    fake_trt_module(_Rec((1, 3, -1, -1)))
    with pytest.raises(EngineCacheError, match="dynamic spatial dims"):
        build_serialized_engine(tmp_path / "m.onnx", "fp16")


# ---- static type check --------------------------------------------------------------------------------
def test_tensorrt_backend_typechecks_against_stubs():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    if importlib.util.find_spec("tensorrt_stubs") is None:
        pytest.skip("tensorrt-stubs is not installed")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "typecheck_tensorrt.py"),
                        "mono_depth_ros/backends/tensorrt_backend.py", "mono_depth_ros/trt_engine.py",
                        "mono_depth_ros/trt_build.py",
                        "mono_depth_ros/export.py", "mono_depth_ros/commands/export.py",
                        "mono_depth_ros/commands/export_run.py"],
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
    from mono_depth_ros.trt_build import read_onnx_io

    meta, name, shape = read_onnx_io(onnx_path)
    eng = onnx_path.with_suffix(".engine")
    eng.write_bytes(b"not really an engine")
    write_sidecar(eng, _key(), onnx_path, meta, name, shape)
    spec = load_spec(eng)
    assert spec.kind == "engine" and spec.profile == _tiny_profile() and spec.output == "log_depth"
    assert spec.metric and spec.input_name == "image" and spec.stage == "fine"
    assert spec.extra["key"] == _key().digest


def test_engine_job_adopts_a_user_engine_and_calibrates_from_onnx_metadata(tiny_onnx, tmp_path):
    """load_or_build_engine's bookkeeping, without TensorRT: a user's engine keeps the precision and build
    options it was built with; INT8 calibration frames come from the ONNX profile and key the engine."""
    from mono_depth_ros.trt_build import _EngineJob

    onnx_path, _, _ = tiny_onnx
    job = _EngineJob("fp16", 1, 1, 2.0, None, 0)
    assert job.adopt(None) is None and job.precision == "fp16" and job.options["max_batch"] == 1
    fields = {"precision": "int8", "options": {"max_batch": "4", "opt_batch": "2", "workspace_gb": "1.5", "calib": "c"}}
    assert job.adopt({"key_fields": fields}) == fields
    assert (job.precision, job.max_batch, job.opt_batch, job.workspace_gb) == ("int8", 4, 2, 1.5)
    meta, (name, shape) = job.inspect(onnx_path, calibrate=False)  # an adopted engine: its calibration is in its key
    assert name == "image" and shape == (1, 3, 120, 160) and "mono_depth_ros.profile" in meta
    assert job.frames == [] and job.profile == _tiny_profile() and job.options["calib"] == "c"
    job = _EngineJob("int8", 1, 1, 2.0, None, 0)
    job.inspect(onnx_path, calibrate=True)    # no calibration images: synthetic frames, their digest in the key
    assert len(job.frames) > 0 and job.frames[0].shape == (1, 3, 120, 160)
    assert job.options["calib"] and len(job.options["calib"]) == 16
    assert _EngineJob("fp16", 1, 1, 2.0, None, 0).inspect(tmp_path / "none.onnx", True) == ({}, ("image", (-1,)))
    bare = tmp_path / "bare.onnx"
    import onnx

    m = onnx.load(str(onnx_path))
    del m.metadata_props[:]
    onnx.save(m, str(bare))
    with pytest.raises(EngineCacheError, match="no mono_depth_ros.profile metadata"):
        _EngineJob("int8", 1, 1, 2.0, None, 0).inspect(bare, calibrate=True)


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
