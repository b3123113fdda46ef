"""Small helpers shared by train.py and evaluate.py: configs, colourised depth, image grids."""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import cv2
import numpy as np
import yaml

from mono_depth_ros.profiles import Profile, get_profile
from mono_depth_ros.yaml_files import read_yaml_mapping


# ---- configs -----------------------------------------------------------------------------------
def deep_merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml_config(path: "str | Path") -> Dict[str, Any]:
    """A YAML config; ``base: other.yaml`` (relative to this file) is loaded first and overridden."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist")
    cfg = read_yaml_mapping(path, "config")
    base = cfg.pop("base", None)
    if base:
        cfg = deep_merge(load_yaml_config(path.parent / base), cfg)
    return cfg


def apply_overrides(cfg: Dict[str, Any], sets: Iterable[str]) -> Dict[str, Any]:
    """``a.b.c=value`` overrides (value parsed as YAML)."""
    cfg = copy.deepcopy(cfg)
    for s in sets or []:
        if "=" not in s:
            raise ValueError(f"--set expects key.path=value, got {s!r}")
        key, _, raw = s.partition("=")
        node = cfg
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = yaml.safe_load(raw)
    return cfg


def check_config_keys(cfg: Dict[str, Any], defaults: Dict[str, Any],
                      free: Iterable[str] = (), _prefix: str = "") -> None:
    """Rejects keys of ``cfg`` that ``defaults`` does not have (a misspelt ``--set`` or YAML key).

    Only keys whose default is a mapping are checked, recursively; an entry whose default is not a
    mapping (``None``, a name, a number) or whose dotted path is in ``free`` may hold anything (a
    dataset spec, an inline profile).  Raises ``ValueError`` naming the key, the closest known key
    (difflib) and the known keys; also when a mapping is replaced by a plain value or the reverse.
    """
    import difflib

    free = set(free)
    for k, v in cfg.items():
        path = f"{_prefix}{k}"
        if k not in defaults:
            known = sorted(str(x) for x in defaults)
            close = difflib.get_close_matches(str(k), known, n=1, cutoff=0.6)
            hint = f"; did you mean {_prefix + close[0]!r}?" if close else ""
            where = f"under {_prefix[:-1]!r}" if _prefix else "at the top level"
            raise ValueError(f"unknown config key {path!r}{hint} (known keys {where}: {', '.join(known)})")
        d = defaults[k]
        if path in free:
            continue
        if isinstance(d, dict):
            if v is None:
                continue
            if not isinstance(v, dict):
                raise ValueError(f"config key {path!r} must be a mapping (keys: {', '.join(sorted(d))}), "
                                 f"got {v!r}")
            check_config_keys(v, d, free, _prefix=path + ".")
        elif isinstance(v, dict) and d is not None:
            raise ValueError(f"config key {path!r} takes a value like {d!r}, not a mapping ({v!r}); "
                             f"is a key misplaced?")


def profile_from_config(spec: Any) -> Profile:
    """``nyu`` / ``kitti`` or an inline dict; ``base: nyu`` in the dict starts from a named profile."""
    if isinstance(spec, (str, Profile)):
        return get_profile(spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        base = spec.pop("base", None)
        spec = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
        if base:
            return get_profile(base).replace(**spec)
        return Profile.from_dict(spec)
    raise ValueError(f"profile must be a name or a mapping, got {type(spec).__name__}")


def resolve_path(p: Optional[str], base: Optional[Path] = None) -> Optional[str]:
    if p is None:
        return None
    p = os.path.expandvars(os.path.expanduser(str(p)))
    if base is not None and not os.path.isabs(p) and not os.path.exists(p) and (base / p).exists():
        return str(base / p)
    return p


# ---- visualisation -----------------------------------------------------------------------------
def colorize(depth: np.ndarray, lo: float, hi: float, log: bool = True) -> np.ndarray:
    """Depth (H, W) -> RGB uint8 (turbo, near = red/warm... far = blue); invalid (<=0 / NaN) black."""
    d = np.asarray(depth, np.float32)
    ok = np.isfinite(d) & (d > 0)
    lo, hi = max(lo, 1e-3), max(hi, lo * 1.001)
    with np.errstate(invalid="ignore", divide="ignore"):
        if log:
            t = (np.log(np.where(ok, d, lo)) - np.log(lo)) / (np.log(hi) - np.log(lo))
        else:
            t = (np.where(ok, d, lo) - lo) / (hi - lo)
    t = np.clip(1.0 - t, 0, 1)
    img = cv2.applyColorMap((t * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[:, :, ::-1]
    img = np.where(ok[..., None], img, 0)
    return np.ascontiguousarray(img, dtype=np.uint8)


def colorize_error(err: np.ndarray, hi: float = 0.5) -> np.ndarray:
    """|log error| (H, W) -> RGB uint8 (0 black .. hi and above bright); NaN black."""
    ok = np.isfinite(err)
    t = np.clip(np.where(ok, err, 0) / hi, 0, 1)
    img = cv2.applyColorMap((t * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[:, :, ::-1]
    return np.ascontiguousarray(np.where(ok[..., None], img, 0), dtype=np.uint8)


def hstack_panels(panels: List[np.ndarray], height: Optional[int] = None, gap: int = 4) -> np.ndarray:
    """Resize panels (nearest) to one height and put them side by side with white gaps."""
    h = height or max(p.shape[0] for p in panels)
    out = []
    for i, p in enumerate(panels):
        if p.shape[0] != h:
            w = max(1, int(round(p.shape[1] * h / p.shape[0])))
            p = cv2.resize(p, (w, h), interpolation=cv2.INTER_NEAREST)
        out.append(p)
        if i < len(panels) - 1:
            out.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(out, axis=1)


def denormalize(image: np.ndarray, profile: Profile) -> np.ndarray:
    """Normalised (3, H, W) float -> RGB uint8 (H, W, 3)."""
    mean = np.asarray(profile.mean, np.float32).reshape(3, 1, 1)
    std = np.asarray(profile.std, np.float32).reshape(3, 1, 1)
    x = (np.asarray(image, np.float32) * std + mean) * 255.0
    return np.ascontiguousarray(np.clip(x, 0, 255).astype(np.uint8).transpose(1, 2, 0))
