"""``mono-depth bench``: structure of the table and the JSON (not the timings)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mono_depth_ros.profiles import PROFILES, Profile  # noqa: E402

TINY = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
               fine_channels=8, resize_w=160, resize_h=120)


@pytest.fixture
def tiny_profile(monkeypatch):
    monkeypatch.setitem(PROFILES, "tiny", TINY)
    return TINY


def _check_stats(r, n):
    assert set(r) >= {"p50_ms", "p90_ms", "mean_ms", "min_ms", "fps", "n"}
    assert r["n"] == n
    assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"]
    assert r["fps"] == pytest.approx(1e3 / r["p50_ms"], rel=0.01)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_bench_random_weights_table_and_json(tiny_profile, tmp_path, capsys, monkeypatch, backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))
    from mono_depth_ros.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--profile", "tiny", "--backend", backend, "--device", "cpu", "--iters", "2",
                 "--warmup", "1", "--threads", "1", "--width", "320", "--height", "240", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| measurement | p50 ms | p90 ms | mean ms | FPS (1/p50) |" in text
    assert "| model only (backend.run) |" in text and "| pipeline 320x240 rgb8 -> depth + cloud |" in text
    assert "random weights" in text
    res = json.loads(out.read_text())
    assert res["random_weights"] is True and res["profile"] == "tiny" and res["backend"] == backend
    assert res["input"] == [160, 120] and res["frame"] == {"width": 320, "height": 240, "encoding": "rgb8",
                                                            "cloud_stride": 1}
    _check_stats(res["results"]["model"], 2)
    pipe = res["results"]["pipeline"]
    _check_stats(pipe, 2)
    assert set(pipe["stages_p50_ms"]) == {"decode", "preprocess", "infer", "postprocess", "cloud"}
    # the pipeline really produced a cloud: camera output, valid pixels inside the network's view
    assert 0 < pipe["cloud_points"] <= 320 * 240
    assert not (tmp_path / "cache").exists()  # the random model and its export stay in a temp folder


def test_bench_model_file_no_pipeline(tiny_profile, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.cli import main
    from mono_depth_ros.export import export_onnx
    from mono_depth_ros.model import EigenDepthNet

    save_model(EigenDepthNet(TINY), tmp_path / "m.pt")
    onnx_path = export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx")
    out = tmp_path / "b.json"
    assert main(["bench", "--model", str(onnx_path), "--backend", "onnxruntime", "--iters", "2", "--warmup", "0",
                 "--threads", "1", "--no-pipeline", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "random weights" not in text and "pipeline" not in text.split("|", 1)[1]
    res = json.loads(out.read_text())
    assert res["random_weights"] is False and res["model"] == str(onnx_path) and res["model_kind"] == "onnx"
    assert list(res["results"]) == ["model"]


def test_bench_errors(tmp_path, capsys):
    from mono_depth_ros.cli import main

    assert main(["bench", "--model", str(tmp_path / "missing.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "--profile", "nope", "--iters", "1"]) == 2
    assert "unknown profile" in capsys.readouterr().err


@pytest.mark.parametrize("extra, kw, msg", [
    (["--width", "0"], {"width": 0}, "--width must be >= 16 pixels, got 0"),
    (["--height", "8"], {"height": 8}, "--height must be >= 16 pixels, got 8"),
    (["--width", "-640"], {"width": -640}, "--width must be >= 16 pixels, got -640"),
    (["--stride", "0"], {"stride": 0}, "--stride must be >= 1, got 0"),
    (["--iters", "0"], {"iters": 0}, "--iters must be >= 1"),
])
def test_bench_rejects_bad_sizes_with_one_line(tmp_path, capsys, extra, kw, msg):
    from mono_depth_ros.cli import main
    from mono_depth_ros.commands.bench_run import run_bench

    # checked before the model is looked at: the (missing) model is not the error
    assert main(["bench", "--model", str(tmp_path / "missing.onnx")] + extra) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err and "missing.onnx" not in err
    with pytest.raises(ValueError, match=msg):
        run_bench(str(tmp_path / "missing.onnx"), **kw)


@pytest.mark.parametrize("option, value", [("--backend", "tensorrtt"), ("--precision", "fp8")])
def test_bench_backend_and_precision_choices(capsys, option, value):
    from mono_depth_ros.cli import main

    with pytest.raises(SystemExit) as e:
        main(["bench", option, value])
    assert e.value.code == 2
    assert f"argument {option}: invalid choice: '{value}'" in capsys.readouterr().err


def test_summarize_percentiles():
    from mono_depth_ros.commands.bench_run import summarize

    s = summarize(list(np.arange(1, 11) * 1e-3))  # 1..10 ms
    assert s["p50_ms"] == pytest.approx(5.5) and s["p90_ms"] == pytest.approx(9.1)
    assert s["min_ms"] == pytest.approx(1.0) and s["mean_ms"] == pytest.approx(5.5) and s["n"] == 10
