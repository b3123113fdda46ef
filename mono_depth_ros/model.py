"""The Eigen, Puhrsch & Fergus (NIPS 2014) multi-scale depth network.

This module is the single definition used by training, export and the PyTorch backend.

* Coarse (global) network C1-C7: five convolutions (ReLU; max-pool after C1 and C2), then two
  fully connected layers; C6 has ReLU and the network's only dropout, C7 is linear and is
  reshaped to the coarse log-depth map.
* Fine (local) network F1-F4: F1 (conv 9x9 stride 2, ReLU, max-pool) on the input (KITTI: on its
  bottom crop), F2 concatenates the coarse map as the last channel, F3 conv 5x5 + ReLU, F4 conv
  5x5 linear -> log depth.

Inputs are normalised RGB tensors (B, 3, H, W) of the profile's input size; outputs are log depth
(natural log of metres), (B, 1, output_h, output_w).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from .profiles import Profile, get_profile

STAGES = ("coarse", "fine")


class CoarseNet(nn.Module):
    def __init__(self, profile: Profile):
        super().__init__()
        c = profile.coarse_channels
        self.profile = profile
        self.c1 = nn.Conv2d(3, c[0], 11, stride=4)
        self.c2 = nn.Conv2d(c[0], c[1], 5, padding=2)
        self.c3 = nn.Conv2d(c[1], c[2], 3, padding=1)
        self.c4 = nn.Conv2d(c[2], c[3], 3, padding=1)
        self.c5 = nn.Conv2d(c[3], c[4], 3, stride=2)
        self.pool = nn.MaxPool2d(2, 2)
        self.relu = nn.ReLU(inplace=True)
        self.c6 = nn.Linear(profile.c5_features, profile.fc_hidden)
        self.dropout = nn.Dropout(profile.dropout)
        self.c7 = nn.Linear(profile.fc_hidden, profile.output_w * profile.output_h)
        self.out_hw = (profile.output_h, profile.output_w)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.c1(x)))
        x = self.pool(self.relu(self.c2(x)))
        x = self.relu(self.c3(x))
        x = self.relu(self.c4(x))
        return self.relu(self.c5(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        x = self.dropout(self.relu(self.c6(x)))
        x = self.c7(x)  # linear: no ReLU on C7
        return x.view(x.shape[0], 1, self.out_hw[0], self.out_hw[1])

    def conv_layers(self) -> List[nn.Conv2d]:
        return [self.c1, self.c2, self.c3, self.c4, self.c5]


class FineNet(nn.Module):
    def __init__(self, profile: Profile):
        super().__init__()
        self.profile = profile
        n = profile.fine_channels
        self.crop_top = profile.fine_crop_top
        self.f1 = nn.Conv2d(3, n - 1, 9, stride=2)
        self.pool = nn.MaxPool2d(2, 2)
        self.relu = nn.ReLU(inplace=True)
        self.f3 = nn.Conv2d(n, n, 5, padding=2)
        self.f4 = nn.Conv2d(n, 1, 5, padding=2)

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        if self.crop_top:
            x = x[:, :, self.crop_top:, :]
        y = self.pool(self.relu(self.f1(x)))
        y = torch.cat([y, coarse], dim=1)  # F2
        y = self.relu(self.f3(y))
        return self.f4(y)  # linear log depth


class EigenDepthNet(nn.Module):
    """Coarse + fine network. ``stage`` selects the output: "coarse" (C7's map) or "fine"."""

    def __init__(self, profile: "Profile | str", stage: str = "fine"):
        super().__init__()
        self.profile = get_profile(profile)
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage
        self.coarse = CoarseNet(self.profile)
        self.fine = FineNet(self.profile)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01 if m is self.coarse.c7 else (2.0 / m.in_features) ** 0.5)
                nn.init.zeros_(m.bias)
        # Linear output layers start small so training begins near a constant log depth.
        nn.init.normal_(self.fine.f4.weight, std=1e-3)
        nn.init.normal_(self.coarse.c7.weight, std=1e-3)
        mid = 0.5 * (torch.log(torch.tensor(max(self.profile.min_depth, 1e-3))) +
                     torch.log(torch.tensor(self.profile.max_depth)))
        with torch.no_grad():
            self.coarse.c7.bias.fill_(float(mid))

    @property
    def output_size(self) -> Tuple[int, int]:
        """(H, W) of the log-depth map."""
        return self.profile.output_h, self.profile.output_w

    def forward(self, x: torch.Tensor, stage: Optional[str] = None) -> torch.Tensor:
        stage = stage or self.stage
        p = self.profile
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != p.input_h or x.shape[3] != p.input_w:
            raise ValueError(f"expected input (B, 3, {p.input_h}, {p.input_w}) for profile {p.name!r}, "
                             f"got {tuple(x.shape)}")
        coarse = self.coarse(x)
        if stage == "coarse":
            return coarse
        return self.fine(x, coarse)

    # ---- staged training ------------------------------------------------------------
    def freeze_coarse(self, frozen: bool = True) -> None:
        """Freeze (no gradient, eval-mode dropout) the coarse network for the fine stage."""
        for prm in self.coarse.parameters():
            prm.requires_grad_(not frozen)
        self._coarse_frozen = frozen
        if frozen:
            self.coarse.eval()

    def train(self, mode: bool = True) -> "EigenDepthNet":
        super().train(mode)
        if getattr(self, "_coarse_frozen", False):
            self.coarse.eval()
        return self

    def param_groups(self, stage: str, lrs: Optional[Dict[str, float]] = None) -> List[Dict]:
        """Optimizer parameter groups with the paper's per-layer learning rates.

        coarse: C1-C5 0.001, C6-C7 0.1; fine: F1 and F4 0.001, F3 0.01.
        ``lrs`` may override the keys conv, fc (coarse) and f1, f3, f4 (fine).
        """
        lr = {"conv": 1e-3, "fc": 0.1, "f1": 1e-3, "f3": 1e-2, "f4": 1e-3}
        lr.update(lrs or {})
        c, f = self.coarse, self.fine
        if stage == "coarse":
            groups = [("conv", [q for m in c.conv_layers() for q in m.parameters()]),
                      ("fc", list(c.c6.parameters()) + list(c.c7.parameters()))]
        elif stage == "fine":
            groups = [("f1", list(f.f1.parameters())), ("f3", list(f.f3.parameters())),
                      ("f4", list(f.f4.parameters()))]
        else:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        return [{"params": ps, "lr": lr[name], "name": name} for name, ps in groups]

    def load_alexnet_conv(self, state_dict: Dict[str, torch.Tensor], strict_shapes: bool = True) -> List[str]:
        """Load AlexNet-style ImageNet weights into C1-C5.

        Accepts torchvision's ``alexnet`` keys (features.0/3/6/8/10.weight|bias) or this model's
        own ``coarse.c1..c5`` keys. torchvision's AlexNet C1 has 64 channels (the original
        Krizhevsky net has 96): with ``strict_shapes`` a shape mismatch is an error, otherwise
        the overlapping slice is copied. Returns the names of the loaded tensors.
        """
        tv = {"features.0": "c1", "features.3": "c2", "features.6": "c3", "features.8": "c4", "features.10": "c5"}
        loaded = []
        for key, value in state_dict.items():
            prefix, _, kind = key.rpartition(".")
            name = tv.get(prefix) or (prefix.split(".")[-1] if prefix.startswith("coarse.c") else None)
            if name not in ("c1", "c2", "c3", "c4", "c5") or kind not in ("weight", "bias"):
                continue
            target = getattr(getattr(self.coarse, name), kind)
            if tuple(value.shape) != tuple(target.shape):
                if strict_shapes:
                    raise ValueError(f"AlexNet tensor {key} has shape {tuple(value.shape)}, "
                                     f"{name}.{kind} needs {tuple(target.shape)}")
                sl = tuple(slice(0, min(a, b)) for a, b in zip(value.shape, target.shape))
                with torch.no_grad():
                    target[sl].copy_(value[sl])
            else:
                with torch.no_grad():
                    target.copy_(value)
            loaded.append(f"{name}.{kind}")
        if not loaded:
            raise ValueError("no AlexNet conv weights (features.{0,3,6,8,10} or coarse.c1..c5) found")
        return loaded


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def summary(model: EigenDepthNet) -> str:
    """A text table of the layers and their output sizes, plus parameter counts."""
    p = model.profile
    rows = p.describe()
    w0 = max(len(r[1]) for r in rows)
    lines = [f"profile {p.name}: {p.description}".rstrip(": "),
             f"{'layer':<6} {'operation':<{w0}} {'W x H':>10}"]
    lines += [f"{a:<6} {b:<{w0}} {c:>10}" for a, b, c in rows]
    lines.append(f"parameters: coarse {count_parameters(model.coarse) / 1e6:.2f} M, "
                 f"fine {count_parameters(model.fine) / 1e6:.3f} M, total {count_parameters(model) / 1e6:.2f} M")
    return "\n".join(lines)


def gflops(profile: "Profile | str") -> float:
    """Multiply-accumulates x2 of one forward pass (coarse + fine), in GFLOP."""
    p = get_profile(profile)
    s = p.layer_sizes()
    c = p.coarse_channels
    pre_pool = lambda k, w, st: (w - k) // st + 1  # noqa: E731
    c1 = pre_pool(11, p.input_w, 4) * pre_pool(11, p.input_h, 4) * c[0] * 3 * 121
    c2 = s["C1"][0] * s["C1"][1] * c[1] * c[0] * 25
    c3 = s["C2"][0] * s["C2"][1] * c[2] * c[1] * 9
    c4 = s["C2"][0] * s["C2"][1] * c[3] * c[2] * 9
    c5 = s["C5"][0] * s["C5"][1] * c[4] * c[3] * 9
    fc = p.c5_features * p.fc_hidden + p.fc_hidden * p.output_w * p.output_h
    n = p.fine_channels
    f1 = pre_pool(9, p.input_w, 2) * pre_pool(9, p.fine_input_h, 2) * (n - 1) * 3 * 81
    f3 = p.output_w * p.output_h * n * n * 25
    f4 = p.output_w * p.output_h * n * 25
    return 2.0 * (c1 + c2 + c3 + c4 + c5 + fc + f1 + f3 + f4) / 1e9


def build_model(profile: "Profile | str", stage: str = "fine") -> EigenDepthNet:
    return EigenDepthNet(profile, stage)


def iter_layer_shapes(model: EigenDepthNet, batch: int = 1) -> Iterable[Tuple[str, Tuple[int, ...]]]:
    """Run a forward pass with hooks and yield (layer, output shape) as measured."""
    shapes: List[Tuple[str, Tuple[int, ...]]] = []
    hooks = []
    named = {"C1": model.coarse.c1, "C2": model.coarse.c2, "C3": model.coarse.c3, "C4": model.coarse.c4,
             "C5": model.coarse.c5, "C6": model.coarse.c6, "C7": model.coarse, "F1": model.fine.f1,
             "F3": model.fine.f3, "F4": model.fine.f4}
    for name, m in named.items():
        hooks.append(m.register_forward_hook(lambda _m, _i, o, name=name: shapes.append((name, tuple(o.shape)))))
    try:
        p = model.profile
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(batch, 3, p.input_h, p.input_w), stage="fine")
        model.train(was)
    finally:
        for h in hooks:
            h.remove()
    return shapes
