"""Calibration and conformal reports of one probe's validation and test probabilities, in the results style.

``trust_report`` returns ``{"calibration": ..., "conformal": ...}`` for one fitted probe; ``summarize_leaves``
turns a list of such reports (one per seed) into the ``{mean, std, values}`` style of ``results.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .calibration import calibration_metrics, temperature_scaling_report
from .conformal import conformal_report
from .metrics import summarize


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
