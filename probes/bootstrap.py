"""Bootstrap confidence intervals over test images for accuracy, balanced accuracy and macro AUROC.

Protocol (``PROTOCOL``, recorded in results.json): 1,000 resamples of the test split, seeded, drawn with
replacement *within each class* for single-label tasks (so every resample keeps the split's class counts and
every class's AUROC stays defined), and over whole rows for multi-label tasks (rows have no single class);
the interval is the 2.5th and 97.5th percentile of the resampled metric (percentile bootstrap).

A resample is a vector of counts (how often each test row is drawn), so every metric is computed on the
weighted original rows instead of a copied array: AUROC is the count-weighted Mann-Whitney statistic over one
sort of the scores (ties count one half, as in ``metrics.binary_auroc``). On a resample each metric equals
``metrics.evaluate`` on the materialized rows (tested). Several prediction sets of the same test rows (the seeds
of a few-shot probe) share every resample, and the interval is then that of their mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
BLOCK = 100
METRICS = ("accuracy", "balanced_accuracy", "auroc")
PROTOCOL = {
    "resamples": RESAMPLES,
    "seed": SEED,
    "level": LEVEL,
    "method": "percentile bootstrap over test images",
    "stratified": "by class (single-label); whole rows (multi-label)",
    "seeded_probes": "interval of the mean over seeds (every seed scored on the same resamples)",
}


def resample_counts(y_true: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``(resamples, N)`` draw counts: per class for single-label ``(N,)`` labels, over rows for ``(N, L)``."""
    return np.concatenate(list(_count_blocks(y_true, resamples, seed)))


def _count_blocks(y_true: np.ndarray, resamples: int, seed: int, block: int = BLOCK):
    """``resample_counts`` in blocks of ``block`` resamples (memory stays ``block x N``), same stream."""
    y_true = np.asarray(y_true)
    n = len(y_true)
    rng = np.random.default_rng(seed)
    strata = [np.arange(n)] if y_true.ndim == 2 else [np.flatnonzero(y_true == c) for c in np.unique(y_true)]
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        counts = np.zeros((size, n), dtype=np.float64)
        for members in strata:
            k = len(members)
            counts[:, members] = rng.multinomial(k, np.full(k, 1.0 / k), size=size)
        yield counts


def bootstrap_metrics(y_true: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric of ``metrics.evaluate`` on every resample (rows of ``counts``): ``{metric: (R,)}``."""
    y_true, proba = np.asarray(y_true), np.asarray(proba, dtype=np.float64)
    if y_true.ndim == 2:
        return _multilabel(y_true, proba, counts)
    return _single_label(y_true.astype(np.int64), proba, counts)


def confidence_intervals(
    y_true: np.ndarray,
    probas: np.ndarray | Sequence[np.ndarray],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, list[float | None]]:
    """``{metric: [low, high]}``: the percentile interval of the metric (the mean over ``probas`` when several
    prediction sets of the same rows are given); ``None`` bounds where the metric is undefined."""
    sets = [probas] if isinstance(probas, np.ndarray) else list(probas)
    blocks = [[bootstrap_metrics(y_true, p, c) for p in sets] for c in _count_blocks(y_true, resamples, seed)]
    out: dict[str, list[float | None]] = {}
    for m in METRICS:
        stacked = np.concatenate([np.stack([r[m] for r in per_set]) for per_set in blocks], axis=1)
        out[m] = percentile_interval(_nanmean_rows(stacked), level)
    return out


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float | None]:
    """``[low, high]``: the central ``level`` percentile interval of the finite resampled ``values``
    (``[None, None]`` when none is finite)."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return [None, None]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return [float(low), float(high)]


def add_intervals(summary: Mapping[str, dict], y_true: np.ndarray, probas: np.ndarray | Sequence[np.ndarray]) -> dict:
    """``summary`` (``{metric: {mean, std, values}}``) with ``ci95: [low, high]`` added to each metric."""
    intervals = confidence_intervals(y_true, probas)
    out = dict(summary)
    for m in METRICS:
        if m in out:
            out[m] = {**out[m], "ci95": intervals[m]}
    return out


def weighted_auroc(positive: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC of ``scores`` for ``positive`` rows with each row counted ``counts[r, i]`` times.

    ``(R,)``; NaN for a resample without positives or negatives.
    """
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])  # first row of each tie group
    w = counts[:, order]
    pos = positive[order]
    pos_w, neg_w = w * pos, w * ~pos
    pos_g, neg_g = np.add.reduceat(pos_w, starts, axis=1), np.add.reduceat(neg_w, starts, axis=1)
    below = np.cumsum(neg_g, axis=1) - neg_g
    n_pos, n_neg = pos_g.sum(1), neg_g.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos_g * (below + 0.5 * neg_g)).sum(1) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _single_label(y: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    k = proba.shape[1]
    correct = (proba.argmax(1) == y).astype(np.float64)
    drawn = counts.sum(1)
    accuracy = counts @ correct / drawn
    recalls = []
    for c in np.unique(y):
        rows = y == c
        weight = counts[:, rows].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = counts[:, rows] @ correct[rows] / weight
        recall[weight == 0] = np.nan
        recalls.append(recall)
    with np.errstate(invalid="ignore"):
        balanced = np.nanmean(np.stack(recalls), axis=0)
    columns = [1] if k == 2 else list(range(k))
    aucs = np.stack([weighted_auroc(y == c, proba[:, c], counts) for c in columns])
    return {"accuracy": accuracy, "balanced_accuracy": balanced, "auroc": _nanmean_rows(aucs)}


def _multilabel(y: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    known = ~np.isnan(y)
    accs, bals, aucs = [], [], []
    for j in range(y.shape[1]):
        rows = known[:, j]
        truth, scores, w = y[rows, j].astype(bool), proba[rows, j], counts[:, rows]
        hit = ((scores >= 0.5) == truth).astype(np.float64)
        weight = w.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = w @ hit / weight
            parts = [w[:, truth == v] @ hit[truth == v] / w[:, truth == v].sum(1) for v in (True, False)]
        acc[weight == 0] = np.nan
        accs.append(acc)
        bals.append(_nanmean_rows(np.stack(parts)))
        aucs.append(weighted_auroc(truth, scores, w))
    return {
        "accuracy": _nanmean_rows(np.stack(accs)),
        "balanced_accuracy": _nanmean_rows(np.stack(bals)),
        "auroc": _nanmean_rows(np.stack(aucs)),
    }


def _nanmean_rows(stack: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where every entry is NaN (no warning)."""
    finite = np.isfinite(stack)
    total = np.where(finite, stack, 0.0).sum(0)
    n = finite.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)
