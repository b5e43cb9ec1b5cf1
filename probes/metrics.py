"""Accuracy, balanced accuracy and macro AUROC, with explicit handling of classes absent from a split.

Single-label tasks: ``y_true`` ``(N,)`` ints, ``proba`` ``(N, K)``. Multi-label: ``y_true`` ``(N, L)`` with
1/0 and NaN for unknown (masked out), ``proba`` ``(N, L)`` per-label probabilities.

A class (or label) that has no positive or no negative example in ``y_true`` has no AUROC: it is left out of
the macro average and named in ``auroc_skipped``, never counted as 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRICS = ("accuracy", "balanced_accuracy", "auroc")
"""The test metrics every probe reports (``evaluate`` computes them), in table order."""


def binary_auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged. NaN if one class only."""
    y_true = np.asarray(y_true).astype(bool)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(average, counts)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def evaluate(y_true: np.ndarray, proba: np.ndarray, label_names: list[str] | None = None) -> dict:
    """All metrics for one set of predictions; the task is read off the label shape."""
    y_true, proba = np.asarray(y_true), np.asarray(proba, dtype=np.float64)
    if len(y_true) != len(proba):
        raise ValueError(f"{len(y_true)} labels but {len(proba)} predictions")
    if y_true.ndim == 2:
        return _multilabel(y_true, proba, label_names)
    return _single_label(y_true.astype(np.int64), proba, label_names)


def summarize(values: Sequence[float]) -> dict:
    """``{mean, std, values}`` of a list of numbers (the results style for seeded runs)."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(np.mean(arr)), "std": float(np.std(arr)), "values": [float(v) for v in arr]}


def _name(i: int, names: list[str] | None) -> str:
    return names[i] if names and i < len(names) else str(i)


def _single_label(y_true: np.ndarray, proba: np.ndarray, names: list[str] | None) -> dict:
    k = proba.shape[1]
    if y_true.min(initial=0) < 0 or y_true.max(initial=0) >= k:
        raise ValueError(f"labels must be in 0..{k - 1} to match {k} probability columns")
    pred = proba.argmax(1)
    present = np.unique(y_true)
    recalls = [float((pred[y_true == c] == c).mean()) for c in present]
    if k == 2:
        aucs = {1: binary_auroc(y_true == 1, proba[:, 1])}
    else:
        aucs = {c: binary_auroc(y_true == c, proba[:, c]) for c in range(k)}
    valid = [v for v in aucs.values() if not np.isnan(v)]
    return {
        "accuracy": float((pred == y_true).mean()),
        "balanced_accuracy": float(np.mean(recalls)),
        "auroc": float(np.mean(valid)) if valid else float("nan"),
        "auroc_skipped": [_name(c, names) for c, v in aucs.items() if np.isnan(v)],
        "classes_absent": [_name(c, names) for c in range(k) if c not in present],
    }


def _multilabel(y_true: np.ndarray, proba: np.ndarray, names: list[str] | None) -> dict:
    known = ~np.isnan(y_true)
    aucs, accs, bals = {}, [], []
    for j in range(y_true.shape[1]):
        mask = known[:, j]
        y, p = y_true[mask, j].astype(bool), proba[mask, j]
        aucs[j] = binary_auroc(y, p)
        if mask.any():
            hit = (p >= 0.5) == y
            accs.append(hit.mean())
            bals.append(np.mean([hit[y == v].mean() for v in (True, False) if (y == v).any()]))
    valid = [v for v in aucs.values() if not np.isnan(v)]
    return {
        "accuracy": float(np.mean(accs)) if accs else float("nan"),
        "balanced_accuracy": float(np.mean(bals)) if bals else float("nan"),
        "auroc": float(np.mean(valid)) if valid else float("nan"),
        "auroc_per_label": {_name(j, names): v for j, v in aucs.items()},
        "auroc_skipped": [_name(j, names) for j, v in aucs.items() if np.isnan(v)],
        "classes_absent": [_name(j, names) for j in range(y_true.shape[1]) if not (y_true[:, j] == 1).any()],
    }
