"""Calibration of predicted probabilities: ECE (equal-width and equal-mass bins), MCE, Brier, NLL, and
temperature scaling fitted on a validation split.

Conventions (checked against netcal and scikit-learn in ``tests/test_calibration.py``):

- Single-label tasks (binary included), ``proba`` ``(N, K)``: *top-label* calibration. The confidence of a
  sample is its largest probability, "correct" is whether that class is the true one (the first of tied
  maxima, as ``argmax``).
- Multi-label tasks, ``y_true`` ``(N, L)`` with NaN for unknown (masked out), ``proba`` ``(N, L)``: each label is
  a binary problem calibrated on the probability that the label is present; the reported value is the mean over
  labels (labels with no known sample are left out and named), and each label's value is kept in ``per_label``.
- Bins cover ``[0, 1]``: ``n_bins`` equal-width intervals, or equal-mass intervals whose inner edges are the
  confidence quantiles (first edge 0, last 1). An interval holds ``edge_i <= c < edge_{i+1}``, the last one
  also ``c = 1``. ECE is the sample-weighted mean of ``|accuracy - confidence|`` over bins; MCE its maximum over
  non-empty bins.
- Brier: ``mean_i sum_k (p_ik - [y_i = k])^2`` for multi-class; for two classes half of that, which is the usual
  binary ``mean (p_1 - y)^2`` (scikit-learn's ``brier_score_loss`` convention); multi-label: the binary Brier per
  label. NLL: ``-mean log p(true)`` with probabilities clipped to ``[eps, 1 - eps]`` (eps of float32: the
  probes emit float32, and a probability that rounds to 0 would make the NLL infinite).

Temperature scaling (Guo et al. 2017) divides the logits by one scalar ``T > 0`` fitted by minimizing the NLL on
validation. The probes give probabilities, so the logits are recovered as ``log p`` (single-label: softmax of
``log p / T`` is ``p^(1/T)`` renormalized, zeros staying zero) or ``log(p / (1 - p))`` per label (multi-label).
Any ``T > 0`` keeps each sample's ranking of classes, so accuracy cannot change; for binary and multi-label tasks
it is a monotone map of each score, so AUROC cannot change either. One-vs-rest AUROC of a multi-class task *can*
change: ``p^(1/T)`` renormalized is monotone within a sample, not across samples.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from .metrics import evaluate

EPS = float(np.finfo(np.float32).eps)
LOG_T_BOUNDS = (float(np.log(1e-2)), float(np.log(1e2)))
BINNED = ("ece", "ece_equal_mass", "mce")


def bin_edges(confidence: np.ndarray, n_bins: int, equal_mass: bool) -> np.ndarray:
    """``n_bins + 1`` edges over ``[0, 1]``: equal width, or confidence quantiles with the ends pinned to 0 and 1."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    if equal_mass:
        edges = np.quantile(confidence, edges)
        edges[0], edges[-1] = 0.0, 1.0
    return edges


def binned_errors(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15, equal_mass: bool = False) -> dict:
    """ECE and MCE of ``confidence`` against the 0/1 outcomes ``correct``, with the per-bin table for plots.

    Returns ``ece``, ``mce`` and ``bins``: a list of ``{lower, upper, count, confidence, accuracy}`` per non-empty
    bin.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.ndim != 1 or confidence.shape != correct.shape or len(confidence) == 0:
        raise ValueError("confidence and correct must be 1D arrays of the same non-zero length")
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = bin_edges(confidence, n_bins, equal_mass)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    mean_conf = np.bincount(index, weights=confidence, minlength=n_bins)
    mean_acc = np.bincount(index, weights=correct, minlength=n_bins)
    filled = counts > 0
    mean_conf[filled] /= counts[filled]
    mean_acc[filled] /= counts[filled]
    gap = np.abs(mean_acc - mean_conf)
    return {
        "ece": float((gap * counts).sum() / counts.sum()),
        "mce": float(gap[filled].max()),
        "bins": [
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": int(counts[b]),
                "confidence": float(mean_conf[b]),
                "accuracy": float(mean_acc[b]),
            }
            for b in np.flatnonzero(filled)
        ],
    }


def _binary_scores(y: np.ndarray, p: np.ndarray, n_bins: int) -> dict:
    """Metrics of one binary problem, ``p`` the probability of the positive outcome ``y`` (0/1)."""
    width, mass = binned_errors(p, y, n_bins), binned_errors(p, y, n_bins, equal_mass=True)
    clipped = np.clip(p, EPS, 1 - EPS)
    return {
        "ece": width["ece"],
        "ece_equal_mass": mass["ece"],
        "mce": width["mce"],
        "brier": float(np.mean((p - y) ** 2)),
        "nll": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))),
    }


def calibration_metrics(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15, label_names=None) -> dict:
    """ECE (equal width and equal mass), MCE, Brier and NLL of ``proba`` (see the module docstring)."""
    y_true, proba = _check(y_true, proba)
    if y_true.ndim == 2:
        per_label: dict[str, dict] = {}
        skipped = []
        for j in range(y_true.shape[1]):
            known = ~np.isnan(y_true[:, j])
            name = label_names[j] if label_names and j < len(label_names) else str(j)
            if not known.any():
                skipped.append(name)
                continue
            per_label[name] = _binary_scores(y_true[known, j], proba[known, j], n_bins)
        if not per_label:
            raise ValueError("no label has a known value: nothing to calibrate")
        keys = ("ece", "ece_equal_mass", "mce", "brier", "nll")
        return {
            **{k: float(np.mean([m[k] for m in per_label.values()])) for k in keys},
            "per_label": per_label,
            "labels_skipped": skipped,
        }
    y = y_true.astype(np.int64)
    k = proba.shape[1]
    confidence, predicted = proba.max(1), proba.argmax(1)
    correct = (predicted == y).astype(np.float64)
    width, mass = binned_errors(confidence, correct, n_bins), binned_errors(confidence, correct, n_bins, True)
    onehot = np.eye(k)[y]
    brier = float(np.mean(((proba - onehot) ** 2).sum(1)))
    return {
        "ece": width["ece"],
        "ece_equal_mass": mass["ece"],
        "mce": width["mce"],
        "brier": brier / 2 if k == 2 else brier,
        "nll": float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], EPS, 1 - EPS)))),
    }


def reliability(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> dict:
    """Equal-width bins for a reliability diagram: top label (single-label) or all known labels pooled
    (multi-label)."""
    y_true, proba = _check(y_true, proba)
    if y_true.ndim == 2:
        known = ~np.isnan(y_true)
        return binned_errors(proba[known], y_true[known], n_bins)
    correct = proba.argmax(1) == y_true.astype(np.int64)
    return binned_errors(proba.max(1), correct, n_bins)


def scale(proba: np.ndarray, temperature: float, multilabel: bool) -> np.ndarray:
    """Probabilities after dividing their logits by ``temperature`` (float64)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    p = np.asarray(proba, dtype=np.float64)
    with np.errstate(divide="ignore"):
        if multilabel:
            logit = np.log(p) - np.log1p(-p)  # +-inf at 1 and 0 stay there
            return 1.0 / (1.0 + np.exp(-logit / temperature))
        z = np.log(p) / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _nll(y_true: np.ndarray, proba: np.ndarray, multilabel: bool) -> float:
    p = np.clip(proba, EPS, 1 - EPS)
    if multilabel:
        known = ~np.isnan(y_true)
        y = y_true[known]
        return float(-np.mean(y * np.log(p[known]) + (1 - y) * np.log1p(-p[known])))
    return float(-np.mean(np.log(p[np.arange(len(y_true)), y_true.astype(np.int64)])))


def fit_temperature(y_val: np.ndarray, proba_val: np.ndarray) -> tuple[float, bool]:
    """The ``T`` minimizing the validation NLL of ``scale(proba_val, T)`` (bounded search over ``log T`` in
    ``[log 0.01, log 100]``); returns ``(T, at_bound)``, ``at_bound`` when the optimum sits on a bound."""
    y_val, proba_val = _check(y_val, proba_val)
    multilabel = y_val.ndim == 2
    found = minimize_scalar(
        lambda log_t: _nll(y_val, scale(proba_val, float(np.exp(log_t)), multilabel), multilabel),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    log_t = float(found.x)
    at_bound = min(abs(log_t - b) for b in LOG_T_BOUNDS) < 1e-3
    return float(np.exp(log_t)), at_bound


def temperature_scaling_report(
    y_val: np.ndarray,
    proba_val: np.ndarray,
    y_test: np.ndarray,
    proba_test: np.ndarray,
    n_bins: int = 15,
    label_names=None,
) -> dict:
    """Calibration on test before and after temperature scaling fitted on val.

    Returns the metrics before at the top level, ``temperature_scaled`` with the temperature and the metrics
    after, plus the accuracy and AUROC after scaling next to those before (see the module docstring for when
    they may differ).
    """
    y_test, proba_test = _check(y_test, proba_test)
    before = calibration_metrics(y_test, proba_test, n_bins, label_names)
    temperature, at_bound = fit_temperature(y_val, proba_val)
    scaled = scale(proba_test, temperature, y_test.ndim == 2)
    after = calibration_metrics(y_test, scaled, n_bins, label_names)
    quality_before, quality_after = evaluate(y_test, proba_test), evaluate(y_test, scaled)
    return {
        "n_bins": n_bins,
        **before,
        "temperature_scaled": {
            "temperature": temperature,
            "temperature_at_bound": at_bound,
            **after,
            "accuracy_before": quality_before["accuracy"],
            "accuracy_after": quality_after["accuracy"],
            "auroc_before": quality_before["auroc"],
            "auroc_after": quality_after["auroc"],
        },
    }


def _check(y_true, proba) -> tuple[np.ndarray, np.ndarray]:
    y_true, proba = np.asarray(y_true), np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or len(proba) == 0:
        raise ValueError(f"proba must be (N, K) with N > 0, got shape {proba.shape}")
    if len(y_true) != len(proba):
        raise ValueError(f"{len(y_true)} labels but {len(proba)} predictions")
    if y_true.ndim == 2 and y_true.shape != proba.shape:
        raise ValueError(f"multi-label y_true {y_true.shape} and proba {proba.shape} must have the same shape")
    if not np.isfinite(proba).all() or proba.min() < 0 or proba.max() > 1:
        raise ValueError("proba must hold finite probabilities in [0, 1]")
    if y_true.ndim == 1:
        y_true = y_true.astype(np.int64)
        if y_true.min() < 0 or y_true.max() >= proba.shape[1]:
            raise ValueError(f"labels must be in 0..{proba.shape[1] - 1} to match {proba.shape[1]} columns")
    return y_true, proba
