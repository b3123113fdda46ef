import math

import numpy as np
import pytest

from mono_depth_ros.metrics import (METRIC_NAMES, MetricAccumulator, depth_metrics, format_table,
                                    kitti_eigen_crop_mask, kitti_garg_crop_mask, mean_depth_baseline,
                                    nyu_eigen_crop_mask)


def test_hand_computed_values():
    gt = np.array([[1.0, 2.0], [4.0, 5.0]])
    pred = np.array([[1.0, 3.0], [2.0, 5.0]])
    m = depth_metrics(pred, gt)
    # ratios: 1, 1.5, 2, 1
    assert m["delta1"] == pytest.approx(0.5)
    assert m["delta2"] == pytest.approx(0.75)   # 1.5 < 1.5625, 2 > 1.5625
    assert m["delta3"] == pytest.approx(0.75)   # 1.25^3 = 1.953 < 2
    err = np.array([0, 1, -2, 0.0])
    g = np.array([1, 2, 4, 5.0])
    assert m["abs_rel"] == pytest.approx(np.mean(np.abs(err) / g))
    assert m["sq_rel"] == pytest.approx(np.mean(err ** 2 / g))
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean(err ** 2)))
    d = np.log([1, 3, 2, 5.0]) - np.log(g)
    assert m["rmse_log"] == pytest.approx(math.sqrt(np.mean(d ** 2)))
    assert m["si_log"] == pytest.approx(math.sqrt(np.mean(d ** 2) - np.mean(d) ** 2))
    assert m["n"] == 4


def test_delta3_boundary():
    gt = np.array([[1.0]])
    assert depth_metrics(np.array([[1.9]]), gt)["delta3"] == 1.0
    assert depth_metrics(np.array([[2.0]]), gt)["delta3"] == 0.0


def test_perfect_prediction_and_scale_invariance():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 10, size=(30, 40))
    m = depth_metrics(gt.copy(), gt)
    for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "si_log"):
        assert m[k] == pytest.approx(0.0, abs=1e-12)
    assert m["delta1"] == 1.0
    pred = gt * rng.uniform(0.8, 1.2, size=gt.shape)
    a = depth_metrics(pred, gt)
    b = depth_metrics(pred * 3.7, gt)
    assert b["si_log"] == pytest.approx(a["si_log"], rel=1e-9)
    assert b["rmse_log"] != pytest.approx(a["rmse_log"])
    # median scaling recovers the scale
    c = depth_metrics(pred * 3.7, gt, median_scaling=True)
    assert c["abs_rel"] == pytest.approx(depth_metrics(pred * c["scale"] * 3.7, gt)["abs_rel"])
    assert c["abs_rel"] < b["abs_rel"]


def test_invalid_pixels_are_excluded():
    gt = np.array([[1.0, 0.0, np.nan, np.inf, 2.0, 100.0]])
    pred = np.array([[1.0, 5.0, 5.0, 5.0, np.nan, 100.0]])
    m = depth_metrics(pred, gt, max_depth=80.0)
    assert m["n"] == 1 and m["abs_rel"] == 0.0
    mask = np.array([[False, True, True, True, True, True]])
    assert depth_metrics(pred, gt, mask=mask, max_depth=80) is None
    assert all(np.isfinite(v) for v in depth_metrics(pred, gt).values())


def test_prediction_is_upsampled_and_clamped():
    gt = np.full((8, 8), 2.0)
    pred = np.full((4, 4), 2.0)
    assert depth_metrics(pred, gt)["abs_rel"] == pytest.approx(0.0)
    m = depth_metrics(np.full((8, 8), 500.0), np.full((8, 8), 79.0), max_depth=80.0)
    assert m["abs_rel"] == pytest.approx(1.0 / 79.0)  # clamped to the cap (gt at the cap itself is dropped)


def test_accumulator_image_vs_pixel_mean():
    a_gt, a_pred = np.full((2, 2), 1.0), np.full((2, 2), 2.0)    # abs_rel 1.0, 4 px
    b_gt, b_pred = np.full((4, 4), 1.0), np.full((4, 4), 1.0)    # abs_rel 0, 16 px
    img = MetricAccumulator(mode="image")
    pix = MetricAccumulator(mode="pixel")
    for acc in (img, pix):
        acc.add(a_pred, a_gt)
        acc.add(b_pred, b_gt)
        acc.add(b_pred, np.zeros((4, 4)))  # no valid pixel: skipped
    assert img.result()["abs_rel"] == pytest.approx(0.5)
    assert pix.result()["abs_rel"] == pytest.approx(4 / 20)
    assert img.result()["skipped"] == 1 and img.result()["images"] == 2
    assert set(METRIC_NAMES) <= set(img.result())
    with pytest.raises(ValueError, match="no image"):
        MetricAccumulator().result()


def test_crops():
    m = nyu_eigen_crop_mask((480, 640))
    rows, cols = np.nonzero(m)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (45, 471, 41, 601)
    g = kitti_garg_crop_mask((375, 1242))
    rows, cols = np.nonzero(g)
    assert (rows.min(), rows.max() + 1) == (int(0.40810811 * 375), int(0.99189189 * 375))
    assert (cols.min(), cols.max() + 1) == (int(0.03594771 * 1242), int(0.96405229 * 1242))
    e = kitti_eigen_crop_mask((375, 1242))
    rows_e = np.nonzero(e.any(axis=1))[0]
    assert rows_e.min() == int(0.3324324 * 375) and rows_e.min() < rows.min()


def test_mean_depth_baseline_and_table():
    gts = [np.array([[1.0, 3.0]]), np.array([[0.0, 5.0]])]
    assert mean_depth_baseline(gts) == pytest.approx(3.0)
    m = depth_metrics(np.full((1, 2), 3.0), gts[0])
    t = format_table({"baseline": m})
    assert t.count("|") > 10 and "AbsRel" in t and "| 1.000 |" in t  # abs_rel = (2/1 + 0/3) / 2
