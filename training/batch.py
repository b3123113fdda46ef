"""The batch data path: uint8 frames in the loader, the paper's augmentation in batch on the training device.

Loader side (:class:`FrameBatches`, a map-style dataset indexed by a whole batch of ``(frame, seed)``
draws as :class:`training.datasets.StreamBatchSampler` yields them): frames at the base resolution
come from a cache (:class:`training.cache.FrameCache`, memory-mapped) or are decoded on the fly
(:class:`training.cache.FramePreparer`, the "decode path"); each batch crosses the process boundary
as one uint8 RGB tensor (zero-padded to the largest frame), uint16 depth (dense) or uint16 points
(sparse), and a few per-sample matrices.  The augmentation parameters are drawn exactly as the
per-sample path draws them (:func:`training.augment.sample_params` with the generator seeded by
``(seed, stage, k)``), so both paths see the same geometry for the same sample.

Device side (:class:`BatchAugment`): the warp of the RGB (scale, rotation, crop, flip in one affine
map), colour, normalisation, and the ground truth through the same map -- nearest base-resolution
depth pixel (dense) or the masked mean of the source points falling in each output pixel (sparse),
depth divided by the scale; valid and invalid pixels never mix.  Backends: ``torch`` (affine grid +
``grid_sample``, any device: the GPU path) and ``cv2`` (``cv2.warpAffine`` per image from the uint8
batch, CPU only; faster than ``grid_sample`` on a CPU, bit-identical images to the per-sample path).
The ground truth is computed with torch on the device in both.

The per-sample CPU path (:class:`training.augment.JointTransform` in the loader workers) stays as the
reference; ``test/test_training_batch.py`` checks both give the same geometry and depth.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mono_depth_ros.preprocess import compute_transform
from mono_depth_ros.profiles import Profile

from .augment import AugmentConfig, augment_matrix, base_matrix, eval_crop_matrix, output_matrix, sample_params


def _alloc(shape: Tuple[int, ...], dtype: Any, zero: bool = False):
    """A CPU tensor; in a loader worker directly in shared memory (as torch's default_collate does), so
    handing the batch to the main process copies nothing."""
    import torch
    from torch.utils.data import get_worker_info

    if get_worker_info() is None:
        return torch.zeros(shape, dtype=dtype) if zero else torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    proto = torch.empty(0, dtype=dtype)
    t = proto.new(proto._typed_storage()._new_shared(numel, device="cpu")).view(shape)
    return t.zero_() if zero else t


N_PARAMS = 41


def unpack(batch: Dict[str, Any], device: Any) -> Dict[str, Any]:
    """The packed per-sample numbers of a :class:`FrameBatches` batch as named views, on ``device``."""
    p = batch["params"].to(device, non_blocking=True)
    m = batch["meta"].to(device, non_blocking=True)
    B = p.shape[0]
    out = {"A": p[:, 0:9].view(B, 3, 3), "Ainv": p[:, 9:18].view(B, 3, 3), "Dinv": p[:, 18:27].view(B, 3, 3),
           "S": p[:, 27:36].view(B, 3, 3), "scale": p[:, 36].float(), "color": p[:, 37:40].float(),
           "depth_scale": p[0, 40] if B else p.new_ones(()), "size": m[:, 0:2], "index": batch["meta"][:, 2],
           "count": m[:, 3], "rgb": batch["rgb"]}
    if "points" in batch:
        out["points"] = batch["points"]
    if "depth16" in batch:
        out["depth16"] = batch["depth16"]
    return out


class FrameBatches:
    """Map-style dataset: ``ds[[(frame, seed), ...]]`` -> one collated uint8 batch (dict of tensors).

    ``frames``: a FrameCache or a FramePreparer (``len``, ``frame(i)``, ``sparse``, ``depth_scale``).
    ``repeat``: the frames listed N times (``repeat`` of the dataset spec).  An int key is one sample
    seeded ``(seed, key)`` as :class:`training.datasets.DepthDataset` does.
    """

    def __init__(self, frames: Any, profile: Profile, augment: Optional[AugmentConfig] = None, seed: int = 0,
                 repeat: int = 1):
        self.frames, self.profile, self.seed = frames, profile, seed
        self.augment = augment if augment is not None and augment.enabled else None
        self.sparse = bool(frames.sparse)
        self.depth_scale = float(frames.depth_scale)
        self.n = len(frames)
        self.repeat = max(1, int(repeat))
        self._out = output_matrix(profile)

    def __len__(self) -> int:
        return self.n * self.repeat

    def __getitem__(self, key) -> Dict[str, Any]:
        if isinstance(key, (int, np.integer)):
            key = [(int(key), (self.seed, int(key)))]
        return self.collate(key)

    def matrices(self, src_w: int, src_h: int, base_w: int, base_h: int, seed: Any):
        """(A base->input, D base->output, S source->output) 3x3, scale, colour of one sample."""
        t = compute_transform(src_w, src_h, self.profile)
        if (t.resized_w, t.resized_h) != (base_w, base_h):
            raise ValueError(f"frame base size {base_w}x{base_h} does not match the profile's "
                             f"{t.resized_w}x{t.resized_h} for a {src_w}x{src_h} source (a cache of another profile?)")
        if self.augment is None:
            A, s, c = eval_crop_matrix(t), 1.0, np.ones(3, np.float32)
        else:
            rng = np.random.default_rng(list(seed) if isinstance(seed, (tuple, list)) else seed)
            p = sample_params(self.augment, rng, t)
            A, s, c = augment_matrix(t, p), p.scale, p.color
        D = self._out @ A
        return A, D, D @ base_matrix(t), s, c

    def collate(self, keys: Sequence[Tuple[int, Any]]) -> Dict[str, Any]:
        import torch

        B = len(keys)
        frs = [self.frames.frame(int(k[0]) % self.n) for k in keys]
        hs = [f.rgb.shape[0] for f in frs]
        ws = [f.rgb.shape[1] for f in frs]
        H, W = max(hs), max(ws)
        same = len(set(hs)) == 1 and len(set(ws)) == 1
        rgb_t = _alloc((B, H, W, 3), torch.uint8, zero=not same)
        rgb = rgb_t.numpy()
        # the small per-sample numbers travel packed: one float64 and one int64 tensor (one shared-memory
        # segment each, not one per array): PARAMS columns A | Ainv | Dinv | S (3x3 each) | scale | colour | depth scale
        par_t = _alloc((B, N_PARAMS), torch.float64)
        meta_t = _alloc((B, 4), torch.int64)                # h, w, frame index, point count
        par, meta = par_t.numpy(), meta_t.numpy()
        for b, (fr, k) in enumerate(zip(frs, keys)):
            rgb[b, :hs[b], :ws[b]] = fr.rgb
            a, d, s_, sc, c = self.matrices(fr.src_w, fr.src_h, ws[b], hs[b], k[1])
            par[b, 0:9], par[b, 9:18] = a.ravel(), np.linalg.inv(a).ravel()
            par[b, 18:27], par[b, 27:36] = np.linalg.inv(d).ravel(), s_.ravel()
            par[b, 36], par[b, 37:40], par[b, 40] = sc, c, self.depth_scale
            meta[b] = (hs[b], ws[b], int(k[0]), 0 if fr.z is None else len(fr.z))
        out: Dict[str, Any] = {"rgb": rgb_t, "params": par_t, "meta": meta_t}
        if self.sparse:
            pts_t = _alloc((int(meta[:, 3].sum()), 3), torch.uint16)   # u, v (source pixel), depth code
            pts = pts_t.numpy()
            o = 0
            for fr in frs:
                pts[o:o + len(fr.z), :2] = fr.uv
                pts[o:o + len(fr.z), 2] = fr.z
                o += len(fr.z)
            out["points"] = pts_t
        else:
            dep_t = _alloc((B, H, W), torch.uint16, zero=not same)
            dep = dep_t.numpy()
            for b, fr in enumerate(frs):
                dep[b, :hs[b], :ws[b]] = fr.depth
            out["depth16"] = dep_t
        return out


def _u16(t: Any, device: Any):
    """A uint16 CPU tensor on ``device`` as int32 (moved as int16 bits: torch's uint16 has few CUDA kernels)."""
    import torch

    return t.view(torch.int16).to(device, non_blocking=True).to(torch.int32).bitwise_and_(0xFFFF)


class BatchAugment:
    """A uint8 batch from :class:`FrameBatches` -> ``image`` (B,3,h,w) float32 normalised, ``depth``
    (B,1,oh,ow) float32 metres (0 = invalid), ``valid`` (B,1,oh,ow) bool, ``index``, on ``device``.

    ``backend``: "torch" (affine grid + grid_sample; any device), "cv2" (CPU only) or "auto" (cv2 on the
    CPU, torch elsewhere); ``sparse_impl`` likewise for the sparse GT: "torch" (vectorised) or "numpy" (CPU).  ``round_rgb``: round the warped RGB to integers as the uint8 warp of the
    per-sample path does (torch backend; the cv2 one is uint8 anyway).
    """

    def __init__(self, profile: Profile, device: Any = "cpu", backend: str = "auto", round_rgb: bool = True,
                 sparse_impl: str = "auto"):
        import torch

        self.profile = profile
        self.device = torch.device(device)
        if backend == "auto":
            backend = "cv2" if self.device.type == "cpu" else "torch"
        if backend not in ("torch", "cv2"):
            raise ValueError(f"batch augmentation backend must be torch, cv2 or auto, got {backend!r}")
        if backend == "cv2" and self.device.type != "cpu":
            raise ValueError("the cv2 batch augmentation backend runs on the CPU only")
        self.backend = backend
        self.round_rgb = round_rgb
        # sparse GT: "torch" (vectorised over the batch; the GPU path) or "numpy" (per image; faster on a CPU)
        if sparse_impl == "auto":
            sparse_impl = "numpy" if self.device.type == "cpu" else "torch"
        if sparse_impl not in ("torch", "numpy") or (sparse_impl == "numpy" and self.device.type != "cpu"):
            raise ValueError(f"sparse_impl must be torch, numpy (CPU) or auto, got {sparse_impl!r}")
        self.sparse_impl = sparse_impl
        mean = torch.tensor(profile.mean, dtype=torch.float32)
        std = torch.tensor(profile.std, dtype=torch.float32)
        self.a = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(self.device)
        self.b = (-mean / std).view(1, 3, 1, 1).to(self.device)
        # pixel-centre coordinates of the input and output maps (homogeneous), float64
        iy, ix = torch.meshgrid(torch.arange(profile.input_h, dtype=torch.float64),
                                torch.arange(profile.input_w, dtype=torch.float64), indexing="ij")
        self._in_xy1 = torch.stack([ix, iy, torch.ones_like(ix)], -1).to(self.device)        # (ih, iw, 3)
        oy, ox = torch.meshgrid(torch.arange(profile.output_h, dtype=torch.float64),
                                torch.arange(profile.output_w, dtype=torch.float64), indexing="ij")
        self._out_xy1 = torch.stack([ox, oy, torch.ones_like(ox)], -1).to(self.device)      # (oh, ow, 3)
        self._warp: Optional[np.ndarray] = None
        self._img: Optional[np.ndarray] = None
        self._na = self.a.cpu().numpy().reshape(1, 3, 1).astype(np.float32)
        self._nb = self.b.cpu().numpy().reshape(1, 3, 1).astype(np.float32)

    # -- RGB --
    def _rgb_cv2(self, batch: Dict[str, Any]):
        """Warp (uint8, as the per-sample path) + colour and normalisation as one per-channel lookup table
        computed with the per-sample path's float32 operations: bit-identical to it.  The returned tensor
        is a buffer reused by the next call."""
        import torch

        p = self.profile
        rgb = batch["rgb"].numpy()
        B = rgb.shape[0]
        if self._img is None or self._img.shape[0] != B:
            self._img = np.empty((B, 3, p.input_h, p.input_w), np.float32)
            self._warp = np.empty((p.input_h, p.input_w, 3), np.uint8)
        out, warp = self._img, self._warp
        # LUT[b, c, v] = (min(v * colour[b, c], 255) * a[c]) + b[c], float32 step by step (training.augment.Normalizer)
        lut = np.broadcast_to(np.arange(256, dtype=np.float32), (B, 3, 256)) * batch["color"].numpy()[:, :, None]
        lut = np.ascontiguousarray(lut)
        np.minimum(lut, np.float32(255.0), out=lut)
        lut *= self._na
        lut += self._nb
        A = batch["A"].numpy()
        size = batch["size"].numpy()
        for b in range(B):
            h, w = int(size[b, 0]), int(size[b, 1])
            src = rgb[b] if (h, w) == rgb.shape[1:3] else rgb[b, :h, :w]
            cv2.warpAffine(src, A[b, :2], (p.input_w, p.input_h), dst=warp, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            for c, plane in enumerate(cv2.split(warp)):
                cv2.LUT(plane, lut[b, c], dst=out[b, c])
        return torch.from_numpy(out)

    def _rgb_torch(self, batch: Dict[str, Any]):
        import torch
        import torch.nn.functional as F

        dev = self.device
        rgb = batch["rgb"].to(dev, non_blocking=True)
        B, H, W, _ = rgb.shape
        x = rgb.permute(0, 3, 1, 2).contiguous().float()
        Ainv = batch["Ainv"].to(dev, non_blocking=True)[:, :2]                         # (B, 2, 3) input -> base
        uv = torch.einsum("hwk,bjk->bhwj", self._in_xy1, Ainv)                         # base pixel coordinates
        norm = torch.tensor([W, H], dtype=torch.float64, device=dev)
        grid = ((2.0 * uv + 1.0) / norm - 1.0).float()                                 # align_corners=False
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.round_rgb:
            y = torch.round_(y).clamp_(0.0, 255.0)
        return y

    # -- ground truth --
    def _depth_dense(self, batch: Dict[str, Any], scale):
        import torch

        dev = self.device
        d16 = _u16(batch["depth16"], dev)
        B, H, W = d16.shape
        size = batch["size"].to(dev)
        Dinv = batch["Dinv"].to(dev, non_blocking=True)[:, :2]
        uv = torch.einsum("hwk,bjk->bhwj", self._out_xy1, Dinv)                        # (B, oh, ow, 2)
        ui = torch.floor(uv[..., 0] + 0.5).long()
        vi = torch.floor(uv[..., 1] + 0.5).long()
        inside = (ui >= 0) & (vi >= 0) & (ui < size[:, 1, None, None]) & (vi < size[:, 0, None, None])
        idx = torch.where(inside, vi * W + ui, torch.zeros_like(ui)).view(B, -1)
        code = torch.gather(d16.view(B, -1), 1, idx).view_as(ui)
        ok = inside & (code > 0)
        ds = batch["depth_scale"].to(dev)
        d = torch.where(ok, (code.double() / ds).float() / scale[:, None, None], torch.zeros((), device=dev))
        return d, ok

    def _depth_sparse_cpu(self, batch: Dict[str, Any], scale):
        """Per sample with numpy (training.augment.resample_depth's masked mean, on the depth codes)."""
        import torch

        p = self.profile
        oh, ow = p.output_h, p.output_w
        count = batch["count"].numpy()
        B = len(count)
        pts, S = batch["points"].numpy(), batch["S"].numpy()
        uv, z = pts[:, :2], pts[:, 2]
        ds = float(batch["depth_scale"])
        sc = scale.numpy().astype(np.float32)
        d = np.zeros((B, oh * ow), np.float32)
        ok = np.zeros((B, oh * ow), bool)
        o = 0
        for b in range(B):
            u = uv[o:o + count[b], 0].astype(np.float64)
            v = uv[o:o + count[b], 1].astype(np.float64)
            zz = z[o:o + count[b]].astype(np.float64)
            o += count[b]
            M = S[b]
            xi = np.floor(M[0, 0] * u + M[0, 1] * v + M[0, 2] + 0.5).astype(np.int64)
            yi = np.floor(M[1, 0] * u + M[1, 1] * v + M[1, 2] + 0.5).astype(np.int64)
            inside = (xi >= 0) & (xi < ow) & (yi >= 0) & (yi < oh)
            idx = yi[inside] * ow + xi[inside]
            s_ = np.bincount(idx, weights=zz[inside], minlength=oh * ow)
            n_ = np.bincount(idx, minlength=oh * ow)
            ok[b] = n_ > 0
            d[b, ok[b]] = (s_[ok[b]] / n_[ok[b]] / ds).astype(np.float32) / sc[b]
        return torch.from_numpy(d.reshape(B, oh, ow)), torch.from_numpy(ok.reshape(B, oh, ow))

    def _depth_sparse(self, batch: Dict[str, Any], scale):
        import torch

        if self.sparse_impl == "numpy":
            return self._depth_sparse_cpu(batch, scale)

        dev = self.device
        p = self.profile
        oh, ow = p.output_h, p.output_w
        count = batch["count"].to(dev)
        B = count.shape[0]
        pts = _u16(batch["points"], dev).to(torch.float64)
        uv, z = pts[:, :2], pts[:, 2]
        S = batch["S"].to(dev, non_blocking=True)
        bi = torch.repeat_interleave(torch.arange(B, device=dev), count)
        M = S[bi]                                                                      # (P, 3, 3)
        x = M[:, 0, 0] * uv[:, 0] + M[:, 0, 1] * uv[:, 1] + M[:, 0, 2]
        y = M[:, 1, 0] * uv[:, 0] + M[:, 1, 1] * uv[:, 1] + M[:, 1, 2]
        xi = torch.floor(x + 0.5).long()
        yi = torch.floor(y + 0.5).long()
        inside = (xi >= 0) & (xi < ow) & (yi >= 0) & (yi < oh)
        idx = (bi * (oh * ow) + yi * ow + xi)[inside]
        # integer codes summed in float64: exact, so the order of the (GPU) atomics does not matter
        sums = torch.zeros(B * oh * ow, dtype=torch.float64, device=dev).index_add_(0, idx, z[inside])
        cnt = torch.zeros(B * oh * ow, dtype=torch.float64, device=dev).index_add_(
            0, idx, torch.ones_like(z[inside]))
        ok = cnt > 0
        ds = batch["depth_scale"].to(dev)
        mean = torch.where(ok, sums / torch.clamp_min(cnt, 1.0) / ds, torch.zeros((), dtype=torch.float64, device=dev))
        d = mean.float().view(B, oh, ow) / scale[:, None, None]
        return d, ok.view(B, oh, ow)

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        dev = self.device
        batch = unpack(batch, dev)
        if self.backend == "cv2":
            x = self._rgb_cv2(batch)                       # colour and normalisation included
        else:
            x = self._rgb_torch(batch)
            color = batch["color"].to(dev, non_blocking=True).view(-1, 3, 1, 1)
            x.mul_(color).clamp_max_(255.0).mul_(self.a).add_(self.b)
        scale = batch["scale"].to(dev, non_blocking=True)
        d, ok = self._depth_sparse(batch, scale) if "points" in batch else self._depth_dense(batch, scale)
        return {"image": x, "depth": d.unsqueeze(1), "valid": ok.unsqueeze(1), "index": batch["index"]}


def batch_loader(frames: Any, profile: Profile, augment: Optional[AugmentConfig], sampler: Any, workers: int = 0,
                 prefetch_factor: int = 4, pin_memory: bool = False, seed: int = 0, repeat: int = 1):
    """A DataLoader of uint8 batches (one collated batch per sampler element) over ``frames``."""
    import torch
    from torch.utils.data import DataLoader

    from .datasets import worker_init

    ds = FrameBatches(frames, profile, augment, seed=seed, repeat=repeat)
    kw: Dict[str, Any] = {}
    if workers > 0:
        kw = {"worker_init_fn": worker_init, "prefetch_factor": prefetch_factor, "persistent_workers": False}
    return DataLoader(ds, batch_size=None, sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed), **kw)


def frames_from_config(spec: Dict[str, Any], profile: Profile, gt_resample: Optional[str] = None,
                       cache: Optional[str] = None) -> Tuple[Any, int]:
    """(frames, repeat) for the batch path: the cache at ``cache`` (refused unless built with the settings
    of ``spec`` / ``profile``), else the decode path over the source ``spec`` describes."""
    from .cache import FramePreparer, cache_settings, open_cache
    from .datasets import build_source

    settings = cache_settings(spec, profile, gt_resample)
    repeat = int(spec.get("repeat", 1) or 1)
    if cache:
        return open_cache(cache, settings), repeat
    src = build_source({k: v for k, v in spec.items() if k != "repeat"})
    return FramePreparer(src, profile, settings), repeat


def sample_list(n: int, batch: int, seed: int = 0) -> List[Tuple[int, Tuple[int, int, int]]]:
    """``batch`` (frame, seed) draws of frames 0..n-1 as the sampler makes them (tests, benchmark)."""
    return [(k % n, (seed, 0, k)) for k in range(batch)]
