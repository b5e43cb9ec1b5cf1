"""Bootstrap intervals of the calibration and conformal metrics: on every resample each metric equals the
reference implementation (``calibration_metrics``, ``conformal_report``) on the materialized rows, and every
probe's results carry them."""

from __future__ import annotations

import numpy as np
import pytest

from encoderzoo.probes.bootstrap import resample_counts
from encoderzoo.probes.calibration import calibration_metrics
from encoderzoo.probes.conformal import conformal_report, covered_and_sizes
from encoderzoo.probes.trust_bootstrap import bootstrap_calibration, bootstrap_conformal
from encoderzoo.trust import Trust

# sums of at most a few thousand float64 terms, each below 1 (or below -log(eps) ~ 16 for the NLL)
ATOL = 1e-9


def _single(n, k, seed):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.full(k, 0.7), n)
    y = np.where(rng.random(n) < 0.6, proba.argmax(1), rng.integers(0, k, n))  # better than chance
    return y, proba


def _multi(n, labels, seed):
    rng = np.random.default_rng(seed)
    proba = rng.random((n, labels))
    y = (rng.random((n, labels)) < proba).astype(np.float64)
    y[rng.random((n, labels)) < 0.15] = np.nan  # unknown values
    y[:, -1] = np.nan  # a label never known
    return y, proba


def _materialized(counts_row):
    return np.repeat(np.arange(len(counts_row)), counts_row.astype(np.int64))


@pytest.mark.parametrize("make", [lambda: _single(300, 2, 0), lambda: _single(400, 5, 1), lambda: _multi(250, 4, 2)])
def test_calibration_on_each_resample_equals_the_metrics_on_the_drawn_rows(make):
    y, proba = make()
    counts = resample_counts(y, resamples=12, seed=3)
    got = bootstrap_calibration(y, proba, counts, n_bins=10)
    for r in range(len(counts)):
        rows = _materialized(counts[r])
        expected = calibration_metrics(y[rows], proba[rows], n_bins=10)
        for metric in ("ece", "mce", "brier", "nll"):
            assert got[metric][r] == pytest.approx(expected[metric], abs=ATOL), (metric, r)


@pytest.mark.parametrize("make", [lambda: _single(300, 4, 4), lambda: _multi(300, 3, 5)])
def test_conformal_on_each_resample_equals_the_report_on_the_drawn_rows(make):
    y, proba = make()
    y_val, proba_val = y[:150], proba[:150]
    y_test, proba_test = y[150:], proba[150:]
    covered, sizes = covered_and_sizes(y_val, proba_val, y_test, proba_test, coverage=0.8, score="lac")
    counts = resample_counts(y_test, resamples=10, seed=6)
    got = bootstrap_conformal(covered, sizes, 0.8, counts)
    for r in range(len(counts)):
        rows = _materialized(counts[r])
        expected = conformal_report(y_val, proba_val, y_test[rows], proba_test[rows], coverage=0.8, scores=("lac",))
        for metric in ("coverage", "coverage_gap", "set_size"):
            assert got[metric][r] == pytest.approx(expected[metric], abs=ATOL), (metric, r)


def test_randomized_sets_are_the_reported_ones():
    """The per-row sets behind the intervals are the report's own (same threshold and uniforms for APS)."""
    y, proba = _single(400, 6, 7)
    covered, sizes = covered_and_sizes(y[:200], proba[:200], y[200:], proba[200:], score="aps", seed=0)
    report = conformal_report(y[:200], proba[:200], y[200:], proba[200:], scores=("aps", "lac"), seed=0)
    assert covered.mean() == pytest.approx(report["coverage"], abs=ATOL)
    assert sizes.mean() == pytest.approx(report["set_size"], abs=ATOL)
    fixed = covered_and_sizes(y[:200], proba[:200], y[200:], proba[200:], score="aps", randomized=False)[1]
    assert report["randomized"] and not np.array_equal(fixed, sizes)  # the uniforms change the sets


def test_every_probe_result_carries_trust_intervals():
    y, proba = _single(600, 3, 8)
    ids = [str(i) for i in range(600)]
    trusted = Trust().assess("linear", (ids[:300], y[:300], proba[:300]), (ids[300:], y[300:], proba[300:]), None)
    calibration, conformal = trusted["calibration"], trusted["conformal"]
    for entry in (calibration, calibration["temperature_scaled"]):
        for metric in ("ece", "mce", "brier", "nll"):
            low, high = entry[metric]["ci95"]
            assert 0 <= low <= high, metric
        assert "ci95" not in entry["ece_equal_mass"]  # its bins move with each resample: no interval
    low, high = conformal["coverage"]["ci95"]
    assert low <= conformal["coverage"]["mean"] <= high and high - low > 0.01
    assert conformal["set_size"]["ci95"][0] >= 1 - 1e-12 or conformal["empty"]["mean"] > 0
    # without a validation split: calibration before scaling only, still with intervals
    alone = Trust().assess("knn", None, (ids[300:], y[300:], proba[300:]), None)
    assert "ci95" in alone["calibration"]["ece"] and "skipped" in alone["conformal"]


def test_ece_intervals_sit_above_a_perfect_calibration():
    """What the README warns about: on perfectly calibrated data (y drawn with the predicted probability) the true
    ECE is 0, yet the percentile interval of an absolute-value statistic lies above it, around the point value."""
    from encoderzoo.probes.trust_bootstrap import trust_intervals

    rng = np.random.default_rng(0)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(np.int64)
    proba = np.stack([1 - p, p], 1)
    point = calibration_metrics(y, proba)["ece"]
    low, high = trust_intervals(y, {"calibration": proba}, None)["calibration"]["ece"]
    assert 0 < low and point < high
