"""Calibration and conformal reports of one probe's validation and test probabilities, in the results style.

``trust_report`` returns ``{"calibration": ..., "conformal": ...}`` for one fitted probe; ``summarize_leaves``
turns a list of such reports (one per seed) into the ``{mean, std, values}`` style of ``results.json``, and
``add_intervals`` gives its top-level calibration and conformal metrics their 95% bootstrap intervals over test
images (``ci95``, as every probe metric has).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .calibration import calibration_metrics, scale, temperature_scaling_report
from .conformal import conformal_report, covered_and_sizes
from .metrics import summarize
from .trust_bootstrap import trust_intervals


def trust_report(
    y_val: np.ndarray | None,
    proba_val: np.ndarray | None,
    y_test: np.ndarray,
    proba_test: np.ndarray,
    *,
    label_names: Sequence[str] | None = None,
    coverage: float = 0.9,
    scores: Sequence[str] = ("lac", "aps"),
    n_bins: int = 15,
    seed: int = 0,
) -> dict:
    """Calibration on test (before and after temperature scaling fitted on val) and split-conformal sets
    calibrated on val, scored on test. Without a validation split only the calibration before scaling is
    reported, and the conformal entry says why it is missing."""
    names = list(label_names) if label_names is not None else None
    if y_val is None or proba_val is None:
        return {
            "calibration": {
                "n_bins": n_bins,
                **calibration_metrics(y_test, proba_test, n_bins, names),
                "temperature_scaled": {"skipped": "no validation split to fit the temperature on"},
            },
            "conformal": {"skipped": "no validation split to calibrate the sets on"},
        }
    return {
        "calibration": temperature_scaling_report(y_val, proba_val, y_test, proba_test, n_bins, names),
        "conformal": conformal_report(
            y_val, proba_val, y_test, proba_test, coverage=coverage, scores=scores, seed=seed, label_names=names
        ),
    }


SETTINGS = ("target", "lam")  # floats that are settings, not results: kept as they are


def summarize_leaves(runs: Sequence[dict]) -> dict:
    """Nested dicts of one structure -> the same structure with every float leaf as ``{mean, std, values}``
    over ``runs``; other leaves (counts, names, flags, ``SETTINGS``) are taken from the first run."""
    first = runs[0]
    out: dict = {}
    for key, value in first.items():
        if isinstance(value, dict):
            out[key] = summarize_leaves([r[key] for r in runs])
        elif isinstance(value, float) and key not in SETTINGS:
            out[key] = summarize([r[key] for r in runs])
        else:
            out[key] = value
    return out


def add_intervals(
    summary: dict,
    y_val: np.ndarray | None,
    proba_val: np.ndarray | None,
    y_test: np.ndarray,
    proba_test: np.ndarray,
    *,
    coverage: float = 0.9,
    scores: Sequence[str] = ("lac", "aps"),
    n_bins: int = 15,
    seed: int = 0,
) -> dict:
    """``summary`` (``summarize_leaves`` of one ``trust_report`` with the same arguments) with ``ci95`` on the
    calibration metrics before and after temperature scaling and on the conformal coverage, gap and set size."""
    y_test = np.asarray(y_test)
    calibration, conformal = summary["calibration"], summary["conformal"]
    probas = {"calibration": np.asarray(proba_test, np.float64)}
    scaled = calibration.get("temperature_scaled", {})
    if "temperature" in scaled:
        probas["temperature_scaled"] = scale(proba_test, scaled["temperature"]["mean"], y_test.ndim == 2)
    rows = None
    if "skipped" not in conformal:
        covered, sizes = covered_and_sizes(
            y_val, proba_val, y_test, proba_test, coverage=coverage, score=scores[0], seed=seed
        )
        rows = (covered, sizes, coverage)
    intervals = trust_intervals(y_test, probas, rows, n_bins=n_bins)
    entries = {"calibration": calibration, "temperature_scaled": scaled, "conformal": conformal}
    for name, metrics in intervals.items():
        for metric, ci in metrics.items():
            entries[name][metric] = {**entries[name][metric], "ci95": ci}
    return summary
