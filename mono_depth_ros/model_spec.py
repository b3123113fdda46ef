"""What the pipeline needs to know about a model file, whatever its kind.

``load_spec(path)`` reads it from

* a mono_depth_ros checkpoint ``.pt`` (its profile and stage; output log depth, metric);
* an ``.onnx`` exported by ``mono-depth export`` (``metadata_props``: ``mono_depth_ros.profile`` =
  JSON of Profile.to_dict(), ``mono_depth_ros.output``, ``mono_depth_ros.metric``,
  ``mono_depth_ros.stage``);
* a foreign ``.onnx`` (e.g. Depth Anything) described by a YAML sidecar ``<model>.yaml`` (or
  ``<model>.onnx.yaml``)::

      input_width: 518          # required
      input_height: 518         # required
      mean: [0.485, 0.456, 0.406]   # of RGB scaled to [0, 1] (default ImageNet)
      std: [0.229, 0.224, 0.225]
      output: inverse_depth     # log_depth | depth | inverse_depth (default depth)
      metric: false             # relative models: depth is only up to scale
      scale: 1.0                # metres = scale * depth, or scale / inverse_depth, or scale * exp(log_depth)
      min_depth: 0.1            # valid range (metres), outside -> NaN
      max_depth: 20.0
      resize_width: 518         # optional: resize (aspect kept) before the centre crop
      resize_height: 518

  A sidecar beside one of our own ONNX files overrides the metadata keys it sets;
* a TensorRT engine ``<x>.engine`` with ``<x>.engine.json`` beside it: a JSON object with
  ``profile`` (dict), ``output``, ``metric``, ``stage`` and optionally ``scale``, ``input_name``,
  ``output_name`` (other keys, e.g. the engine cache key, are kept in ``extra``).  The same keys
  prefixed ``mono_depth_ros.`` (as in the ONNX metadata, JSON strings) are accepted too.

Relative (non-metric) models are logged with a warning: their "metres" are only up to scale.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import yaml

from .model_cache import file_sha256
from .profiles import IMAGENET_MEAN, IMAGENET_STD, Profile, get_profile
from .yaml_files import read_yaml_mapping

try:  # checkpoint.py imports torch; an ONNX Runtime / TensorRT-only install has no torch
    from .checkpoint import ModelFileError
except ImportError:  # pragma: no cover - torch is installed wherever the tests run
    class ModelFileError(RuntimeError):  # type: ignore[no-redef]
        """A model file is missing, corrupt, or does not fit what was asked for."""

log = logging.getLogger("mono_depth_ros")

OUTPUT_KINDS = ("log_depth", "depth", "inverse_depth")
MODEL_KINDS = ("checkpoint", "onnx", "engine")
META_PREFIX = "mono_depth_ros."

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
DEMO_MODEL = Path(__file__).resolve().parent / "models" / "demo.pt"   # the shipped demo checkpoint


@dataclass
class ModelSpec:
    """A model file and how to use it: geometry, normalisation, output kind, metric or relative."""

    path: Path
    kind: str                      # "checkpoint" | "onnx" | "engine"
    profile: Profile               # input size, resize, mean/std, depth range
    output: str = "log_depth"      # "log_depth" | "depth" | "inverse_depth"
    metric: bool = True
    stage: Optional[str] = "fine"  # Eigen models: "coarse" | "fine"; None for foreign models
    scale: float = 1.0             # model-intrinsic factor to metres (sidecar "scale")
    input_name: Optional[str] = None   # ONNX / engine tensor names (None: the first one)
    output_name: Optional[str] = None
    foreign: bool = False          # not an EigenDepthNet (its output size is not the profile's)
    extra: Dict[str, Any] = field(default_factory=dict)
    # A checkpoint's validated file contents and their SHA-256, from the one read of the file by load_spec
    # (export and the PyTorch backend use them instead of reading the file again).
    payload: Optional[Dict[str, Any]] = field(default=None, repr=False, compare=False)
    digest: Optional[str] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f"model output must be one of {OUTPUT_KINDS}, got {self.output!r}")
        if not (self.scale > 0):
            raise ValueError(f"model scale must be positive, got {self.scale}")

    @property
    def input_size(self) -> tuple:
        """(W, H) of the network input."""
        return self.profile.input_w, self.profile.input_h

    def sha256(self) -> str:
        """SHA-256 of the model file (of the contents the payload came from, for a checkpoint)."""
        return self.digest if self.digest is not None else file_sha256(self.path)

    def checkpoint_payload(self) -> Dict[str, Any]:
        """The checkpoint's file contents (read again only after :meth:`release_payload`)."""
        if self.kind != "checkpoint":
            raise ModelFileError(f"{self.path} is a {self.kind} model, not a mono_depth_ros checkpoint (.pt)")
        if self.payload is None:
            from .checkpoint import read_checkpoint

            self.payload, self.digest = read_checkpoint(self.path)
        return self.payload

    def release_payload(self) -> None:
        """Drop the payload (the weights) once a backend holds the model: no second copy stays in memory."""
        self.payload = None

    def metadata(self) -> Dict[str, str]:
        """The ONNX ``metadata_props`` / engine JSON entries (all strings) describing this model."""
        md = {META_PREFIX + "profile": json.dumps(self.profile.to_dict(), sort_keys=True),
              META_PREFIX + "output": self.output,
              META_PREFIX + "metric": "true" if self.metric else "false",
              META_PREFIX + "stage": self.stage or ""}
        if self.scale != 1.0:
            md[META_PREFIX + "scale"] = repr(float(self.scale))
        return md

    def describe(self) -> str:
        p = self.profile
        return (f"{self.path.name} ({self.kind}, profile {p.name}, input {p.input_w}x{p.input_h}, output "
                f"{self.output}, {'metric' if self.metric else 'RELATIVE (not metric)'}"
                f"{', stage ' + self.stage if self.stage else ''})")


def _bool(v: Any, what: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "metric"):
        return True
    if s in ("false", "0", "no", "relative"):
        return False
    raise ModelFileError(f"{what}: expected true/false, got {v!r}")


def _strip(d: Mapping[str, Any]) -> Dict[str, Any]:
    return {(k[len(META_PREFIX):] if k.startswith(META_PREFIX) else k): v for k, v in d.items()}


def _from_metadata(path: Path, kind: str, md: Mapping[str, Any]) -> ModelSpec:
    """Spec from our metadata keys (with or without the ``mono_depth_ros.`` prefix)."""
    d = _strip(md)
    prof = d.get("profile")
    if prof is None:
        raise ModelFileError(f"{path}: no mono_depth_ros.profile metadata (not exported by mono-depth export?); "
                             f"describe a foreign model with a YAML sidecar {path.with_suffix('.yaml').name}")
    try:
        profile = get_profile(json.loads(prof) if isinstance(prof, str) else dict(prof))
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{path}: invalid profile metadata: {exc}") from exc
    output = str(d.get("output", "log_depth"))
    if output not in OUTPUT_KINDS:
        raise ModelFileError(f"{path}: output kind {output!r} is not one of {OUTPUT_KINDS}")
    stage = d.get("stage") or None
    known = {"profile", "output", "metric", "stage", "scale", "input_name", "output_name"}
    return ModelSpec(path=path, kind=kind, profile=profile, output=output,
                     metric=_bool(d.get("metric", True), f"{path}: metric"), stage=stage,
                     scale=float(d.get("scale", 1.0)), input_name=d.get("input_name"),
                     output_name=d.get("output_name"),
                     extra={k: v for k, v in d.items() if k not in known})


def sidecar_path(path: "str | Path") -> Optional[Path]:
    """The YAML sidecar of a model file: ``x.yaml`` or ``x.onnx.yaml`` (``.yml`` too), if present."""
    p = Path(path)
    for cand in (p.with_suffix(".yaml"), p.with_suffix(".yml"), Path(str(p) + ".yaml"), Path(str(p) + ".yml")):
        if cand.is_file():
            return cand
    return None


_SIDECAR_KEYS = {"input_width", "input_height", "mean", "std", "output", "metric", "scale", "min_depth", "max_depth",
                 "resize_width", "resize_height", "name", "input_name", "output_name", "description"}


def _read_sidecar(sidecar: Path) -> Dict[str, Any]:
    """The YAML mapping of a model sidecar, its keys checked."""
    try:
        d = read_yaml_mapping(sidecar, "model sidecar")
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None
    unknown = set(d) - _SIDECAR_KEYS
    if unknown:
        raise ModelFileError(f"model sidecar {sidecar}: unknown keys {sorted(unknown)}; "
                             f"allowed: {sorted(_SIDECAR_KEYS)}")
    return d


def _sidecar_num(d: Mapping[str, Any], key: str, default: Any, sidecar: Path) -> Any:
    v = d.get(key, default)
    try:
        return v if v is None else float(v)
    except (TypeError, ValueError):
        raise ModelFileError(f"model sidecar {sidecar}: {key} must be a number, got {v!r}") from None


def _sidecar_profile(path: Path, sidecar: Path, d: Mapping[str, Any], base: Optional[ModelSpec]) -> Profile:
    """The sidecar's geometry, normalisation and range over ``base``'s profile (foreign defaults without one)."""
    if base is None:
        for key in ("input_width", "input_height"):
            if key not in d:
                raise ModelFileError(f"model sidecar {sidecar}: {key} is required")
        prof: Dict[str, Any] = {"name": str(d.get("name", path.stem)), "mean": list(IMAGENET_MEAN),
                                "std": list(IMAGENET_STD), "min_depth": 1e-3, "max_depth": 1e3}
    else:
        prof = base.profile.to_dict()
    prof.update({field: int(d[key]) for key, field in (("input_width", "input_w"), ("input_height", "input_h"))
                 if key in d})
    for key in ("mean", "std"):
        if key in d:
            v = d[key]
            if not isinstance(v, (list, tuple)) or len(v) != 3:
                raise ModelFileError(f"model sidecar {sidecar}: {key} must be a list of 3 numbers")
            prof[key] = [float(x) for x in v]
    prof.update({key: _sidecar_num(d, key, None, sidecar) for key in ("min_depth", "max_depth") if key in d})
    prof.update({field: int(d[key]) for key, field in (("resize_width", "resize_w"), ("resize_height", "resize_h"))
                 if key in d})
    if "description" in d:
        prof["description"] = str(d["description"])
    return _checked_profile(prof, sidecar, foreign=base is None)


def _checked_profile(prof: Dict[str, Any], sidecar: Path, foreign: bool) -> Profile:
    if any(s <= 0 for s in prof["std"]):
        raise ModelFileError(f"model sidecar {sidecar}: std must be positive")
    if not 0 <= prof["min_depth"] < prof["max_depth"]:
        raise ModelFileError(f"model sidecar {sidecar}: need 0 <= min_depth < max_depth")
    try:
        return _foreign_profile(prof) if foreign else Profile.from_dict(prof)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model sidecar {sidecar}: {exc}") from exc


def _apply_sidecar(path: Path, sidecar: Path, base: Optional[ModelSpec]) -> ModelSpec:
    d = _read_sidecar(sidecar)
    profile = _sidecar_profile(path, sidecar, d, base)
    # what the sidecar does not set: the embedded metadata's value, or a foreign model's default
    kept: Dict[str, Any] = (
        {"kind": base.kind, "output": base.output, "metric": base.metric, "stage": base.stage, "scale": base.scale,
         "input_name": base.input_name, "output_name": base.output_name, "foreign": base.foreign} if base else
        {"kind": "onnx", "output": "depth", "metric": False, "stage": None, "scale": 1.0, "input_name": None,
         "output_name": None, "foreign": True})
    output = str(d.get("output", kept["output"]))
    if output not in OUTPUT_KINDS:
        raise ModelFileError(f"model sidecar {sidecar}: output must be one of {OUTPUT_KINDS}, got {output!r}")
    metric = _bool(d["metric"], f"{sidecar}: metric") if "metric" in d else kept["metric"]
    scale = _sidecar_num(d, "scale", kept["scale"], sidecar)
    if not scale > 0:
        raise ModelFileError(f"model sidecar {sidecar}: scale must be positive")
    return ModelSpec(path=path, kind=kept["kind"], profile=profile, output=output, metric=metric,
                     stage=kept["stage"], scale=scale, input_name=d.get("input_name", kept["input_name"]),
                     output_name=d.get("output_name", kept["output_name"]), foreign=kept["foreign"],
                     extra={"sidecar": str(sidecar)})


def _foreign_profile(prof: Dict[str, Any]) -> Profile:
    """A Profile for a foreign model: only input size, resize, normalisation and range matter.

    Profile validates Eigen-network layer sizes; any input of at least 64x48 passes.
    """
    return Profile.from_dict(prof)


def load_spec(path: "str | Path") -> ModelSpec:
    """Read the :class:`ModelSpec` of a model file (.pt, .onnx [+ sidecar], .engine [+ .engine.json])."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        spec = _load_onnx_spec(path)
    elif suffix in ENGINE_SUFFIXES:
        spec = _load_engine_spec(path)
    elif suffix in (".yaml", ".yml", ".json"):
        raise ModelFileError(f"{path} is a description, not a model: pass the model file it describes")
    else:
        spec = _load_checkpoint_spec(path)
    if not spec.metric:
        log.warning("model %s gives RELATIVE depth (not metric): depth values are only up to an unknown scale; "
                    "set a scale factor (sidecar 'scale' or the pipeline's scale) calibrated for your scene",
                    path.name)
    return spec


def _load_checkpoint_spec(path: Path) -> ModelSpec:
    try:
        from .checkpoint import read_checkpoint
    except ImportError as exc:
        raise ModelFileError(f"{path} is a PyTorch checkpoint and PyTorch is not installed ({exc}); install torch, "
                             "or use a model exported with `mono-depth export` (.onnx)") from exc
    payload, digest = read_checkpoint(path)
    try:
        profile = get_profile(payload["profile"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"model file {path} has an invalid profile: {exc}") from exc
    meta = payload.get("meta") or {}
    return ModelSpec(path=path, kind="checkpoint", profile=profile, output="log_depth",
                     metric=bool(meta.get("metric", True)) if isinstance(meta, dict) else True,
                     stage=str(payload["stage"]), input_name="image", output_name="log_depth",
                     payload=payload, digest=digest)


def _read_onnx(path: Path) -> Any:
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf errors: a corrupt file
        raise ModelFileError(f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from exc
    if not m.graph.node and not m.graph.input:
        raise ModelFileError(f"{path} is not an ONNX model (empty, or no graph in it)")
    return m


def _load_onnx_spec(path: Path) -> ModelSpec:
    m = _read_onnx(path)
    md = {p.key: p.value for p in m.metadata_props}
    inputs = [i.name for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}]
    outputs = [o.name for o in m.graph.output]
    sidecar = sidecar_path(path)
    base = _from_metadata(path, "onnx", md) if (META_PREFIX + "profile") in md else None
    if sidecar is not None:
        spec = _apply_sidecar(path, sidecar, base)
    elif base is not None:
        spec = base
    else:
        raise ModelFileError(f"{path} has no mono_depth_ros metadata: export it with `mono-depth export`, or "
                             f"describe it with a YAML sidecar {path.with_suffix('.yaml')} (input_width, "
                             f"input_height, mean, std, output, metric, scale)")
    spec.input_name = spec.input_name or (inputs[0] if inputs else None)
    spec.output_name = spec.output_name or (outputs[0] if outputs else None)
    if sidecar is not None and base is not None:
        keys = sorted(_sidecar_keys(sidecar))
        log.warning("%s: the sidecar %s overrides the model's embedded metadata for %s (a sidecar always wins; "
                    "remove it to use the metadata)", path.name, sidecar.name, ", ".join(keys) or "nothing")
    _check_graph_input(path, m, spec, sidecar, base is not None)
    return spec


def _check_graph_input(path: Path, m: Any, spec: ModelSpec, sidecar: Optional[Path], has_metadata: bool) -> None:
    """The graph's fixed input size must be the one the metadata / sidecar describes."""
    hw = _graph_input_hw(m, spec.input_name)
    if hw is None or hw == (spec.profile.input_h, spec.profile.input_w):
        return
    said = (f"its sidecar {sidecar.name} (which overrides the embedded metadata)"
            if sidecar is not None and has_metadata
            else f"its sidecar {sidecar.name}" if sidecar is not None else "its metadata")
    raise ModelFileError(f"{path}: the graph's input {spec.input_name!r} is {hw[1]}x{hw[0]} (WxH) but {said} "
                         f"says {spec.profile.input_w}x{spec.profile.input_h}; fix input_width/input_height"
                         + (" or remove the sidecar" if sidecar is not None else ""))


def _sidecar_keys(sidecar: Path) -> set:
    try:
        d = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return set()
    return set(d) if isinstance(d, dict) else set()


def _graph_input_hw(m: Any, name: Optional[str]) -> Optional[tuple]:
    """(H, W) of a fixed-size NCHW graph input, None when dynamic or not 4-D."""
    for i in m.graph.input:
        if name is not None and i.name != name:
            continue
        dims = i.type.tensor_type.shape.dim
        if len(dims) != 4:
            return None
        h, w = dims[2], dims[3]
        if h.HasField("dim_value") and w.HasField("dim_value") and h.dim_value > 0 and w.dim_value > 0:
            return int(h.dim_value), int(w.dim_value)
        return None
    return None


def _load_engine_spec(path: Path) -> ModelSpec:
    meta_path = Path(str(path) + ".json")
    if not meta_path.is_file():
        raise ModelFileError(f"TensorRT engine {path} has no metadata file {meta_path.name} beside it; "
                             "build engines with the pipeline (it writes both) or rebuild it")
    try:
        with open(meta_path, "r", encoding="utf-8") as f:
            md = json.load(f)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"engine metadata {meta_path} cannot be read: {exc}") from exc
    if not isinstance(md, dict):
        raise ModelFileError(f"engine metadata {meta_path}: expected a JSON object")
    spec = _from_metadata(path, "engine", md)
    d = _strip(md)
    spec.foreign = bool(d.get("foreign", False))
    spec.extra.pop("foreign", None)
    return spec


def geometry_note(profile: Profile, width: int, height: int) -> Optional[str]:
    """A one-line warning when a ``width`` x ``height`` camera image is far from the geometry the model was
    trained on (its profile's resize size: the camera images after the uniform resize), else None.

    Far means: the aspect ratio differs by more than 1.5x (the centre crop then keeps much less of the image
    than in training, and the scene looks unlike the training scenes: an indoor model on street images), or
    the image is upsampled more than 2x to reach the network input."""
    from .preprocess import compute_transform

    rw = profile.resize_w or profile.input_w
    rh = profile.resize_h or profile.input_h
    if width <= 0 or height <= 0:
        return None
    t = compute_transform(int(width), int(height), profile)
    a_img, a_train = width / height, rw / rh
    ratio = max(a_img / a_train, a_train / a_img)
    seen_w, seen_h = profile.input_w / t.resized_w, profile.input_h / t.resized_h
    if ratio > 1.5:
        return (f"the input is {width}x{height} (aspect {a_img:.2f}) but model {profile.name!r} was trained on "
                f"{rw}x{rh} camera images (aspect {a_train:.2f}): the network sees only the centre "
                f"{100 * seen_w:.0f} % x {100 * seen_h:.0f} % of each frame and its depth is unreliable here; use a "
                "model trained for this camera (e.g. a KITTI-profile model for street images)")
    if t.scale > 2.0:
        return (f"the input is {width}x{height}, {t.scale:.1f}x smaller than the {rw}x{rh} camera images model "
                f"{profile.name!r} was trained on: it is upsampled and its depth is unreliable")
    return None
