"""The scale-invariant loss of Eigen et al. (2014), per image over its valid pixels, then batch mean.

With d_i = log y_i - log y*_i over the n valid pixels of one image:

    L = (1/n) sum d_i^2 - (lam / n^2) (sum d_i)^2

lam = 0 is the log-L2 loss, lam = 1 the scale-invariant error D (invariant to adding a constant
to the log prediction), lam = 0.5 the paper's training loss.  The batch loss is the mean of the
per-image losses over *all* images of the batch; an image without a valid pixel contributes 0
(never NaN, and a zero, finite gradient).  Averaging over the full batch size (not over the
non-empty images) keeps a DistributedDataParallel run equal to a single-process run.
"""
from __future__ import annotations

from typing import Optional

import torch


def _prepare(pred_log: torch.Tensor, target_log: torch.Tensor, mask: torch.Tensor):
    if pred_log.shape != target_log.shape or pred_log.shape != mask.shape:
        raise ValueError(f"pred {tuple(pred_log.shape)}, target {tuple(target_log.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same shape")
    if pred_log.dim() < 2:
        raise ValueError("expected a batch (B, ...) of log-depth maps")
    mask = mask.bool()
    pred = pred_log.float()
    # invalid targets may be -inf/NaN (log 0): replace them before any arithmetic
    target = torch.where(mask, target_log.float(), pred.detach())
    d = torch.where(mask, pred - target, torch.zeros_like(pred))
    dims = tuple(range(1, pred.dim()))
    n = mask.sum(dim=dims).to(pred.dtype)
    return d, mask, n, dims


def per_image_loss(pred_log: torch.Tensor, target_log: torch.Tensor, mask: torch.Tensor,
                   lam: float = 0.5) -> torch.Tensor:
    """(B,) per-image losses; 0 for an image without valid pixels."""
    d, mask, n, dims = _prepare(pred_log, target_log, mask)
    n_safe = n.clamp(min=1.0)
    s2 = (d * d).sum(dim=dims)
    s1 = d.sum(dim=dims)
    loss = s2 / n_safe - lam * (s1 / n_safe) ** 2
    return torch.where(n > 0, loss, torch.zeros_like(loss))


def gradient_matching_loss(pred_log: torch.Tensor, target_log: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean |dx d| + |dy d| over neighbour pairs that are both valid (scale-invariant in log space)."""
    d, mask, _, dims = _prepare(pred_log, target_log, mask)
    mx = mask[..., :, 1:] & mask[..., :, :-1]
    my = mask[..., 1:, :] & mask[..., :-1, :]
    gx = (d[..., :, 1:] - d[..., :, :-1]).abs() * mx
    gy = (d[..., 1:, :] - d[..., :-1, :]).abs() * my
    n = (mx.sum(dim=dims) + my.sum(dim=dims)).to(d.dtype)
    tot = gx.sum(dim=dims) + gy.sum(dim=dims)
    return torch.where(n > 0, tot / n.clamp(min=1.0), torch.zeros_like(tot))


def scale_invariant_loss(pred_log: torch.Tensor, target_log: torch.Tensor, mask: torch.Tensor,
                         lam: float = 0.5, grad_weight: float = 0.0,
                         reduction: str = "mean") -> torch.Tensor:
    """Training loss: per image over its valid pixels, then the batch mean (``reduction="none"``: (B,)).

    ``grad_weight`` > 0 adds the optional gradient-matching term (not in the paper).
    """
    loss = per_image_loss(pred_log, target_log, mask, lam)
    if grad_weight:
        loss = loss + grad_weight * gradient_matching_loss(pred_log, target_log, mask)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction != "mean":
        raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")
    return loss.mean()


def scale_invariant_error(pred_log: torch.Tensor, target_log: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The paper's scale-invariant error D per image (lam = 1), shape (B,)."""
    return per_image_loss(pred_log, target_log, mask, lam=1.0)


def masked_log(depth: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """log(depth) where valid, 0 elsewhere (no -inf in the tensor)."""
    m = depth > 0 if mask is None else mask.bool() & (depth > 0)
    return torch.where(m, torch.log(torch.where(m, depth, torch.ones_like(depth))), torch.zeros_like(depth))
