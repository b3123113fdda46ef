"""Model files: a self-describing, code-free checkpoint format.

A model file is a ``torch.save`` of a plain dict (loaded with ``weights_only=True``: tensors and
JSON-like values only, never pickled code)::

    {
      "format": "mono_depth_ros.model",
      "version": 1,
      "profile": {...},          # Profile.to_dict(): geometry, normalisation, depth range
      "stage": "coarse" | "fine",# the trained stage; "coarse" files have an untrained fine net
      "state_dict": {...},       # EigenDepthNet weights
      "meta": {...},             # JSON-like: training config, step, metrics, provenance
      # optional, training only: "optimizer", "rng", "step", ... (see training/)
    }

The file alone rebuilds the model.  Files are written atomically (temporary file + rename), so a
crash never leaves a half-written file, and an existing file is only replaced when asked to.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from .model_cache import read_and_hash
from .profiles import Profile, get_profile

# torch is imported inside the functions that need it: ModelFileError and atomic writes are used
# by torch-free code paths (ONNX Runtime / TensorRT inference, the ROS node with an .onnx model).
STAGES = ("coarse", "fine")

if TYPE_CHECKING:  # pragma: no cover
    from .model import EigenDepthNet

FORMAT = "mono_depth_ros.model"
VERSION = 1


class ModelFileError(RuntimeError):
    """A model file is missing, corrupt, or does not fit what was asked for."""


def _jsonable(meta: Any, path: str = "meta") -> None:
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{path} must be JSON-like (dict/list/str/number/bool/None): {exc}") from None


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: "str | os.PathLike", data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; refuse to replace an existing file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it (pass overwrite=True / --overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        # mkstemp creates 0600 files; give the result the permissions a plain open() would (model
        # files travel between users, containers and robots).
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def save_torch_atomic(obj: Any, path: "str | os.PathLike", overwrite: bool = False) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)


def model_payload(model: "EigenDepthNet", stage: Optional[str] = None, meta: Optional[Dict[str, Any]] = None,
                  half: bool = False) -> Dict[str, Any]:
    stage = stage or model.stage
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}")
    meta = dict(meta or {})
    _jsonable(meta)
    sd = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
          for k, v in model.state_dict().items()}
    return {"format": FORMAT, "version": VERSION, "profile": model.profile.to_dict(), "stage": stage,
            "state_dict": sd, "meta": meta}


def save_model(model: "EigenDepthNet", path: "str | os.PathLike", stage: Optional[str] = None,
               meta: Optional[Dict[str, Any]] = None, overwrite: bool = False, half: bool = False,
               extra: Optional[Dict[str, Any]] = None) -> Path:
    """Save a model file. ``half`` stores float tensors as fp16 (halves the size; loaded back as fp32).

    ``extra`` adds further top-level entries (e.g. optimizer state for training resume); they must
    be loadable with ``weights_only=True``.
    """
    payload = model_payload(model, stage, meta, half)
    if extra:
        clash = set(extra) & set(payload)
        if clash:
            raise ValueError(f"extra keys clash with the model format: {sorted(clash)}")
        payload.update(extra)
    return save_torch_atomic(payload, path, overwrite=overwrite)


def read_model_file(path: "str | os.PathLike") -> Dict[str, Any]:
    """Load and validate the raw dict of a model file (no code is executed)."""
    return read_checkpoint(path)[0]


def read_checkpoint(path: "str | os.PathLike") -> Tuple[Dict[str, Any], str]:
    """(validated raw dict, SHA-256 of the file) of a model file, from one read of the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        import torch
    except ImportError as exc:
        raise ModelFileError(f"model file {path} is a PyTorch checkpoint and torch is not installed: "
                             "install torch, or export it to ONNX on another machine (mono-depth export)") from exc
    try:
        data, digest = read_and_hash(path)
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling error means a bad file
        # torch's own message suggests weights_only=False, i.e. running code from the file: not here.
        raise ModelFileError(f"model file {path} is corrupt, truncated, or not a mono_depth_ros model file "
                             f"(it does not load as plain tensors and metadata: {type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"model file {path} is not a mono_depth_ros model file (missing format tag {FORMAT!r})")
    if payload.get("version", 0) > VERSION:
        raise ModelFileError(f"model file {path} has format version {payload.get('version')}, "
                             f"this mono_depth_ros reads up to {VERSION}: upgrade the package")
    for key in ("profile", "stage", "state_dict"):
        if key not in payload:
            raise ModelFileError(f"model file {path} lacks {key!r}")
    return payload, digest


def load_model(path: "str | os.PathLike", expected_profile: "str | Profile | None" = None,
               map_location: "str | Any" = "cpu", stage: Optional[str] = None,
               ) -> Tuple["EigenDepthNet", Dict[str, Any]]:
    """Rebuild the model from a file. Returns (model in eval mode, payload without the weights).

    ``expected_profile`` (a name or Profile) makes a file of another geometry an error.
    ``stage`` overrides the stage the model runs by default (a "coarse" file cannot run "fine").
    """
    return model_from_payload(read_model_file(path), path, expected_profile, map_location, stage)


def model_from_payload(payload: Dict[str, Any], path: "str | os.PathLike",
                       expected_profile: "str | Profile | None" = None, map_location: "str | Any" = "cpu",
                       stage: Optional[str] = None,
                       ) -> Tuple["EigenDepthNet", Dict[str, Any]]:
    """:func:`load_model` from an already read payload (``path`` names the file in errors)."""
    from .model import EigenDepthNet

    try:
        profile = get_profile(payload["profile"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model file {path} has an invalid profile: {exc}") from exc
    if expected_profile is not None:
        exp = get_profile(expected_profile)
        if (exp.input_w, exp.input_h, exp.fine_crop_h) != (profile.input_w, profile.input_h, profile.fine_crop_h) \
                or exp.name != profile.name:
            raise ModelFileError(f"model file {path} is for profile {profile.name!r} "
                                 f"({profile.input_w}x{profile.input_h}), expected {exp.name!r} "
                                 f"({exp.input_w}x{exp.input_h})")
    trained = payload["stage"]
    if trained not in STAGES:
        raise ModelFileError(f"model file {path} has unknown stage {trained!r}")
    run_stage = stage or trained
    if run_stage == "fine" and trained == "coarse":
        raise ModelFileError(f"model file {path} holds only a trained coarse network; run it with stage='coarse'")
    model = EigenDepthNet(profile, stage=run_stage)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"model file {path} does not match the network of profile {profile.name!r}: "
                             f"{str(exc).splitlines()[0]}") from exc
    model.to(map_location).eval()
    info = {k: v for k, v in payload.items() if k not in ("state_dict", "optimizer", "rng")}
    return model, info
