"""The evaluation cap rule: ground truth exactly at max_depth is dropped by default (gt < max, as the
reference code of monodepth2 and BTS), kept only with cap_inclusive=True."""
import cv2
import numpy as np
import pytest

from conftest import shared_path
from mono_depth_ros import metrics as M


def test_gt_exactly_at_the_cap_is_dropped_by_default():
    gt = np.array([[2.0, 10.0, 10.0, 9.999, 10.001]])
    pred = np.full_like(gt, 5.0)
    v = M.valid_mask(pred, gt, max_depth=10.0)
    np.testing.assert_array_equal(v, [[True, False, False, True, False]])
    vi = M.valid_mask(pred, gt, max_depth=10.0, cap_inclusive=True)
    np.testing.assert_array_equal(vi, [[True, True, True, True, False]])
    assert M.depth_metrics(pred, gt, max_depth=10.0)["n"] == 2
    assert M.depth_metrics(pred, gt, max_depth=10.0, cap_inclusive=True)["n"] == 4
    acc = M.MetricAccumulator(max_depth=10.0)
    acc.add(pred, gt)
    assert acc.result()["pixels"] == 2
    acc_i = M.MetricAccumulator(max_depth=10.0, cap_inclusive=True)
    acc_i.add(pred, gt)
    assert acc_i.result()["pixels"] == 4
    assert M.mean_depth_baseline([gt], max_depth=10.0) == pytest.approx((2.0 + 9.999) / 2)
    assert M.mean_depth_baseline([gt], max_depth=10.0, cap_inclusive=True) == pytest.approx((2.0 + 29.999) / 4)
    # no cap: nothing dropped for being far
    assert M.valid_mask(pred, gt).sum() == 5


def test_real_nyu_sync_frame_loses_its_saturated_pixels():
    """The shared NYU sync frame (uint16 mm) has many pixels at exactly 10.000 m: the default drops them."""
    p = shared_path("nyu_depth_v2_samples/mmseg_pseudo_nyu/bookstore_0001d_00001_depth.png")
    raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    gt = raw.astype(np.float64) / 1000.0
    at_cap = int(np.count_nonzero(raw == 10000))
    valid_any = int(np.count_nonzero(gt > 1e-3))
    assert at_cap > 0.1 * valid_any            # about a fifth of the valid pixels sit at the cap
    ones = np.ones_like(gt)
    assert M.valid_mask(ones, gt, max_depth=10.0).sum() == valid_any - at_cap
    assert M.valid_mask(ones, gt, max_depth=10.0, cap_inclusive=True).sum() == valid_any


def test_evaluation_protocols_say_the_cap_is_exclusive():
    from mono_depth_ros.bag.evaluate import PROTOCOLS
    from mono_depth_ros.profiles import get_profile
    from training.evaluate import protocols_for

    descr = [p.description for p in protocols_for("nyu", get_profile("nyu"))]
    assert "depth in (0.001, 10) m" in descr[1] and descr[0].endswith(", 10) m")
    assert "(1e-3, 80) m" in PROTOCOLS["garg80"].description
