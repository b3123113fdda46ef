"""Input geometries ("profiles") of the Eigen et al. (2014) multi-scale network.

The fully connected layers C6/C7 fix the input size, so every size in the network is derived
here from the profile's input geometry (nothing is hard-coded in the model).  The two paper
profiles reproduce PAPER.md's table:

    nyu   : input 304x228 -> C1 37x27 -> C2 18x13 -> C5 8x6 -> output 74x55
    kitti : input 576x172 -> C1 71x20 -> C2 35x10 -> C5 17x4 -> output 142x27

Deviation (documented): for KITTI the paper's table says C2 is 35x9, but a 5x5 conv with
padding 2 followed by a 2x2 max-pool on 71x20 gives 35x10; we use the arithmetic (35x10) and
C5 (3x3, stride 2, no padding) still lands on the paper's 17x4.

Output region: the predicted log-depth map covers the fine network's input crop uniformly.
For NYU that crop is the whole input; for KITTI it is the bottom ``fine_crop_h`` rows (the
part of the image that has LiDAR depth), exactly as the paper's fine network sees it. A
ground-truth map is resized to the output size from that region, and the inference pipeline
maps output pixels back to camera pixels through :meth:`Profile.output_region` (as a matrix:
:meth:`Profile.output_map`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling (floor mode, as PyTorch)."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class Profile:
    """Network geometry and defaults.  Immutable; serialisable with :meth:`to_dict`."""

    name: str
    input_w: int
    input_h: int
    # Rows at the bottom of the input seen by the fine network (None: the whole input).
    fine_crop_h: int | None = None
    coarse_channels: Tuple[int, int, int, int, int] = (96, 256, 384, 384, 256)
    fc_hidden: int = 4096
    fine_channels: int = 64  # F1 has fine_channels - 1, C7's map is the last channel
    dropout: float = 0.5
    # Normalisation of an RGB image scaled to [0, 1].
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    # Valid metric range of the training data (metres); outputs are clamped to it.
    min_depth: float = 0.1
    max_depth: float = 10.0
    # Size the camera image is resized to before the (centre) crop to the input size,
    # as the paper's evaluation does (NYU 640x480 -> 320x240, KITTI halved).
    resize_w: int | None = None
    resize_h: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.input_w < 64 or self.input_h < 48:
            raise ValueError(f"profile {self.name!r}: input {self.input_w}x{self.input_h} is too small")
        if self.fine_crop_h is not None and not 0 < self.fine_crop_h <= self.input_h:
            raise ValueError(f"profile {self.name!r}: fine_crop_h={self.fine_crop_h} outside (0, {self.input_h}]")
        sizes = self.layer_sizes()
        for key in ("C5", "F1"):
            w, h = sizes[key]
            if w < 1 or h < 1:
                raise ValueError(f"profile {self.name!r}: input too small, {key} would be {w}x{h}")

    # ---- geometry -------------------------------------------------------------------
    @property
    def fine_input_h(self) -> int:
        return self.input_h if self.fine_crop_h is None else self.fine_crop_h

    @property
    def fine_crop_top(self) -> int:
        """First input row the fine network (and so the output map) covers."""
        return self.input_h - self.fine_input_h

    def layer_sizes(self) -> Dict[str, Tuple[int, int]]:
        """(W, H) of every layer's output map, derived from the input geometry."""
        w, h = self.input_w, self.input_h
        c1 = (conv_out(conv_out(w, 11, 4), 2, 2), conv_out(conv_out(h, 11, 4), 2, 2))
        c2 = (conv_out(conv_out(c1[0], 5, 1, 2), 2, 2), conv_out(conv_out(c1[1], 5, 1, 2), 2, 2))
        c5 = (conv_out(c2[0], 3, 2), conv_out(c2[1], 3, 2))
        fh = self.fine_input_h
        f1 = (conv_out(conv_out(w, 9, 2), 2, 2), conv_out(conv_out(fh, 9, 2), 2, 2))
        return {"input": (w, h), "C1": c1, "C2": c2, "C3": c2, "C4": c2, "C5": c5,
                "C7": f1, "F1": f1, "F3": f1, "F4": f1}

    @property
    def output_w(self) -> int:
        return self.layer_sizes()["F4"][0]

    @property
    def output_h(self) -> int:
        return self.layer_sizes()["F4"][1]

    @property
    def c5_features(self) -> int:
        w, h = self.layer_sizes()["C5"]
        return self.coarse_channels[4] * w * h

    def output_region(self) -> Tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the network input, in input pixels, that the output map spans.

        Output pixel (i, j) has its centre at input coordinate
        x = x0 + (i + 0.5) * (x1 - x0) / output_w, y = y0 + (j + 0.5) * (y1 - y0) / output_h.
        """
        return (0.0, float(self.fine_crop_top), float(self.input_w), float(self.input_h))

    def output_map(self, out_w: int | None = None, out_h: int | None = None, *, whole_input: bool = False
                   ) -> np.ndarray:
        """The output map as a 3x3 affine matrix: output pixel coordinates (i, j, 1) -> network-input pixel
        coordinates (x, y, 1), pixel-centre convention: x = x0 + (i + 0.5) (x1 - x0) / out_w - 0.5 over
        :meth:`output_region` (``whole_input``: over the whole input, as foreign models' outputs are).
        ``out_w``/``out_h`` default to the profile's output size (a backend may report another)."""
        ow = self.output_w if out_w is None else int(out_w)
        oh = self.output_h if out_h is None else int(out_h)
        if whole_input:
            x0, y0, x1, y1 = 0.0, 0.0, float(self.input_w), float(self.input_h)
        else:
            x0, y0, x1, y1 = self.output_region()
        kx, ky = (x1 - x0) / ow, (y1 - y0) / oh
        return np.array([[kx, 0.0, x0 + 0.5 * kx - 0.5], [0.0, ky, y0 + 0.5 * ky - 0.5], [0.0, 0.0, 1.0]])

    def describe(self) -> List[Tuple[str, str, str]]:
        """Rows (layer, operation, W x H) for a summary table."""
        s = self.layer_sizes()
        c = self.coarse_channels
        fmt = lambda k: f"{s[k][0]} x {s[k][1]}"  # noqa: E731
        return [
            ("input", "RGB", fmt("input")),
            ("C1", f"conv 11x11/4, {c[0]} ch, ReLU, max-pool 2x2", fmt("C1")),
            ("C2", f"conv 5x5 pad 2, {c[1]} ch, ReLU, max-pool 2x2", fmt("C2")),
            ("C3", f"conv 3x3 pad 1, {c[2]} ch, ReLU", fmt("C3")),
            ("C4", f"conv 3x3 pad 1, {c[3]} ch, ReLU", fmt("C4")),
            ("C5", f"conv 3x3/2, {c[4]} ch, ReLU", fmt("C5")),
            ("C6", f"fc {self.c5_features} -> {self.fc_hidden}, ReLU, dropout {self.dropout}", str(self.fc_hidden)),
            ("C7", f"fc {self.fc_hidden} -> {self.output_w * self.output_h}, linear", fmt("C7")),
            ("F1", f"conv 9x9/2 on rows {self.fine_crop_top}:{self.input_h}, {self.fine_channels - 1} ch, "
                   "ReLU, max-pool 2x2", fmt("F1")),
            ("F2", "concat C7 map as channel " + str(self.fine_channels), fmt("F1")),
            ("F3", f"conv 5x5 pad 2, {self.fine_channels} ch, ReLU", fmt("F3")),
            ("F4", "conv 5x5 pad 2, 1 ch, linear: log depth", fmt("F4")),
        ]

    # ---- serialisation --------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Profile":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown profile fields: {sorted(unknown)}")
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw)

    def replace(self, **changes: Any) -> "Profile":
        return dataclasses.replace(self, **changes)


PROFILES: Dict[str, Profile] = {
    "nyu": Profile(
        name="nyu", input_w=304, input_h=228, min_depth=0.1, max_depth=10.0,
        resize_w=320, resize_h=240,
        description="NYU Depth v2 (paper): 640x480 -> 320x240 -> centre crop 304x228; output 74x55",
    ),
    "kitti": Profile(
        name="kitti", input_w=576, input_h=172, fine_crop_h=116, min_depth=1e-3, max_depth=80.0,
        resize_w=621, resize_h=188,
        description="KITTI (paper): 1242x375 halved -> crop 576x172; fine net on the bottom 116 rows; "
                    "output 142x27",
    ),
}


def get_profile(name_or_dict: "str | Dict[str, Any] | Profile") -> Profile:
    if isinstance(name_or_dict, Profile):
        return name_or_dict
    if isinstance(name_or_dict, dict):
        return Profile.from_dict(name_or_dict)
    try:
        return PROFILES[name_or_dict]
    except KeyError:
        raise KeyError(f"unknown profile {name_or_dict!r}; known: {', '.join(sorted(PROFILES))}") from None


def register_profile(profile: Profile) -> Profile:
    PROFILES[profile.name] = profile
    return profile
