"""95% bootstrap intervals for the calibration and conformal metrics of the test split, on the resamples of
``bootstrap`` (same seed, same class-stratified draws as the accuracy and AUROC intervals).

Each metric is computed on every resample from per-row quantities weighted by how often the row was drawn, and
equals ``calibration.calibration_metrics`` / ``conformal.set_report`` on the materialized rows (tested):

- ECE and MCE (equal-width bins, whose edges do not depend on the sample), Brier and NLL: ``calibration_metrics``'
  conventions (top label for single-label tasks; per label and averaged over labels for multi-label ones).
- Conformal coverage, its gap to the target and the mean set size, for the sets calibrated once on validation
  (the calibration split is not resampled: the interval is over test images, like every other one).

Equal-mass ECE has no interval: its bin edges are quantiles of each resample's own confidences.
"""

from __future__ import annotations

import numpy as np

from .bootstrap import LEVEL, RESAMPLES, SEED, _count_blocks, _nanmean_rows, percentile_interval
from .calibration import EPS, bin_edges

CALIBRATION_METRICS = ("ece", "mce", "brier", "nll")
CONFORMAL_METRICS = ("coverage", "coverage_gap", "set_size")


def _per_label(
    counts: np.ndarray,
    confidence: np.ndarray,
    outcome: np.ndarray,
    known: np.ndarray,
    brier: np.ndarray,
    nll: np.ndarray,
    n_bins: int,
) -> dict[str, np.ndarray]:
    """Each metric per resample and label ``(R, L)`` from ``(N, L)`` row quantities (``known``: 1/0 weights);
    NaN for a label none of whose known rows was drawn. Two matrix products cover every label and bin."""
    n, labels = confidence.shape
    index = np.clip(np.searchsorted(bin_edges(confidence, n_bins, False), confidence, side="right") - 1, 0, n_bins - 1)
    onehot = (np.eye(n_bins)[index] * known[..., None]).reshape(n, labels * n_bins)
    gap = (outcome - confidence) * known
    weight = (counts @ onehot).reshape(-1, labels, n_bins)
    total = np.abs((counts @ (onehot * np.repeat(gap, n_bins, axis=1))).reshape(-1, labels, n_bins))
    drawn = weight.sum(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_bin = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), -np.inf)
        out = {
            "ece": total.sum(2) / drawn,
            "mce": per_bin.max(2),
            "brier": counts @ (brier * known) / drawn,
            "nll": counts @ (nll * known) / drawn,
        }
    return {m: np.where(drawn > 0, v, np.nan) for m, v in out.items()}


def bootstrap_calibration(y_true: np.ndarray, proba: np.ndarray, counts: np.ndarray, n_bins: int = 15) -> dict:
    """``{metric: (R,)}`` for ``CALIBRATION_METRICS`` on every resample (rows of ``counts``)."""
    y_true, proba = np.asarray(y_true), np.asarray(proba, dtype=np.float64)
    if y_true.ndim == 2:  # each label a binary problem on its known rows, then the mean over labels
        known = ~np.isnan(y_true)
        keep = known.any(0)  # labels never known are left out, as calibration_metrics does
        y, p, known = np.nan_to_num(y_true[:, keep]), proba[:, keep], known[:, keep].astype(np.float64)
        clipped = np.clip(p, EPS, 1 - EPS)
        nll = -(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))
        per_label = _per_label(counts, p, y, known, (p - y) ** 2, nll, n_bins)
        return {m: _nanmean_rows(v.T) for m, v in per_label.items()}
    y = y_true.astype(np.int64)
    k = proba.shape[1]
    correct = (proba.argmax(1) == y).astype(np.float64)
    brier = ((proba - np.eye(k)[y]) ** 2).sum(1) / (2.0 if k == 2 else 1.0)
    nll = -np.log(np.clip(proba[np.arange(len(y)), y], EPS, 1 - EPS))
    columns = [a[:, None] for a in (proba.max(1), correct, np.ones(len(y)), brier, nll)]
    return {m: v[:, 0] for m, v in _per_label(counts, *columns, n_bins).items()}


def bootstrap_conformal(covered: np.ndarray, sizes: np.ndarray, target: float, counts: np.ndarray) -> dict:
    """``{metric: (R,)}`` for ``CONFORMAL_METRICS`` from ``conformal.covered_and_sizes`` output (multi-label:
    per label over its known rows, then averaged over labels, as ``multilabel_sets`` reports)."""
    covered, sizes = np.asarray(covered, np.float64), np.asarray(sizes, np.float64)
    if covered.ndim == 1:
        covered, sizes = covered[:, None], sizes[:, None]
    keep = np.isfinite(covered).any(0)
    covered, sizes = covered[:, keep], sizes[:, keep]
    known = np.isfinite(covered).astype(np.float64)
    drawn = counts @ known
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(drawn > 0, counts @ np.nan_to_num(covered) / drawn, np.nan)
        size = np.where(drawn > 0, counts @ np.nan_to_num(sizes) / drawn, np.nan)
    coverage, size = _nanmean_rows(coverage.T), _nanmean_rows(size.T)
    return {"coverage": coverage, "coverage_gap": np.abs(coverage - target), "set_size": size}


def trust_intervals(
    y_test: np.ndarray,
    calibrations: dict[str, np.ndarray],
    conformal: tuple[np.ndarray, np.ndarray, float] | None,
    *,
    n_bins: int = 15,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, dict[str, list[float | None]]]:
    """``{"calibration": {metric: [low, high]}, "temperature_scaled": ..., "conformal": ...}``: ``calibrations``
    maps an entry name to the test probabilities it was computed from; ``conformal`` is ``(covered, sizes,
    target)`` or ``None``."""
    collected: dict[str, dict[str, list[np.ndarray]]] = {}
    for counts in _count_blocks(np.asarray(y_test), resamples, seed):
        for name, proba in calibrations.items():
            for m, v in bootstrap_calibration(y_test, proba, counts, n_bins).items():
                collected.setdefault(name, {}).setdefault(m, []).append(v)
        if conformal is not None:
            for m, v in bootstrap_conformal(*conformal, counts).items():
                collected.setdefault("conformal", {}).setdefault(m, []).append(v)
    return {
        name: {m: percentile_interval(np.concatenate(blocks), level) for m, blocks in metrics.items()}
        for name, metrics in collected.items()
    }
