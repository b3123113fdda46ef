"""The training config: one typed place for every option (monodepth2's options.py is the model).

A YAML file (``training/configs/*.yaml``, ``base:`` chains and ``--set key=value`` applied by
:mod:`training.utils`) is a nested dict; :func:`resolve_config` checks its keys against the defaults
(a misspelt key is an error naming the closest one), merges it over them and validates the parts;
:meth:`TrainConfig.from_dict` then gives the trainer typed sections.  The resolved dict is what a run
writes to ``config.yaml`` and into its model files; ``DEFAULTS`` is the dataclasses' defaults as that dict.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from .utils import check_config_keys, deep_merge, profile_from_config

STAGE_INDEX = {"coarse": 0, "fine": 1}


class TrainError(RuntimeError):
    """A user-facing training error (bad config, existing run, missing data)."""


# ---- the options (defaults here; the conversions are those the trainer applies) ------------------------
def _int_or_0(v: Any) -> int:
    return int(v or 0)


@dataclass
class DataConfig:
    train: Optional[Dict[str, Any]] = None    # a dataset spec {type: nyu_mat|nyu_sync|kitti_raw|kitti_object|...}
    val: Optional[Dict[str, Any]] = None
    val_family: Optional[str] = None          # nyu | kitti | synthetic; default from data.val's type
    # train_cache: a folder made by `python -m training.cache` from this data.train (refused if built otherwise)
    train_cache: Optional[str] = None

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "DataConfig":
        return cls(d.get("train"), d.get("val"), d.get("val_family"), d.get("train_cache"))


@dataclass
class AugmentSection:
    preset: str = "nyu"                       # free-form: checked by training.augment.AugmentConfig.from_dict


@dataclass
class LossConfig:
    lam: float = 0.5
    grad_weight: float = 0.0

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LossConfig":
        return cls(lam=float(d["lam"]), grad_weight=float(d.get("grad_weight") or 0.0))


def _default_lr() -> Dict[str, float]:
    return {"conv": 1.0e-3, "fc": 0.1, "f1": 1.0e-3, "f3": 1.0e-2, "f4": 1.0e-3}


@dataclass
class OptimConfig:
    momentum: float = 0.9
    weight_decay: float = 0.0
    clip_grad_norm: Optional[float] = None
    lr_scale: float = 1.0
    lr: Dict[str, float] = field(default_factory=_default_lr)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "OptimConfig":
        clip = d.get("clip_grad_norm")
        return cls(momentum=float(d["momentum"]), weight_decay=float(d.get("weight_decay") or 0.0),
                   clip_grad_norm=float(clip) if clip else None, lr_scale=float(d.get("lr_scale", 1.0)),
                   lr={k: float(v) for k, v in (d.get("lr") or {}).items()})

    def scaled_lrs(self) -> Dict[str, float]:
        return {k: v * self.lr_scale for k, v in self.lr.items()}


def _default_stages() -> List[str]:
    return ["coarse", "fine"]


def _default_samples() -> Dict[str, int]:
    return {"coarse": 2_000_000, "fine": 1_500_000}


@dataclass
class TrainSection:
    stages: List[str] = field(default_factory=_default_stages)
    batch_size: int = 32
    samples: Dict[str, int] = field(default_factory=_default_samples)
    workers: int = 4
    prefetch_factor: Optional[int] = 4        # used (and converted) only with workers > 0
    # augment_on: loader (per-sample, CPU, in the workers: the reference) | device (uint8 batches, the
    # augmentation in batch on the training device) | auto (device when data.train_cache is set)
    augment_on: str = "auto"
    seed: int = 0
    device: str = "auto"
    amp: Optional[str] = None                 # null | bf16 | fp16 (CUDA only)
    channels_last: bool = False
    compile: bool = False
    log_every: int = 20
    image_every: int = 500
    checkpoint_every: int = 2000
    val_every: int = 0
    tensorboard: bool = True
    progress: bool = True

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainSection":
        return cls(stages=list(d["stages"]), batch_size=int(d["batch_size"]),
                   samples=dict(d["samples"]), workers=int(d["workers"]), prefetch_factor=d.get("prefetch_factor"),
                   augment_on=d.get("augment_on") or "auto", seed=int(d["seed"]), device=d["device"],
                   amp=d.get("amp"), channels_last=bool(d.get("channels_last")), compile=bool(d.get("compile")),
                   log_every=int(d["log_every"]), image_every=_int_or_0(d["image_every"]),
                   checkpoint_every=_int_or_0(d["checkpoint_every"]), val_every=_int_or_0(d.get("val_every")),
                   tensorboard=bool(d.get("tensorboard", True)), progress=bool(d["progress"]))

    def steps(self, stage: str) -> int:
        """Samples of a stage (``train.samples``), as an int."""
        return int(self.samples[stage])


@dataclass
class InitConfig:
    model: Optional[str] = None               # a model file to start from
    alexnet: Optional[str] = None             # torchvision AlexNet weights for the coarse convolutions

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]]) -> "InitConfig":
        d = d or {}
        return cls(d.get("model"), d.get("alexnet"))


@dataclass
class ExportConfig:
    half: bool = False

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]]) -> "ExportConfig":
        return cls(half=bool((d or {}).get("half")))


@dataclass
class TrainConfig:
    """Every training option.  ``profile`` (a name or an inline mapping), ``augment`` and the dataset specs
    are free-form mappings checked by their own classes."""
    profile: Any = "nyu"
    data: DataConfig = field(default_factory=DataConfig)
    augment: Any = field(default_factory=AugmentSection)
    gt_resample: Optional[str] = None         # nearest (dense) | masked_mean (sparse); default by dataset
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainSection = field(default_factory=TrainSection)
    init: InitConfig = field(default_factory=InitConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, cfg: Dict[str, Any]) -> "TrainConfig":
        """Typed sections of a config resolved by :func:`resolve_config` (conversion errors: ValueError)."""
        return cls(profile=cfg["profile"], data=DataConfig.from_dict(cfg["data"]), augment=cfg.get("augment"),
                   gt_resample=cfg.get("gt_resample"), loss=LossConfig.from_dict(cfg["loss"]),
                   optim=OptimConfig.from_dict(cfg["optim"]), train=TrainSection.from_dict(cfg["train"]),
                   init=InitConfig.from_dict(cfg.get("init")), export=ExportConfig.from_dict(cfg.get("export")))

    @classmethod
    def load(cls, cfg: Dict[str, Any]) -> "TrainConfig":
        """A raw config dict (YAML + overrides) checked, resolved and typed."""
        return cls.from_dict(resolve_config(cfg))


DEFAULTS: Dict[str, Any] = TrainConfig().to_dict()


# ---- resolving and checking a config dict -----------------------------------------------------------
# entries that hold free-form mappings: an inline profile, dataset specs, augmentation options
# (the latter checked by training.augment.AugmentConfig.from_dict)
FREE_FORM_KEYS = ("profile", "data.train", "data.val", "augment")


def resolve_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """DEFAULTS overridden by ``cfg``; unknown (misspelt) keys are a TrainError naming the closest key."""
    try:
        check_config_keys(cfg or {}, DEFAULTS, free=FREE_FORM_KEYS)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    cfg = deep_merge(DEFAULTS, cfg)
    if not cfg["data"].get("train"):
        raise TrainError("config has no data.train (a dataset: {type: nyu_mat|nyu_sync|kitti_raw|kitti_object|"
                         "synthetic, ...})")
    for s in cfg["train"]["stages"]:
        if s not in STAGE_INDEX:
            raise TrainError(f"unknown stage {s!r} in train.stages; expected coarse and/or fine")
    profile_from_config(cfg["profile"])  # validates
    _check_augment_keys(cfg.get("augment"))
    for key in ("train", "val"):
        if cfg["data"].get(key):
            _check_dataset_keys(cfg["data"][key], f"data.{key}")
    return cfg


def _unknown(key: str, known: Sequence[str], where: str) -> TrainError:
    import difflib

    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return TrainError(f"unknown key {key!r} under {where}{hint} (known: {', '.join(sorted(known))})")


def _check_augment_keys(aug: Any) -> None:
    if aug is None:
        return
    if not isinstance(aug, dict):
        raise TrainError(f"config key 'augment' must be a mapping, got {aug!r}")
    from dataclasses import fields

    from .augment import PRESETS, AugmentConfig

    known = [f.name for f in fields(AugmentConfig)] + ["preset"]
    for k in aug:
        if k not in known:
            raise _unknown(k, known, "'augment'")
    if "preset" in aug and aug["preset"] not in PRESETS:
        raise TrainError(f"augment.preset {aug['preset']!r} is not one of {', '.join(sorted(map(str, PRESETS)))}")


def _check_dataset_keys(spec: Any, where: str) -> None:
    """The keys of a dataset spec against the arguments its source class takes (typos get the closest key)."""
    import inspect

    if not isinstance(spec, dict):
        raise TrainError(f"config key {where!r} must be a mapping {{type: ..., ...}}, got {spec!r}")
    from .datasets import SOURCES

    typ = spec.get("type")
    if typ not in SOURCES:
        raise TrainError(f"{where}.type {typ!r} is not one of {', '.join(SOURCES)}")
    try:
        params = inspect.signature(SOURCES[typ]).parameters
    except (TypeError, ValueError):
        return
    known = [n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        if typ != "synthetic":
            return
        from mono_depth_ros.synthetic import SyntheticDataset   # SyntheticScenes passes **kwargs on to it

        sub = inspect.signature(SyntheticDataset).parameters
        if any(p.kind == p.VAR_KEYWORD for p in sub.values()):
            return
        known += [n for n in sub if n not in known]
    known += ["type", "cache", "limit", "repeat", "gt_resample", "mask_min_max_eval"]
    for k in spec:
        if k not in known:
            raise _unknown(k, known, f"{where!r} (dataset {typ})")


