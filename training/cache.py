"""Decode once: a training set as memory-mapped arrays at the profile's base resolution.

    python -m training.cache --config training/configs/nyu.yaml --out /data/cache/nyu_train [--workers 8]
    python -m training.train --config training/configs/nyu.yaml --out runs/nyu --set data.train_cache=/data/cache/nyu_train

Each frame of ``data.train`` is decoded, masked (the profile's depth range, the source's validity and,
where the source asks for it, each image's min/max depth) and resized to the base resolution of the
evaluation transform (``mono_depth_ros.preprocess.compute_transform``: NYU 640x480 -> 320x240, KITTI
halved) exactly as :class:`training.augment.JointTransform` does before its warp.  Stored:

* ``rgb.u8``: the base-resolution RGB, uint8, frames back to back (h x w x 3 each);
* dense depth (``gt_resample: nearest``, NYU): ``depth.u16``, uint16 at the base resolution (nearest
  source pixel, so valid and invalid pixels never mix), metres = value / ``depth_scale``, 0 = invalid;
* sparse depth (``masked_mean``, KITTI LiDAR): the valid source pixels as points, ``uv.u16`` (u, v) at
  the source resolution and ``z.u16`` (value / ``depth_scale`` = metres): the LiDAR projection is
  done once, here, and the training target is still the masked mean of the source points;
* ``index.npy`` (per frame: offsets, sizes, source size), ``frames.jsonl`` (name, source files, sizes)
  and ``manifest.json`` (format, settings and their sha256, array sizes).

The settings (dataset spec without its location keys, list-file contents, profile geometry and
depth range, min/max masking, GT kind, depth scale) are hashed; the trainer refuses a cache whose
settings differ from its config's (:func:`check_cache`).  The cache is written into a temporary folder
beside ``--out`` and moved into place at the end; an existing ``--out`` is never replaced without
``--overwrite`` (and then only if it is a cache).
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from mono_depth_ros.preprocess import compute_transform, resized
from mono_depth_ros.profiles import Profile

from .config import TrainError, resolve_config
from .datasets import (SOURCES, CachedSource, DatasetError, FrameSource, KittiObject, KittiRaw, NyuLabeledMat,
                       NyuSync, Subset, build_source, fork_safe_threads, limit_threads, mask_depth)
from .utils import apply_overrides, load_yaml_config, profile_from_config

FORMAT = "mono_depth_ros.training.cache"
VERSION = 1
# keys of a dataset spec that say where the data is, not what it is (a cache moves between machines)
LOCATION_KEYS = ("root", "path", "gt_root", "velodyne_cache")
# keys whose value is a file whose *content* matters (split lists)
LIST_KEYS = ("list", "exclude_list", "split_file")
# keys that do not change the frames (in-memory caching, repetition)
IGNORED_KEYS = ("cache", "repeat", "gt_resample", "mask_min_max_eval")
NATIVE_DEPTH_SCALE = {"nyu_sync": 1000.0, "nyu_mat": 1000.0, "kitti_raw": 256.0, "kitti_object": 256.0,
                      "synthetic": 1000.0}


class CacheError(ValueError):
    """A cache is missing, incomplete, corrupt, or was built with other settings."""


# ---- settings ----------------------------------------------------------------------------------------
def _source_default(typ: str, key: str, fallback: Any) -> Any:
    cls = SOURCES[typ]
    try:
        p = inspect.signature(cls.__init__).parameters.get(key)
    except (TypeError, ValueError):
        p = None
    if p is not None and p.default is not inspect.Parameter.empty:
        return p.default
    return getattr(cls, key, fallback)


def spec_is_sparse(spec: Dict[str, Any]) -> bool:
    typ = spec.get("type")
    if typ not in SOURCES:
        raise DatasetError(f"dataset type {typ!r} unknown; expected one of {', '.join(SOURCES)}")
    return bool(spec.get("sparse", _source_default(typ, "sparse", False)))


def gt_kind(spec: Dict[str, Any], gt_resample: Optional[str]) -> str:
    """"dense" (nearest-neighbour GT) or "sparse" (masked mean of points), as DepthDataset chooses."""
    r = gt_resample or ("masked_mean" if spec_is_sparse(spec) else "nearest")
    if r not in ("nearest", "masked_mean"):
        raise DatasetError(f"gt_resample must be 'nearest' or 'masked_mean', got {r!r}")
    return "sparse" if r == "masked_mean" else "dense"


def _file_digest(p: Any) -> str:
    path = Path(os.path.expandvars(os.path.expanduser(str(p))))
    try:
        return f"{path.name}:sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    except OSError:
        return f"{path.name}:unreadable"


def cache_settings(spec: Dict[str, Any], profile: Profile, gt_resample: Optional[str] = None) -> Dict[str, Any]:
    """Everything that decides a cache's content, as plain JSON (see the module docstring)."""
    spec = dict(spec)
    typ = spec.get("type")
    kind = gt_kind(spec, gt_resample or spec.get("gt_resample"))
    src = {}
    for k, v in sorted(spec.items()):
        if k in LOCATION_KEYS or k in IGNORED_KEYS:
            continue
        src[k] = _file_digest(v) if k in LIST_KEYS and v is not None else v
    mm = bool(spec.get("mask_min_max", _source_default(typ, "mask_min_max", False)))
    native = float(spec.get("depth_scale") or NATIVE_DEPTH_SCALE.get(typ, 1000.0)) if typ == "nyu_sync" \
        else NATIVE_DEPTH_SCALE.get(typ, 1000.0)
    scale = native if profile.max_depth * native <= 65535 else float(np.floor(65535.0 / profile.max_depth))
    if scale < 1:
        raise DatasetError(f"profile max_depth {profile.max_depth} m does not fit a uint16 depth code")
    return {
        "format": FORMAT, "version": VERSION, "source": src, "gt": kind, "mask_min_max": mm,
        "depth_scale": scale,
        "profile": {"input_w": profile.input_w, "input_h": profile.input_h,
                    "resize_w": profile.resize_w or profile.input_w, "resize_h": profile.resize_h or profile.input_h,
                    "min_depth": profile.min_depth, "max_depth": profile.max_depth},
    }


def settings_checksum(settings: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _diff(a: Any, b: Any, prefix: str = "") -> List[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: List[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: cache {a!r}, config {b!r}"]


# ---- one frame, decoded and prepared -----------------------------------------------------------------
@dataclass
class PreparedFrame:
    rgb: np.ndarray                    # (h, w, 3) uint8 at the base resolution
    src_w: int
    src_h: int
    depth: Optional[np.ndarray] = None  # dense: (h, w) uint16, value / depth_scale = m, 0 = invalid
    uv: Optional[np.ndarray] = None     # sparse: (n, 2) uint16 source pixel (u, v) of each valid point
    z: Optional[np.ndarray] = None      # sparse: (n,) uint16 depth code
    name: str = ""


def quantize_depth(d: np.ndarray, scale: float) -> np.ndarray:
    """Metres (all valid) -> uint16 codes in [1, 65535] (0 stays reserved for 'invalid')."""
    return np.clip(np.rint(d.astype(np.float64) * scale), 1, 65535).astype(np.uint16)


class FramePreparer:
    """Source frame i -> :class:`PreparedFrame` (the decode path of the batch loader and the cache builder)."""

    def __init__(self, source: FrameSource, profile: Profile, settings: Dict[str, Any]):
        self.source, self.profile = source, profile
        self.sparse = settings["gt"] == "sparse"
        self.depth_scale = float(settings["depth_scale"])
        self.mask_min_max = bool(settings["mask_min_max"])

    def __len__(self) -> int:
        return len(self.source)

    def name(self, i: int) -> str:
        return self.source.name(i)

    def frame(self, i: int) -> PreparedFrame:
        rgb, depth, valid, name = self.source.load(i)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise DatasetError(f"{name}: expected RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        if depth.shape != (h, w) or (valid is not None and valid.shape != (h, w)):
            raise DatasetError(f"{name}: depth {depth.shape} does not match the RGB size {(h, w)}")
        p = self.profile
        v = mask_depth(depth, p.min_depth, p.max_depth, self.mask_min_max, valid)
        t = compute_transform(w, h, p)
        base = np.ascontiguousarray(resized(rgb, t))   # the evaluation transform's resize step, as augment
        if self.sparse:
            vs, us = np.nonzero(v)
            uv = np.stack([us, vs], axis=1).astype(np.uint16)
            return PreparedFrame(base, w, h, uv=uv, z=quantize_depth(depth[vs, us], self.depth_scale), name=name)
        q = np.zeros((h, w), np.uint16)
        q[v] = quantize_depth(depth[v], self.depth_scale)
        if (t.resized_w, t.resized_h) != (w, h):
            q = cv2.warpAffine(q, t.resize_matrix()[:2], (t.resized_w, t.resized_h), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return PreparedFrame(base, w, h, depth=q, name=name)

    def sources(self, i: int) -> List[str]:
        return frame_paths(self.source, i)


def frame_paths(src: FrameSource, i: int) -> List[str]:
    """The files frame i of a source is read from, absolute (for the manifest); [] where there are none."""
    return [os.path.abspath(p) for p in _frame_paths(src, i)]


def _frame_paths(src: FrameSource, i: int) -> List[str]:
    while isinstance(src, (Subset, CachedSource)):
        if isinstance(src, Subset):
            i, src = src.indices[i], src.source
        else:
            src = src.source
    if isinstance(src, NyuSync):
        return [str(p) for p in src.pairs[i]]
    if isinstance(src, NyuLabeledMat):
        return [f"{src.path}#{src.depth_key}[{src.indices[i]}]"]
    if isinstance(src, KittiRaw):
        it = src.items[i]
        off = src.official_gt_path(it) if src.gt in ("official", "auto") else None
        return [str(src.image_path(it)), str(off if off is not None else src.velodyne_path(it))]
    if isinstance(src, KittiObject):
        k = src.ids[i]
        png = src.root / "proj_depth_velodyne" / f"{k}.png"
        use_png = src.gt == "png" or (src.gt == "auto" and png.is_file())
        return [str(src.root / "image_2" / f"{k}.png"), str(png if use_png else src.root / "velodyne" / f"{k}.bin")]
    return []


# ---- reading ---------------------------------------------------------------------------------------------
# index.npy columns
I_RGB, I_H, I_W, I_DEPTH, I_COUNT, I_SRCW, I_SRCH = range(7)


class FrameCache:
    """A cache written by :func:`build_cache`, read through memory maps (opened lazily in each process)."""

    def __init__(self, path: "str | Path"):
        self.path = Path(os.path.expandvars(os.path.expanduser(str(path))))
        mf = self.path / "manifest.json"
        if not self.path.is_dir():
            raise CacheError(f"cache {self.path} does not exist (make one with python -m training.cache)")
        if not mf.is_file():
            raise CacheError(f"{self.path} is not a training cache (no manifest.json; an interrupted build leaves "
                             "only a .tmp folder)")
        try:
            self.manifest = json.loads(mf.read_text())
        except ValueError as exc:
            raise CacheError(f"{mf}: not JSON ({exc})") from None
        if self.manifest.get("format") != FORMAT:
            raise CacheError(f"{mf}: not a {FORMAT} manifest")
        if self.manifest.get("version") != VERSION:
            raise CacheError(f"{self.path}: cache format version {self.manifest.get('version')}, this code reads "
                             f"{VERSION}; rebuild it with python -m training.cache")
        self.settings = self.manifest["settings"]
        self.sparse = self.settings["gt"] == "sparse"
        self.depth_scale = float(self.settings["depth_scale"])
        self.index = np.load(self.path / "index.npy")
        if self.index.ndim != 2 or len(self.index) != int(self.manifest["frames"]):
            raise CacheError(f"{self.path}/index.npy does not hold {self.manifest['frames']} frames")
        for name, info in self.manifest["arrays"].items():
            f = self.path / name
            if not f.is_file() or f.stat().st_size != int(info["bytes"]):
                raise CacheError(f"{f}: missing or truncated (expected {info['bytes']} bytes)")
        self._maps: Optional[Dict[str, np.ndarray]] = None
        self._pid: Optional[int] = None
        self._names: Optional[List[str]] = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_maps"] = None       # never pickle the mapped data (spawned workers map it themselves)
        return d

    def _arrays(self) -> Dict[str, np.ndarray]:
        if self._maps is None or self._pid != os.getpid():
            maps = {}
            for name, info in self.manifest["arrays"].items():
                if int(info["bytes"]) == 0:
                    maps[name] = np.zeros(0, info["dtype"])
                else:
                    maps[name] = np.memmap(self.path / name, dtype=info["dtype"], mode="r")
            self._maps, self._pid = maps, os.getpid()
        return self._maps

    def check(self, settings: Dict[str, Any]) -> None:
        """Raises CacheError naming what differs unless the cache was built with ``settings``."""
        if self.manifest.get("checksum") == settings_checksum(settings):
            return
        diff = _diff(self.settings, settings) or ["(checksum differs)"]
        raise CacheError(f"cache {self.path} was built with other settings than this config: " + "; ".join(diff)
                         + " -- rebuild it (python -m training.cache --config ... --out NEW_DIR)")

    def __len__(self) -> int:
        return len(self.index)

    def name(self, i: int) -> str:
        if self._names is None:
            with open(self.path / "frames.jsonl", encoding="utf-8") as f:
                self._names = [json.loads(ln)["name"] for ln in f]
        return self._names[i]

    def frame(self, i: int) -> PreparedFrame:
        """Views into the memory maps (copy what you keep)."""
        a = self._arrays()
        r = self.index[i]
        h, w = int(r[I_H]), int(r[I_W])
        o = int(r[I_RGB])
        rgb = a["rgb.u8"][o:o + h * w * 3].reshape(h, w, 3)
        d, n = int(r[I_DEPTH]), int(r[I_COUNT])
        if self.sparse:
            return PreparedFrame(rgb, int(r[I_SRCW]), int(r[I_SRCH]), uv=a["uv.u16"][2 * d:2 * (d + n)].reshape(n, 2),
                                 z=a["z.u16"][d:d + n], name=str(i))
        return PreparedFrame(rgb, int(r[I_SRCW]), int(r[I_SRCH]), depth=a["depth.u16"][d:d + h * w].reshape(h, w),
                             name=str(i))


def open_cache(path: "str | Path", settings: Dict[str, Any]) -> FrameCache:
    c = FrameCache(path)
    c.check(settings)
    return c


# ---- writing ----------------------------------------------------------------------------------------------
_WORKER: Optional[FramePreparer] = None


def _init_worker(prep: FramePreparer) -> None:
    global _WORKER
    _WORKER = prep
    limit_threads(1)


def _prepare(i: int) -> Tuple[int, PreparedFrame, List[str]]:
    assert _WORKER is not None
    return i, _WORKER.frame(i), _WORKER.sources(i)


def _is_cache_dir(p: Path) -> bool:
    try:
        return json.loads((p / "manifest.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _check_out(out: Path, overwrite: bool, meanwhile: bool = False) -> None:
    """Only a training cache (or an empty folder) is replaced, and only with ``overwrite``."""
    if not out.exists():
        return
    if not overwrite and not meanwhile:
        raise CacheError(f"{out} already exists; pass --overwrite to replace it (only a cache is replaced)")
    if not (_is_cache_dir(out) or (out.is_dir() and not any(out.iterdir()))):
        what = "appeared meanwhile and is not" if meanwhile else "exists and is not"
        raise CacheError(f"{out} {what} a training cache; not replacing it")


def _prepared_frames(prep: FramePreparer, n: int, workers: int) -> Tuple[Iterator[Tuple[int, PreparedFrame, List[str]]],
                                                                         Any]:
    """(the prepared frames in order, the worker pool or None)."""
    if workers <= 0:
        _init_worker(prep)
        return map(_prepare, range(n)), None
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with fork_safe_threads():
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(prep,))
    return pool.imap(_prepare, range(n), chunksize=4), pool


class _ArrayWriter:
    """The cache's flat arrays (rgb.u8 and depth.u16, or uv.u16 + z.u16 when sparse), the index and
    frames.jsonl, appended frame by frame into the temporary folder ``tmp``."""

    def __init__(self, tmp: Path, n: int, sparse: bool, out: Path):
        self.tmp, self.n, self.sparse, self.out = tmp, n, sparse, out
        self.names = ["rgb.u8"] + (["uv.u16", "z.u16"] if sparse else ["depth.u16"])
        self.files = {k: open(tmp / k, "wb") for k in self.names}
        self.index = np.zeros((n, 8), np.int64)
        self.offs = {k: 0 for k in self.names}   # in elements

    def _write(self, key: str, arr: np.ndarray) -> None:
        self.files[key].write(np.ascontiguousarray(arr).data)
        self.offs[key] += arr.size

    def _check_space(self, fr: PreparedFrame) -> None:
        per = fr.rgb.nbytes + (fr.depth.nbytes if fr.depth is not None else 6 * len(fr.z))
        free = shutil.disk_usage(self.tmp).free
        if per * self.n * 1.05 > free:
            raise CacheError(f"about {per * self.n / 1e9:.1f} GB needed for {self.n} frames, {free / 1e9:.1f} GB "
                             f"free under {self.out.parent}")

    def add(self, i: int, fr: PreparedFrame) -> None:
        h, w = fr.rgb.shape[:2]
        if i == 0:
            self._check_space(fr)
        self.index[i, :] = (self.offs["rgb.u8"], h, w, 0, 0, fr.src_w, fr.src_h, 0)
        self._write("rgb.u8", fr.rgb)
        if self.sparse:
            self.index[i, I_DEPTH], self.index[i, I_COUNT] = self.offs["z.u16"], len(fr.z)
            self._write("uv.u16", fr.uv)
            self._write("z.u16", fr.z)
        else:
            self.index[i, I_DEPTH], self.index[i, I_COUNT] = self.offs["depth.u16"], fr.depth.size
            self._write("depth.u16", fr.depth)

    def finish(self) -> Dict[str, Any]:
        """Flushes and closes the arrays, saves the index; returns the manifest's ``arrays``."""
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        np.save(self.tmp / "index.npy", self.index)
        return {k: {"dtype": "uint8" if k.endswith(".u8") else "uint16",
                    "bytes": self.offs[k] * (1 if k.endswith(".u8") else 2)} for k in self.names}

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def _write_frames(writer: _ArrayWriter, results, bar) -> None:
    with open(writer.tmp / "frames.jsonl", "w", encoding="utf-8") as fj:
        for i, fr, paths in results:
            writer.add(i, fr)
            h, w = fr.rgb.shape[:2]
            fj.write(json.dumps({"name": fr.name, "sources": paths, "src_size": [fr.src_w, fr.src_h],
                                 "base_size": [w, h]}) + "\n")
            if bar is not None:
                bar.update(1)
        fj.flush()
        os.fsync(fj.fileno())


def _write_manifest(tmp: Path, manifest: Dict[str, Any]) -> None:
    with open(tmp / "manifest.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2))
        f.flush()
        os.fsync(f.fileno())


def _move_into_place(tmp: Path, out: Path) -> None:
    """The old cache (if --overwrite) goes aside first and is removed last."""
    old = None
    if out.exists():
        _check_out(out, True, meanwhile=True)
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old)


def build_cache(spec: Dict[str, Any], profile: Profile, out: "str | Path", gt_resample: Optional[str] = None,
                workers: int = 0, overwrite: bool = False, progress: bool = False,
                command: Optional[str] = None) -> Dict[str, Any]:
    """Decode every frame of dataset ``spec`` once into a cache at ``out``; returns the manifest."""
    out = Path(os.path.expandvars(os.path.expanduser(str(out))))
    _check_out(out, overwrite)
    settings = cache_settings(spec, profile, gt_resample)
    src_spec = {k: v for k, v in spec.items() if k not in ("cache", "repeat")}
    source = build_source(src_spec)
    prep = FramePreparer(source, profile, settings)
    n = len(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    writer = _ArrayWriter(tmp, n, prep.sparse, out)
    t0 = time.perf_counter()
    pool = None
    bar = None
    try:
        results, pool = _prepared_frames(prep, n, workers)
        if progress:
            bar = tqdm(total=n, desc="cache", unit="frame", file=sys.stderr, dynamic_ncols=True)
        _write_frames(writer, results, bar)
        arrays = writer.finish()
        manifest = {"format": FORMAT, "version": VERSION, "settings": settings,
                    "checksum": settings_checksum(settings), "frames": n, "arrays": arrays,
                    "source": {k: str(v) for k, v in spec.items() if k in LOCATION_KEYS or k in LIST_KEYS},
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "seconds": round(time.perf_counter() - t0, 3), "command": command}
        _write_manifest(tmp, manifest)
        _move_into_place(tmp, out)
        return manifest
    except BaseException:
        writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.cache", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="training config (its data.train and profile are cached)")
    ap.add_argument("--out", required=True, help="cache folder to create")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--workers", type=int, default=max(0, (os.cpu_count() or 1) - 1),
                    help="decoding processes (0: in this process)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing cache at --out")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        cfg = resolve_config(apply_overrides(load_yaml_config(args.config), args.set))
        profile = profile_from_config(cfg["profile"])
        spec = cfg["data"]["train"]
        gt = cfg.get("gt_resample") or spec.get("gt_resample")
        m = build_cache(spec, profile, args.out, gt, workers=args.workers, overwrite=args.overwrite,
                        progress=not args.no_progress, command=" ".join(["python -m training.cache"] + list(argv or sys.argv[1:])))
    except KeyboardInterrupt:
        print("cache: interrupted; nothing was written", file=sys.stderr)
        return 130
    except (CacheError, DatasetError, TrainError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"cache: error: {exc}", file=sys.stderr)
        return 2
    size = sum(a["bytes"] for a in m["arrays"].values())
    print(f"cache {args.out}: {m['frames']} frames, {size / 1e6:.1f} MB ({m['settings']['gt']} depth, "
          f"1/{m['settings']['depth_scale']:g} m), {m['seconds']:.1f} s, settings {m['checksum'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
