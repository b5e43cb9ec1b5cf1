"""Calibration metrics against netcal and scikit-learn on the same probabilities; temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

from encoderzoo.probes import evaluate
from encoderzoo.probes.calibration import (
    binned_errors,
    calibration_metrics,
    fit_temperature,
    scale,
    temperature_scaling_report,
)

netcal = pytest.importorskip("netcal.metrics", reason="netcal is the reference (pip install 'encoderzoo[dev]')")
skm = pytest.importorskip("sklearn.metrics")

# float64 sums of ~1e4 terms in a different order: relative rounding ~1e4 * 2^-53 ~ 1e-12
TOL = 1e-10


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _multiclass(n=3000, k=5, sharpen=1.6, seed=0):
    """Labels drawn from softmax(z), probabilities softmax(sharpen * z): overconfident by design."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 1.5
    y = (rng.uniform(size=(n, 1)) > np.cumsum(_softmax(z), 1)).sum(1)
    return y, _softmax(sharpen * z)


def test_multiclass_top_label_matches_netcal_and_sklearn():
    y, p = _multiclass()
    assert len(np.unique(y)) == 5  # netcal switches to binary mode when only two labels occur
    ours = calibration_metrics(y, p, n_bins=15)
    assert ours["ece"] == pytest.approx(netcal.ECE(15).measure(p, y), abs=TOL)
    assert ours["ece_equal_mass"] == pytest.approx(netcal.ECE(15, equal_intervals=False).measure(p, y), abs=TOL)
    assert ours["mce"] == pytest.approx(netcal.MCE(15).measure(p, y), abs=TOL)
    assert ours["brier"] == pytest.approx(skm.brier_score_loss(y, p), abs=TOL)
    assert ours["nll"] == pytest.approx(skm.log_loss(y, p), abs=TOL)
    assert ours["ece_equal_mass"] != pytest.approx(ours["ece"], abs=1e-4)  # the two binnings really differ here


def test_binary_is_top_label_with_sklearn_brier():
    rng = np.random.default_rng(1)
    p1 = rng.uniform(size=4000)
    y = (rng.uniform(size=4000) < p1**1.4).astype(int)
    p = np.stack([1 - p1, p1], 1)
    ours = calibration_metrics(y, p, n_bins=10)
    confidence, correct = p.max(1), (p.argmax(1) == y).astype(int)  # top label, as netcal reads a binary outcome
    assert ours["ece"] == pytest.approx(netcal.ECE(10).measure(confidence, correct), abs=TOL)
    assert ours["ece_equal_mass"] == pytest.approx(
        netcal.ECE(10, equal_intervals=False).measure(confidence, correct), abs=TOL
    )
    assert ours["mce"] == pytest.approx(netcal.MCE(10).measure(confidence, correct), abs=TOL)
    assert ours["brier"] == pytest.approx(skm.brier_score_loss(y, p1), abs=TOL)  # binary Brier, not the 2x sum
    assert ours["nll"] == pytest.approx(skm.log_loss(y, p), abs=TOL)


def test_multilabel_per_label_with_unknowns():
    rng = np.random.default_rng(2)
    n, labels = 3000, 3
    p = rng.uniform(0.01, 0.99, size=(n, labels))
    y = (rng.uniform(size=(n, labels)) < p**1.3).astype(np.float32)
    y[rng.uniform(size=(n, labels)) < 0.2] = np.nan
    ours = calibration_metrics(y, p, n_bins=15, label_names=["a", "b", "c"])
    for j, name in enumerate("abc"):
        known = ~np.isnan(y[:, j])
        yj, pj = y[known, j].astype(int), p[known, j]
        assert ours["per_label"][name]["ece"] == pytest.approx(netcal.ECE(15).measure(pj, yj), abs=TOL)
        assert ours["per_label"][name]["mce"] == pytest.approx(netcal.MCE(15).measure(pj, yj), abs=TOL)
        assert ours["per_label"][name]["brier"] == pytest.approx(skm.brier_score_loss(yj, pj), abs=TOL)
        assert ours["per_label"][name]["nll"] == pytest.approx(skm.log_loss(yj, pj), abs=TOL)
    assert ours["ece"] == pytest.approx(np.mean([ours["per_label"][c]["ece"] for c in "abc"]), abs=TOL)


def test_binned_errors_by_hand():
    # two bins of width 0.5: [0, .5) holds .2 (wrong) and .4 (right); [.5, 1] holds .5, .9, 1.0 (all right)
    out = binned_errors(np.array([0.2, 0.4, 0.5, 0.9, 1.0]), np.array([0, 1, 1, 1, 1]), n_bins=2)
    low_gap, high_gap = abs(0.5 - 0.3), abs(1.0 - 0.8)
    assert out["ece"] == pytest.approx((2 * low_gap + 3 * high_gap) / 5, abs=1e-15)
    assert out["mce"] == pytest.approx(max(low_gap, high_gap), abs=1e-15)
    assert [b["count"] for b in out["bins"]] == [2, 3]


def test_temperature_recovers_a_known_sharpening():
    y, p = _multiclass(n=20000, sharpen=2.0, seed=3)
    t, at_bound = fit_temperature(y, p)
    # softmax(2z) rescaled by T = 2 is the true model; 20,000 samples pin T to a few percent
    assert t == pytest.approx(2.0, rel=0.05) and not at_bound

    def nll(temp):
        return calibration_metrics(y, scale(p, temp, False))["nll"]

    assert nll(t) <= min(nll(t * 1.01), nll(t / 1.01))  # the fitted T is the NLL minimum


def test_scaling_keeps_accuracy_and_binary_or_multilabel_auroc():
    y, p = _multiclass(seed=4)
    for t in (0.3, 2.5):
        scaled = scale(p, t, False)
        assert np.array_equal(scaled.argmax(1), p.argmax(1))
    rng = np.random.default_rng(5)
    p1 = rng.uniform(0.001, 0.999, size=2000)
    yb = (rng.uniform(size=2000) < p1).astype(int)
    pb = np.stack([1 - p1, p1], 1)
    ym = (rng.uniform(size=(2000, 3)) < 0.4).astype(np.float32)
    pm = rng.uniform(size=(2000, 3))
    for t in (0.3, 2.5):
        assert evaluate(yb, scale(pb, t, False))["auroc"] == evaluate(yb, pb)["auroc"]
        assert evaluate(ym, scale(pm, t, True))["auroc"] == evaluate(ym, pm)["auroc"]


def test_multiclass_one_vs_rest_auroc_can_change_under_temperature():
    # p^(1/T) renormalized keeps each row's order of classes, not the order of one class across rows:
    # class 0 ties between rows 0 and 1 before (0.5, 0.5) and is ordered after, so its one-vs-rest AUROC moves
    p = np.array([[0.5, 0.5, 0.0], [0.5, 0.25, 0.25], [0.1, 0.2, 0.7]])
    y = np.array([0, 1, 2])
    scaled = scale(p, 10.0, False)
    assert p[0, 0] == p[1, 0] and scaled[0, 0] > scaled[1, 0]
    before, after = evaluate(y, p), evaluate(y, scaled)
    assert before["accuracy"] == after["accuracy"] and before["auroc"] != after["auroc"]


def test_report_before_after_and_zero_probabilities():
    # kNN-like probabilities: exact zeros stay zero under scaling, the NLL is clipped rather than infinite
    y, p = _multiclass(n=2000, seed=6)
    p = np.where(p < 0.02, 0.0, p)
    p /= p.sum(1, keepdims=True)
    report = temperature_scaling_report(y[:1000], p[:1000], y[1000:], p[1000:])
    scaled = report["temperature_scaled"]
    assert np.isfinite(report["nll"]) and np.isfinite(scaled["nll"])
    assert scaled["accuracy_before"] == scaled["accuracy_after"]
    assert scaled["nll"] < report["nll"]  # fitted on a split of the same distribution, it helps on the other
    assert (scale(p, scaled["temperature"], False)[p == 0] == 0).all()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        calibration_metrics(np.array([0, 2]), np.array([[0.5, 0.5], [0.1, 0.9]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_metrics(np.array([0, 1]), np.array([[0.5, 0.5], [np.nan, 0.9]]))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        scale(np.array([[0.5, 0.5]]), 0.0, False)
