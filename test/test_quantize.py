"""Int8 quantisation (ONNX Runtime): the quantised tiny model runs, keeps its metadata, and stays
within a bound of the fp32 model derived from the quantisation step sizes."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from conftest import SHARED_DATA  # noqa: E402

from mono_depth_ros.profiles import Profile  # noqa: E402
from mono_depth_ros.quantize import (compare_log_depth, find_images, load_calibration_frames,  # noqa: E402
                                     quantize_onnx, read_metadata, synthetic_frames)

TINY = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
               fine_channels=8, resize_w=160, resize_h=120)

# Quantised weight layers on the longest path: C1-C5, C6, C7 (coarse) then F3, F4 (fine); by default
# F4 (the output layer) stays fp32.
N_LAYERS = 9
# Worst-case rounding error of one quantised tensor relative to its range: uint8 activations
# (asymmetric, 255 steps over the calibrated range) -> 1/510; int8 per-channel symmetric weights
# (127 steps over max|w|) -> 1/254.  With activation scale preserved layer to layer (He init / trained
# nets), errors add at most linearly over the n quantised layers (REL_BOUND(9) ~ 0.053 of the output
# range); they are independent, so typical errors add in quadrature (sqrt(n)) and a uniform error's
# mean |e| is half its maximum (MEAN_BOUND).
STEP = 1 / 510 + 1 / 254


def REL_BOUND_N(n):
    return n * STEP


def MEAN_BOUND_N(n):
    return np.sqrt(n) * STEP / 2


REL_BOUND = REL_BOUND_N(N_LAYERS)


def _model():
    from mono_depth_ros.model import EigenDepthNet

    torch.manual_seed(0)
    m = EigenDepthNet(TINY).eval()
    # A freshly initialised net outputs a near-constant map (C7/F4 start at std 1e-3); give the output
    # layers He-scaled weights so the log depth varies across the image like a trained model's.
    with torch.no_grad():
        torch.nn.init.kaiming_normal_(m.fine.f4.weight, nonlinearity="linear")
        torch.nn.init.normal_(m.coarse.c7.weight, std=m.coarse.c7.in_features ** -0.5)
    return m


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.export import export_onnx

    d = tmp_path_factory.mktemp("q")
    save_model(_model(), d / "tiny.pt")
    return export_onnx(d / "tiny.pt", d / "tiny.onnx")


def _split_real_images():
    """(calibration sources, evaluation RGB frames): outdoor/other images calibrate, NYU/TUM evaluate
    (held out).  Synthetic frames stand in when ../shared/data is absent."""
    calib_dirs = [SHARED_DATA / "kitti_object_lidar" / "image_2", SHARED_DATA / "rgbd_misc_samples" / "emsanet_kinect2"]
    eval_dirs = [SHARED_DATA / "nyu_depth_v2_samples", SHARED_DATA / "rgbd_misc_samples" / "other_formats"]
    if all(d.is_dir() for d in calib_dirs + eval_dirs):
        from mono_depth_ros.quantize import read_rgb

        evals = [read_rgb(p) for p in find_images(eval_dirs)]
        return [str(d) for d in calib_dirs], evals + [np.ascontiguousarray(e[:, ::-1]) for e in evals]
    return synthetic_frames(6, seed=1), synthetic_frames(4, seed=2)


def _run(path, frames):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x})[0] for x in frames])


def _eval_inputs(rgbs):
    from mono_depth_ros.preprocess import Preprocessor

    pre = Preprocessor(TINY)
    return [pre(r)[0].copy() for r in rgbs]


@pytest.mark.parametrize("quantize_output", [False, True])
def test_static_int8_within_bound_and_keeps_metadata(tiny_onnx, tmp_path, quantize_output):
    import onnx

    from mono_depth_ros.quantize import output_layers

    calib, evals = _split_real_images()
    res = quantize_onnx(tiny_onnx, tmp_path / "tiny.int8.onnx", calib=calib, n_frames=16,
                        keep_output_layer_fp32=not quantize_output)
    assert res.path.is_file() and res.mode == "static" and res.n_frames == 16
    m = onnx.load(str(res.path))
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) >= 2]
    n_quant = N_LAYERS if quantize_output else N_LAYERS - 1  # on the longest path
    # every conv / fc weight is quantised (C1-C7, F1, F3, F4 = 10 layers), but F4 unless asked
    assert len(int8_weights) == (10 if quantize_output else 9)
    f4 = output_layers(tiny_onnx)
    assert f4 == ["/fine/f4/Conv"]
    f4_weight = next(n for n in m.graph.node if n.name == f4[0]).input[1]
    producers = {o: n.op_type for n in m.graph.node for o in n.output}
    assert (producers.get(f4_weight) == "DequantizeLinear") == quantize_output
    meta32, meta8 = read_metadata(tiny_onnx), read_metadata(res.path)
    assert {k: v for k, v in meta8.items() if k != "mono_depth_ros.quantization"} == meta32
    q = json.loads(meta8["mono_depth_ros.quantization"])
    assert q["format"] == "QDQ" and q["per_channel"] is True and q["fp32_nodes"] == ([] if quantize_output else f4)

    xs = _eval_inputs(evals)
    ref, out = _run(tiny_onnx, xs), _run(res.path, xs)
    assert out.shape == ref.shape and np.isfinite(out).all()
    out_range = float(ref.max() - ref.min())
    assert out_range > 0.1  # the output really varies (otherwise the bound is vacuous)
    err = np.abs(out - ref)
    assert err.max() <= REL_BOUND_N(n_quant) * out_range, (err.max(), out_range)
    assert err.mean() <= MEAN_BOUND_N(n_quant) * out_range, (err.mean(), out_range)
    stats = compare_log_depth(ref, out)
    assert stats["delta1"] > 0.99


def test_bad_calibration_breaks_the_bound(tiny_onnx, tmp_path):
    """Negative control: calibrating on flat grey frames (activation ranges far too narrow) clips real
    images' activations, and the same bound catches it."""
    _, evals = _split_real_images()
    flat = [np.full((120, 160, 3), 128, np.uint8)]
    res = quantize_onnx(tiny_onnx, tmp_path / "bad.int8.onnx", calib=flat, n_frames=2)
    xs = _eval_inputs(evals)
    ref, out = _run(tiny_onnx, xs), _run(res.path, xs)
    assert np.abs(out - ref).max() > REL_BOUND * float(ref.max() - ref.min())


def test_dynamic_mode_runs_and_quantises_fc_only(tiny_onnx, tmp_path):
    import onnx

    res = quantize_onnx(tiny_onnx, tmp_path / "tiny.dyn.onnx", mode="dynamic")
    m = onnx.load(str(res.path))
    ops = [n.op_type for n in m.graph.node]
    assert "Conv" in ops and "ConvInteger" not in ops  # convolutions stay fp32
    assert any(o in ops for o in ("MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"))
    xs = _eval_inputs(synthetic_frames(2, seed=3))
    ref, out = _run(tiny_onnx, xs), _run(res.path, xs)
    assert np.abs(out - ref).max() <= REL_BOUND * float(ref.max() - ref.min())


def test_calibration_frames_use_the_preprocessor(tmp_path):
    from mono_depth_ros.preprocess import Preprocessor

    rgb = synthetic_frames(1, width=200, height=150, seed=4)[0]
    frames = load_calibration_frames(TINY, [rgb], limit=4)
    assert len(frames) == 4 and frames[0].shape == (1, 3, 120, 160) and frames[0].dtype == np.float32
    np.testing.assert_array_equal(frames[0], Preprocessor(TINY)(rgb)[0])
    assert not np.array_equal(frames[0], frames[1])  # the mirrored view
    # depth maps are not calibration images; an empty source falls back to synthetic frames (or fails)
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), rgb[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "b_depth.png"), np.zeros((10, 10), np.uint16))
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((10, 10), np.uint16))
    assert [p.name for p in find_images(tmp_path)] == ["a.png", "c.png"]
    assert len(load_calibration_frames(TINY, [tmp_path], limit=10, augment=False)) == 1  # c.png (uint16) skipped
    with pytest.raises(ValueError, match="no calibration images"):
        load_calibration_frames(TINY, [tmp_path / "c.png"], synthetic_fallback=False)


def test_cli_quantize(tiny_onnx, tmp_path, capsys):
    from mono_depth_ros.cli import main

    out = tmp_path / "cli.int8.onnx"
    calib = tmp_path / "calib"
    calib.mkdir()
    import cv2

    for i, f in enumerate(synthetic_frames(2, seed=5)):
        cv2.imwrite(str(calib / f"{i}.png"), f)
    assert main(["quantize", "--model", str(tiny_onnx), "--calib", str(calib), "--out", str(out),
                 "--frames", "4", "--check"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "wrote" in text and "delta1" in text
    assert main(["quantize", "--model", str(tiny_onnx), "--calib", str(calib), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["quantize", "--model", str(out), "--out", str(tmp_path / "again.onnx")]) == 2
    assert "already quantised" in capsys.readouterr().err
    # an ONNX model under another name would not load as one later (the kind comes from the suffix)
    assert main(["quantize", "--model", str(tiny_onnx), "--out", str(tmp_path / "q.txt")]) == 2
    assert "name it X.onnx" in capsys.readouterr().err and not (tmp_path / "q.txt").exists()


def test_quantize_refuses_to_replace_its_own_input(tiny_onnx, tmp_path, capsys):
    import os
    import shutil

    from mono_depth_ros.cli import main

    src = tmp_path / "m.onnx"
    shutil.copyfile(tiny_onnx, src)
    before = src.read_bytes()
    same = [str(src), str(tmp_path / "." / "m.onnx"), os.path.relpath(src)]
    link = tmp_path / "link.onnx"
    os.link(src, link)                   # another name for the same file
    for out in same + [str(link)]:
        for extra in ([], ["--overwrite"]):
            assert main(["quantize", "--model", str(src), "--out", out, "--mode", "dynamic"] + extra) == 2
            err = capsys.readouterr().err
            assert "is the input model" in err and "would replace the fp32 source" in err
    with pytest.raises(ValueError, match="is the input model"):
        quantize_onnx(src, src, mode="dynamic", overwrite=True)
    assert src.read_bytes() == before and "mono_depth_ros.quantization" not in read_metadata(src)

