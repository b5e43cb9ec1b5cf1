"""Bootstrap intervals: each resampled metric equals metrics.evaluate on the materialized rows; stratification,
seeding, seeds sharing resamples, and the intervals in results.json."""

from __future__ import annotations

import numpy as np
import pytest

from encoderzoo.probes import evaluate
from encoderzoo.probes.bootstrap import (
    METRICS,
    bootstrap_metrics,
    confidence_intervals,
    resample_counts,
    weighted_auroc,
)


def _single(n=90, k=3, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    proba = rng.random((n, k))
    if ties:
        proba = np.round(proba, 1)  # many tied scores
    proba[np.arange(n), y] += 0.3  # better than chance, so the metrics are not all near their floor
    return y, proba / proba.sum(1, keepdims=True)


def _multilabel(n=80, labels=4, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, labels)).astype(np.float64)
    y[rng.random((n, labels)) < 0.15] = np.nan  # unknown entries are masked out
    y[:, 3] = np.where(np.isnan(y[:, 3]), np.nan, 0.0)  # a label with no positive: no AUROC
    y[:5, 3] = 1.0
    return y, rng.random((n, labels))


@pytest.mark.parametrize(
    "make", [_single, lambda: _single(k=2), lambda: _single(ties=True), _multilabel], ids=["3", "2", "ties", "ml"]
)
def test_each_resample_equals_evaluate_on_the_drawn_rows(make):
    y, proba = make()
    counts = resample_counts(y, resamples=25, seed=3)
    fast = bootstrap_metrics(y, proba, counts)
    for r in range(25):
        rows = np.repeat(np.arange(len(y)), counts[r].astype(int))
        slow = evaluate(y[rows], proba[rows])
        for m in METRICS:
            # float64 sums of <= 90 terms of size <= 1 in a different order: within a few ulps of 1
            np.testing.assert_allclose(fast[m][r], slow[m], rtol=0, atol=1e-12, err_msg=f"{m}, resample {r}")


def test_single_label_resamples_keep_the_class_counts():
    y, _ = _single(n=60)
    counts = resample_counts(y, resamples=50, seed=0)
    for c in np.unique(y):
        assert (counts[:, y == c].sum(1) == (y == c).sum()).all()
    assert not (counts == 1).all()  # an actual resample, not the identity


def test_weighted_auroc_with_unit_counts_is_the_plain_auroc():
    from encoderzoo.probes import binary_auroc

    rng = np.random.default_rng(0)
    positive, scores = rng.random(50) < 0.4, np.round(rng.random(50), 1)
    assert weighted_auroc(positive, scores, np.ones((1, 50)))[0] == pytest.approx(binary_auroc(positive, scores))


def test_intervals_are_seeded_contain_the_estimate_and_shrink_with_more_rows():
    y, proba = _single(n=300)
    first, again = confidence_intervals(y, proba), confidence_intervals(y, proba)
    assert first == again
    point = evaluate(y, proba)
    for m in METRICS:
        low, high = first[m]
        assert low < point[m] < high
    big_y, big_p = np.tile(y, 16), np.tile(proba, (16, 1))
    wide = first["accuracy"][1] - first["accuracy"][0]
    narrow = confidence_intervals(big_y, big_p)["accuracy"]
    assert narrow[1] - narrow[0] < wide / 2  # sqrt(16) = 4 times narrower in theory


def test_seeded_probes_get_the_interval_of_their_mean():
    y, a = _single(seed=0)
    _, b = _single(seed=5)
    both = confidence_intervals(y, [a, b])
    counts = resample_counts(y)
    mean_acc = (bootstrap_metrics(y, a, counts)["accuracy"] + bootstrap_metrics(y, b, counts)["accuracy"]) / 2
    assert both["accuracy"] == pytest.approx(list(np.percentile(mean_acc, [2.5, 97.5])))


def test_undefined_metric_has_no_interval():
    y = np.zeros(20, dtype=np.int64)
    proba = np.tile([0.7, 0.3], (20, 1))
    ci = confidence_intervals(y, proba)
    assert ci["auroc"] == [None, None]
    assert ci["accuracy"] == [1.0, 1.0]


def _metric_cells(node, path=()):
    """Every {mean, std, values} entry under ``node`` with its path."""
    if isinstance(node, dict):
        if {"mean", "std", "values"} <= set(node):
            yield path, node
        else:
            for key, value in node.items():
                yield from _metric_cells(value, (*path, str(key)))


@pytest.mark.parametrize("multilabel", [0, 3], ids=["single-label", "multi-label"])
def test_every_test_metric_of_every_probe_has_an_interval(tmp_path, multilabel):
    from encoderzoo.probe_job import run_probes

    from .datasets_fixtures import write_npz

    data = write_npz(tmp_path / "d.npz", sizes=(60, 30, 40), shape=(28, 28), multilabel=multilabel, seed=2)
    results = run_probes(
        "pixels",
        f"npz:{data}",
        probes=["knn", "linear", "fewshot", "curation"],
        shots=(1, 5),
        seeds=2,
        fractions=(0.5,),
        device="cpu",
        progress=False,
    )
    # the probes' own test metrics; calibration and conformal entries (issue 19) are summaries of their own
    cells = [
        (path, cell)
        for path, cell in _metric_cells(results["probes"])
        if path[-1] in ("accuracy", "balanced_accuracy", "auroc") and not {"calibration", "conformal"} & set(path)
    ]
    # knn (+ its medmnist+ preset), linear, curation curated + random, fewshot (single-label) 3 classes x 2 shots
    expected = 3 * (2 + 1 + 2) if multilabel else 3 * (2 + 1 + 2 + 3 * 2)
    assert len(cells) == expected, [p for p, _ in cells]
    for path, cell in cells:
        low, high = cell["ci95"]
        assert low is not None and low <= cell["mean"] <= high, (path, cell)
    assert results["protocol"]["confidence_intervals"]["resamples"] == 1000
