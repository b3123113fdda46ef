"""training.batch: the batched augmentation (uint8 batch, torch / cv2 on the training device) against the
per-sample reference path (training.augment.JointTransform), with controlled draws."""
import contextlib

import cv2
import numpy as np
import pytest
import torch

from mono_depth_ros.profiles import Profile, get_profile
from training.augment import PRESETS, AugmentConfig, JointTransform
from training.batch import BatchAugment, FrameBatches
from training.cache import FramePreparer, PreparedFrame, cache_settings, quantize_depth
from training.datasets import FrameSource

NYU = get_profile("nyu")
KITTI_TINY = Profile(name="tiny_kitti", input_w=224, input_h=64, resize_w=240, resize_h=72, fine_crop_h=48,
                     coarse_channels=(8, 16, 16, 16, 16), fc_hidden=64, fine_channels=8, dropout=0.0,
                     min_depth=1e-3, max_depth=80.0)


def _texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 1.5)
    cv2.rectangle(rgb, (w // 5, h // 3), (w // 2, h // 2), (250, 240, 10), -1)   # an asymmetric bright block
    return rgb


class _Src(FrameSource):
    """An in-memory frame source (the frames of a test)."""

    def __init__(self, frames, sparse=False):
        self.frames, self.sparse = frames, sparse

    def __len__(self):
        return len(self.frames)

    def load(self, i):
        rgb, depth = self.frames[i]
        return rgb, depth, None, f"f{i}"


def _levels(image, profile):
    """Normalised (.., 3, H, W) -> 0..255 levels."""
    std = np.asarray(profile.std, np.float32).reshape(3, 1, 1)
    mean = np.asarray(profile.mean, np.float32).reshape(3, 1, 1)
    return (np.asarray(image) * std + mean) * 255.0


KEYS = [(0, (3, 0, k)) for k in range(12)]


@pytest.mark.parametrize("backend", ["cv2", "torch"])
def test_batch_equals_per_sample_path_on_base_resolution_frames(backend):
    """Frames already at the base resolution (what the cache holds): same draws -> same geometry, same
    depth (nearest pixel; ties at fixed-point rounding aside), image within interpolation tolerance."""
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = _texture(h, w)
    depth = (1.0 + 0.01 * xx + 0.02 * yy).astype(np.float32)
    depth[100:140, 200:260] = 0                                         # a hole: invalid, must stay invalid
    code = np.where(depth > 0, quantize_depth(np.maximum(depth, 0.1), 1000.0), 0).astype(np.uint16)

    class Frames:
        sparse, depth_scale = False, 1000.0

        def __len__(self):
            return 1

        def frame(self, i):
            return PreparedFrame(rgb, w, h, depth=code)

    aug = PRESETS["nyu"]
    batch = FrameBatches(Frames(), NYU, aug)[KEYS]
    out = BatchAugment(NYU, "cpu", backend)(batch)
    jt = JointTransform(NYU, aug)
    dq = (code / 1000.0).astype(np.float32)
    flips = set()
    for b, (_, seed) in enumerate(KEYS):
        ref = jt(rgb, dq, code > 0, np.random.default_rng(list(seed)))
        flips.add(ref.params.flip)
        diff = np.abs(_levels(out["image"][b].numpy(), NYU) - _levels(ref.image, NYU))
        if backend == "cv2":
            assert diff.max() < 1e-3                     # the same uint8 warp: identical
        else:
            assert diff.mean() < 0.3 and np.percentile(diff, 99.9) < 3.0, (diff.mean(), diff.max())
        ok = out["valid"][b, 0].numpy()
        assert np.mean(ok == ref.valid) > 0.995
        assert (~ref.valid).sum() > 20 and not (ok & ~ref.valid & (np.abs(out["depth"][b, 0].numpy()) > 0)).sum() > 10
        both = ok & ref.valid
        same = np.isclose(out["depth"][b, 0].numpy()[both], ref.depth[both], rtol=1e-6)
        assert same.mean() > 0.99
        # depth divided by the scale: the nearest values differ by at most one source pixel's step
        np.testing.assert_allclose(out["depth"][b, 0].numpy()[both], ref.depth[both], rtol=0.03)
    assert flips == {True, False}


def test_decode_path_matches_the_reference_on_source_resolution_frames():
    """640x480 source -> base 320x240 (area resize, as the reference) -> batch augmentation, vs the per-sample
    path from the source: identical RGB (cv2 backend), depth within one base pixel of the nearest choice."""
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = _texture(h, w, 1)
    depth = (1.0 + 0.004 * xx + 0.006 * yy).astype(np.float32)
    src = _Src([(rgb, depth)])
    aug = PRESETS["nyu"]
    st = cache_settings({"type": "nyu_sync", "mask_min_max": False}, NYU)
    prep = FramePreparer(src, NYU, st)
    out = BatchAugment(NYU, "cpu", "cv2")(FrameBatches(prep, NYU, aug)[KEYS[:6]])
    jt = JointTransform(NYU, aug)
    for b, (_, seed) in enumerate(KEYS[:6]):
        ref = jt(rgb, depth, np.ones_like(depth, bool), np.random.default_rng(list(seed)))
        np.testing.assert_allclose(out["image"][b].numpy(), ref.image, atol=1e-5)
        ok = out["valid"][b, 0].numpy()
        assert np.mean(ok == ref.valid) > 0.99
        both = ok & ref.valid
        # nearest pixel of the 320x240 base vs of the 640x480 source: at most ~1 source pixel apart
        step = (0.004 + 0.006) * 2 / ref.params.scale
        assert np.abs(out["depth"][b, 0].numpy()[both] - ref.depth[both]).max() <= step + 2e-3


@pytest.mark.parametrize("impl", ["torch", "numpy"])
def test_sparse_masked_mean_matches_the_reference(impl):
    """LiDAR-like sparse depth: the batch masked mean of the source points equals the per-sample one
    (depth quantised to 1/256 m in both), flip and scale included; empty pixels stay invalid."""
    rng = np.random.default_rng(7)
    frames = []
    for i, (h, w) in enumerate([(375, 1242), (370, 1224)]):          # KITTI's two image sizes
        depth = np.zeros((h, w), np.float32)
        n = 9000
        vs, us = rng.integers(h // 3, h, n), rng.integers(0, w, n)
        depth[vs, us] = np.round((5 + 40 * rng.random(n)) * 256) / 256
        frames.append((_texture(h, w, i), depth))
    src = _Src(frames, sparse=True)
    aug = AugmentConfig(scale=(1.0, 1.2), rotation=3.0)
    st = cache_settings({"type": "kitti_object"}, KITTI_TINY)
    assert st["gt"] == "sparse" and st["depth_scale"] == 256.0
    prep = FramePreparer(src, KITTI_TINY, st)
    keys = [(k % 2, (1, 1, k)) for k in range(8)]
    out = BatchAugment(KITTI_TINY, "cpu", "torch", sparse_impl=impl)(FrameBatches(prep, KITTI_TINY, aug)[keys])
    jt = JointTransform(KITTI_TINY, aug, "masked_mean")
    flips = set()
    for b, (i, seed) in enumerate(keys):
        rgb, depth = frames[i]
        ref = jt(rgb, depth, depth > 0, np.random.default_rng(list(seed)))
        flips.add(ref.params.flip)
        ok = out["valid"][b, 0].numpy()
        assert ref.valid.sum() > 100 and np.mean(ok == ref.valid) > 0.998
        both = ok & ref.valid
        np.testing.assert_allclose(out["depth"][b, 0].numpy()[both], ref.depth[both], rtol=1e-5)
        # RGB: the base frames differ in size, padded in the batch; the warp is still the reference's
        diff = np.abs(_levels(out["image"][b].numpy(), KITTI_TINY) - _levels(ref.image, KITTI_TINY))
        assert diff.mean() < 0.3
    assert flips == {True, False}


def test_evaluation_mode_batch_equals_the_pipeline_transform():
    h, w = 240, 320
    rgb = _texture(h, w, 2)
    depth = np.full((h, w), 3.0, np.float32)
    prep = FramePreparer(_Src([(rgb, depth)]), NYU, cache_settings({"type": "nyu_sync", "mask_min_max": False}, NYU))
    fb = FrameBatches(prep, NYU, PRESETS["none"])
    out = BatchAugment(NYU, "cpu", "torch")(fb[[(0, 0), (0, 1)]])
    ref = JointTransform(NYU, None)(rgb, depth, depth > 0)
    for b in range(2):
        assert np.abs(_levels(out["image"][b].numpy(), NYU) - _levels(ref.image, NYU)).max() < 1e-3
        np.testing.assert_allclose(out["depth"][b, 0].numpy(), ref.depth, rtol=1e-6)
    assert int(fb[5]["meta"][0, 2]) == 5


def test_batch_crosses_as_uint8_and_the_loader_workers_limit_their_threads():
    from training.batch import batch_loader
    from training.datasets import StreamBatchSampler

    h, w = 240, 320
    prep = FramePreparer(_Src([(_texture(h, w, s), np.full((h, w), 2.0, np.float32)) for s in range(3)]), NYU,
                         cache_settings({"type": "nyu_sync", "mask_min_max": False}, NYU))
    sampler = StreamBatchSampler(len(prep), 4, seed=0, num_batches=2)
    from training.datasets import fork_safe_threads

    # the parent has used OpenCV's thread pool (the tests above): the workers must still start
    cv2.resize(np.zeros((480, 640, 3), np.uint8), (320, 240), interpolation=cv2.INTER_AREA)
    loader = batch_loader(prep, NYU, PRESETS["nyu"], sampler, workers=1, prefetch_factor=2)
    with fork_safe_threads():
        it = iter(loader)
    batches = list(it)
    assert len(batches) == 2 and batches[0]["rgb"].dtype == torch.uint8 and batches[0]["depth16"].dtype == torch.uint16
    assert not any(v.dtype == torch.float32 and v.numel() > 1000 for v in batches[0].values() if torch.is_tensor(v))
    # a worker's pools: checked in a worker of its own (fork), as the DataLoader starts it
    import multiprocessing as mp

    from training.datasets import limit_threads
    ctx = mp.get_context("fork")
    with fork_safe_threads():
        pool = ctx.Pool(1)
    with pool:
        got = pool.apply(limit_threads, (1,))
    assert got["cv2"] == 1 and got["torch"] == 1
    if got["threadpoolctl"] is not None:
        assert got["threadpoolctl"] and all(n == 1 for n in got["threadpoolctl"].values()), got


def test_uint16_codes_above_32767_survive_the_transfer():
    """Depth codes travel to the device as int16 bits (torch's uint16 has few CUDA kernels): far depth
    (e.g. 40 m at 1/1000 m) must come back unsigned."""
    from training.batch import _u16

    t = torch.tensor([0, 1, 32767, 32768, 40000, 65535], dtype=torch.int32).to(torch.uint16)
    assert _u16(t, "cpu").tolist() == [0, 1, 32767, 32768, 40000, 65535]
    prof = NYU.replace(max_depth=60.0)
    h, w = 240, 320
    prep = FramePreparer(_Src([(_texture(h, w, 3), np.full((h, w), 40.0, np.float32))]), prof,
                         cache_settings({"type": "nyu_sync", "mask_min_max": False}, prof))
    assert prep.depth_scale == 1000.0 and prep.frame(0).depth.max() == 40000
    out = BatchAugment(prof, "cpu", "torch")(FrameBatches(prep, prof, PRESETS["none"])[[(0, 0)]])
    np.testing.assert_allclose(out["depth"][0, 0].numpy(), 40.0, rtol=1e-6)


@contextlib.contextmanager
def _thread_settings_restored():
    import os

    from training.datasets import THREAD_ENV

    env = {k: os.environ.get(k) for k in THREAD_ENV}
    t, c = torch.get_num_threads(), cv2.getNumThreads()
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
        pools = threadpool_info()
    except ImportError:
        pools = None
    try:
        yield
    finally:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        torch.set_num_threads(t)
        cv2.setNumThreads(c)
        if pools is not None:
            threadpool_limits(limits=pools)


def test_bench_loader_runs_and_ends_with_one_line_per_dataset_and_path(capsys, tmp_path):
    """The benchmark script itself (tiny settings; no figure is checked, only that it measures and reports)."""
    from conftest import shared_path

    from training.bench_loader import main as bench_main

    shared_path("nyu_depth_v2_samples/open3d_nyu_raw/NYU_color.ppm")
    shared_path("kitti_raw_layout_repackaged")
    out = tmp_path / "b.json"
    with _thread_settings_restored():      # the benchmark makes its process single-threaded
        assert bench_main(["--paths", "decode-batch,cache", "--batches", "1", "--warmup", "1", "--frames", "2",
                           "--batch-size", "2", "--workers", "0", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    import re

    tail = lines[-4:]
    assert [ln.split(":")[0] for ln in tail] == ["loader nyu decode-batch", "loader nyu cache",
                                                  "loader kitti decode-batch", "loader kitti cache"]
    assert all(re.fullmatch(r"loader \w+ [\w-]+: \d+ samples/s \(\d+ per core\)", ln) for ln in tail), tail
    import json

    res = json.loads(out.read_text())["results"]
    assert res["kitti"]["cache_build"]["frames"] == 2 and res["nyu"]["cache"]["samples"] == 2
