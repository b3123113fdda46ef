"""`mono-depth predict` and `mono-depth export` end to end on real images (NYU, KITTI) and a small video."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import TINY_CLI, save_tiny_model, shared_path
from mono_depth_ros.cli import main
from mono_depth_ros.pointcloud import read_ply

TINY = TINY_CLI


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MONO_DEPTH_CACHE", str(tmp_path / "cache"))  # ONNX exports of .pt models go here


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("m") / "tiny.pt")


@pytest.fixture
def images(tmp_path):
    nyu = shared_path("nyu_depth_v2_samples", "open3d_nyu_raw", "NYU_color.ppm")
    kitti = shared_path("kitti_object_lidar", "image_2", "kov_000002.png")
    return nyu, kitti


def test_predict_images_with_intrinsics_and_no_overwrite(model, images, tmp_path, capsys):
    nyu, kitti = images
    out = tmp_path / "out"
    rc = main(["predict", str(nyu), str(kitti), "--model", str(model), "--out", str(out), "--backend", "torch",
               "--fx", "520", "--fy", "520", "--threads", "1", "--quiet"])
    assert rc == 0
    d = np.load(out / "NYU_color_depth.npy")
    assert d.shape == (480, 640) and d.dtype == np.float32
    valid = np.isfinite(d)
    assert valid.mean() > 0.8 and np.nanmin(d) >= 0.1 and np.nanmax(d) <= 10.0
    mm = cv2.imread(str(out / "NYU_color_depth.png"), cv2.IMREAD_UNCHANGED)
    assert mm.dtype == np.uint16 and mm.shape == (480, 640)
    np.testing.assert_array_equal(mm == 0, ~valid)
    np.testing.assert_allclose(mm[valid], d[valid] * 1000, atol=0.51)
    col = cv2.imread(str(out / "NYU_color_color.png"))
    assert col.shape == (480, 640, 3) and (col[~valid] == 0).all()
    xyz, rgb = read_ply(out / "NYU_color.ply")
    assert len(xyz) == valid.sum() and rgb is not None
    np.testing.assert_allclose(np.sort(xyz[:, 2]), np.sort(d[valid]), rtol=1e-6)
    kd = np.load(out / "kov_000002_depth.npy")
    assert kd.shape == cv2.imread(str(kitti)).shape[:2]
    assert (out / "kov_000002.ply").is_file()
    # second run: refuses to replace, says so, exits non-zero; --overwrite replaces
    before = (out / "NYU_color_depth.npy").stat().st_mtime_ns
    rc = main(["predict", str(nyu), "--model", str(model), "--out", str(out), "--backend", "torch", "--quiet"])
    assert rc == 2 and "refusing to overwrite" in capsys.readouterr().err   # refused up front, before the model
    assert (out / "NYU_color_depth.npy").stat().st_mtime_ns == before
    rc = main(["predict", str(nyu), "--model", str(model), "--out", str(out), "--backend", "torch", "--quiet",
               "--overwrite", "--output", "network"])
    assert rc == 0 and np.load(out / "NYU_color_depth.npy").shape == (TINY.output_h, TINY.output_w)


def test_predict_folder_video_camera_info_and_bad_inputs(model, images, tmp_path, capsys):
    nyu, kitti = images
    folder = tmp_path / "in"
    folder.mkdir()
    bgr = cv2.imread(str(nyu))
    cv2.imwrite(str(folder / "a.png"), bgr)
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    vid = folder / "clip.avi"
    vw = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 240))
    assert vw.isOpened()
    for k in range(4):
        vw.write(cv2.resize(np.roll(bgr, 20 * k, axis=1), (320, 240)))
    vw.release()
    cam = tmp_path / "cam.yaml"
    cam.write_text("image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: "
                   "[518.8, 0, 325.6, 0, 519.5, 253.7, 0, 0, 1]}\n")
    out = tmp_path / "out"
    rc = main(["predict", str(folder), str(tmp_path / "missing.png"), "--model", str(model), "--out", str(out),
               "--backend", "onnxruntime", "--camera-info", str(cam), "--every", "2", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1  # two bad inputs ...
    assert "broken.jpg: cannot read image" in err and "missing.png: no such file" in err
    # ... without losing the good outputs
    assert (out / "a_depth.npy").is_file() and (out / "a.ply").is_file()
    frames = sorted(p.name for p in out.glob("clip_*_depth.npy"))
    assert frames == ["clip_000000_depth.npy", "clip_000002_depth.npy"]
    assert np.load(out / "clip_000002_depth.npy").shape == (240, 320)
    xyz, _ = read_ply(out / "clip_000000.ply")  # the 640x480 calibration, scaled to the 320x240 video
    d = np.load(out / "clip_000000_depth.npy")
    v, u = np.nonzero(np.isfinite(d))
    fx, cx = 518.8 / 2, (325.6 + 0.5) / 2 - 0.5
    np.testing.assert_allclose(np.sort(xyz[:, 0]), np.sort((u - cx) * d[v, u] / fx), rtol=1e-4, atol=1e-5)


def test_export_command(model, tmp_path, capsys):
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--model", str(model), "--out", str(out), "--dynamic-batch"]) == 0
    msg = capsys.readouterr().out
    assert out.is_file() and "ONNX Runtime vs PyTorch max |diff|" in msg
    diff = float(msg.rsplit(" ", 1)[1])
    assert diff < 1e-4
    assert main(["export", "--model", str(model), "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["export", "--model", str(model), "--out", str(out), "--overwrite"]) == 0
    assert main(["export", "--model", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "n.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # the exported model runs through predict
    img = shared_path("kitti_object_lidar", "image_2", "cvml_000114.png")
    assert main(["predict", str(img), "--model", str(out), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert np.isfinite(np.load(tmp_path / "p" / "cvml_000114_depth.npy")).any()


def _video(path, n=5, size=(64, 48)):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, size)
    assert vw.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(n):
        vw.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    vw.release()
    return path


@pytest.mark.parametrize("extra, msg", [
    (["--stride", "0"], "--stride must be >= 1"),
    (["--stride", "-3"], "--stride must be >= 1"),
    (["--max-frames", "0"], "--max-frames must be >= 1"),
    (["--fx", "0", "--fy", "500"], "--fx must be a positive focal length"),
    (["--fx", "500", "--fy", "-1"], "--fy must be a positive focal length"),
    (["--fx", "nan", "--fy", "500"], "--fx must be a finite number"),
    (["--fx", "500", "--fy", "inf"], "--fy must be a finite number"),
    (["--fx", "500", "--fy", "500", "--cx", "inf", "--cy", "1"], "--cx must be a finite number"),
    (["--fx", "500"], "--fx and --fy go together"),
    (["--fy", "500"], "--fx and --fy go together"),
    (["--fx", "500", "--fy", "500", "--cx", "320"], "--cx and --cy go together"),
    (["--cx", "320", "--cy", "240"], "--cx/--cy need --fx and --fy"),
    (["--camera-info", "cam.yaml", "--fx", "0"], "either --camera-info or --fx"),
])
def test_predict_rejects_bad_numbers_before_loading_the_model(tmp_path, capsys, extra, msg):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((48, 64, 3), np.uint8))
    # the model does not exist: the argument error must come first, with exit 2
    rc = main(["predict", str(img), "--model", str(tmp_path / "no_model.pt"), "--out", str(tmp_path / "o"),
               "--quiet"] + extra)
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and "no_model" not in err
    assert not (tmp_path / "o").exists()


def test_predict_progress_bar_counts_video_frames(model, tmp_path, monkeypatch):
    import tqdm as tqdm_mod

    from mono_depth_ros.commands.predict_run import _Frames, _progress_total

    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((48, 64, 3), np.uint8))
    _video(folder / "clip.avi", n=5)
    _video(folder / "more.avi", n=3)
    items = [_Frames(folder / "a.png", "image", "a"), _Frames(folder / "clip.avi", "video", "clip"),
             _Frames(folder / "more.avi", "video", "more")]
    assert _progress_total(items, every=1, max_frames=None) == 1 + 5 + 3
    assert _progress_total(items, every=2, max_frames=None) == 1 + 3 + 2
    assert _progress_total(items, every=1, max_frames=2) == 1 + 2 + 2

    bars = []

    class Bar:
        def __init__(self, total=None, **kw):
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, k=1):
            self.n += k

        def set_postfix_str(self, *a, **kw):
            pass

        def write(self, *a, **kw):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tqdm_mod, "tqdm", Bar)
    rc = main(["predict", str(folder), "--model", str(model), "--out", str(tmp_path / "o"), "--backend", "torch",
               "--every", "2", "--threads", "1"])
    assert rc == 0
    written = len(list((tmp_path / "o").glob("*_depth.npy")))
    assert written == 1 + 3 + 2
    assert len(bars) == 1 and bars[0].total == written and bars[0].n == written


def test_predict_camera_info_of_another_size_follows_the_one_policy(model, images, tmp_path, capsys, caplog):
    """camera.fit_intrinsics on the CLI: a calibration of twice the image size (binning) is scaled with one
    warning for all frames; a calibration of another aspect ratio fails each frame with one error line."""
    nyu, _ = images
    folder = tmp_path / "in"
    folder.mkdir()
    bgr = cv2.resize(cv2.imread(str(nyu)), (320, 240), interpolation=cv2.INTER_AREA)
    for name in ("a", "b", "c"):
        cv2.imwrite(str(folder / f"{name}.png"), bgr)
    cam = tmp_path / "cam.yaml"
    cam.write_text("image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: "
                   "[518.8, 0, 325.6, 0, 519.5, 253.7, 0, 0, 1]}\n")
    with caplog.at_level("WARNING", logger="mono_depth_ros"):   # (a terminal gets it on stderr: basicConfig)
        rc = main(["predict", str(folder), "--model", str(model), "--out", str(tmp_path / "o"), "--backend", "torch",
                   "--camera-info", str(cam), "--quiet"])
    assert rc == 0
    notes = [r.getMessage() for r in caplog.records if "scaling the intrinsics" in r.getMessage()]
    assert len(notes) == 1 and "640x480" in notes[0] and "320x240" in notes[0], notes
    xyz, _ = read_ply(tmp_path / "o" / "b.ply")
    d = np.load(tmp_path / "o" / "b_depth.npy")
    v, u = np.nonzero(np.isfinite(d))
    fx, cx = 518.8 / 2, (325.6 + 0.5) / 2 - 0.5
    np.testing.assert_allclose(np.sort(xyz[:, 0]), np.sort((u - cx) * d[v, u] / fx), rtol=1e-4, atol=1e-5)
    cam.write_text("image_width: 640\nimage_height: 360\ncamera_matrix: {rows: 3, cols: 3, data: "
                   "[518.8, 0, 325.6, 0, 519.5, 180.0, 0, 0, 1]}\n")
    rc = main(["predict", str(folder / "a.png"), "--model", str(model), "--out", str(tmp_path / "o2"),
               "--backend", "torch", "--camera-info", str(cam), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("mono-depth predict: error:") and "640x360" in err[0] and "another aspect ratio" in err[0]
    assert not (tmp_path / "o2" / "a.ply").exists()
