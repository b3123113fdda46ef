"""training.losses: the scale-invariant loss against the formula, masking, and degenerate cases."""
import numpy as np
import pytest
import torch

from training.losses import gradient_matching_loss, masked_log, per_image_loss, scale_invariant_loss


def _batch(seed=0, b=3, h=5, w=7, p_valid=0.6):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(b, 1, h, w, generator=g, dtype=torch.float64)
    target = torch.randn(b, 1, h, w, generator=g, dtype=torch.float64)
    mask = torch.rand(b, 1, h, w, generator=g) < p_valid
    return pred, target, mask


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_loss_equals_formula_by_hand(lam):
    pred, target, mask = _batch()
    per = []
    for i in range(pred.shape[0]):
        d = (pred[i] - target[i]).numpy()[mask[i].numpy()]
        n = d.size
        per.append(np.sum(d ** 2) / n - lam * np.sum(d) ** 2 / n ** 2)
    got = scale_invariant_loss(pred, target, mask, lam=lam)
    assert got.item() == pytest.approx(np.mean(per), rel=1e-6)
    np.testing.assert_allclose(per_image_loss(pred, target, mask, lam).numpy(), per, rtol=1e-6)


def test_lam_one_invariant_to_constant_offset_and_lam_zero_is_not():
    pred, target, mask = _batch(1)
    shifted = pred + 0.7
    assert scale_invariant_loss(shifted, target, mask, lam=1.0).item() == pytest.approx(
        scale_invariant_loss(pred, target, mask, lam=1.0).item(), abs=1e-9)
    assert scale_invariant_loss(shifted, target, mask, lam=0.0).item() != pytest.approx(
        scale_invariant_loss(pred, target, mask, lam=0.0).item(), abs=1e-3)


def test_masked_pixels_affect_neither_value_nor_gradient():
    pred, target, mask = _batch(2)
    pred2, target2 = pred.clone(), target.clone()
    pred2[~mask] = 1e3
    target2[~mask] = float("-inf")   # log(0) of missing depth
    target2[0, 0, 0, 0] = float("nan") if not mask[0, 0, 0, 0] else target2[0, 0, 0, 0]
    a = pred.clone().requires_grad_(True)
    b = pred2.clone().requires_grad_(True)
    la = scale_invariant_loss(a, target, mask)
    lb = scale_invariant_loss(b, target2, mask)
    la.backward()
    lb.backward()
    assert la.item() == pytest.approx(lb.item(), rel=1e-12)
    assert torch.equal(a.grad, b.grad)
    assert torch.all(b.grad[~mask] == 0)
    assert torch.all(torch.isfinite(b.grad))


def test_image_without_valid_pixels_contributes_zero_with_finite_gradient():
    pred, target, mask = _batch(3)
    mask[1] = False
    target[1] = float("-inf")
    x = pred.clone().requires_grad_(True)
    per = per_image_loss(x, target, mask)
    assert per[1].item() == 0.0
    loss = scale_invariant_loss(x, target, mask)
    assert loss.item() == pytest.approx((per[0] + per[2]).item() / 3, rel=1e-6)  # batch mean over all images
    loss.backward()
    assert torch.all(torch.isfinite(x.grad)) and torch.all(x.grad[1] == 0)
    # a batch with no valid pixel at all
    y = pred.clone().requires_grad_(True)
    z = scale_invariant_loss(y, torch.full_like(pred, float("nan")), torch.zeros_like(mask))
    z.backward()
    assert z.item() == 0.0 and torch.all(torch.isfinite(y.grad))


def test_gradient_matching_term_is_shift_invariant_and_detects_structure():
    pred, target, mask = _batch(4, p_valid=0.9)
    assert torch.allclose(gradient_matching_loss(target + 2.0, target, mask).double(), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    assert torch.all(gradient_matching_loss(pred, target, mask) > 0)
    base = scale_invariant_loss(pred, target, mask)
    assert scale_invariant_loss(pred, target, mask, grad_weight=0.5).item() > base.item()


def test_masked_log():
    d = torch.tensor([[0.0, 1.0, float("nan"), np.e]])
    m = torch.tensor([[False, True, False, True]])
    out = masked_log(d, m)
    assert torch.all(torch.isfinite(out))
    assert out[0].tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0])
