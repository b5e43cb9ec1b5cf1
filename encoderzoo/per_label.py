"""Per-finding results for multi-label tasks: AUROC per label with the positives and negatives it was scored on.

Every probe's result dict gets ``per_label(y_test, metrics)`` merged in (``auroc_per_label`` and
``test_label_counts``; the curation probe keeps ``auroc_per_label`` per budget and kind, over its seeds, and the
counts once); ``per_label_table`` prints them side by side (``encoderzoo probe --per-label``).
A label with no positive or no negative in test has no AUROC: ``null`` in ``results.json``, never 0.5.
"""

from __future__ import annotations

import math

import numpy as np

PROBE_COLUMNS = (("knn", "knn"), ("linear", "linear"), ("adapted", "adapted"), ("zeroshot", "zero-shot"))


def per_label(y_true: np.ndarray, metrics: dict) -> dict:
    """``{"auroc_per_label": {name: auroc | None}, "test_label_counts": {name: {positives, negatives, unknown}}}``
    for a multi-label ``y_true`` ``(N, L)`` (NaN unknown) and the ``evaluate`` metrics computed on it; ``{}``
    for single-label tasks."""
    y_true = np.asarray(y_true)
    if y_true.ndim != 2 or "auroc_per_label" not in metrics:
        return {}
    names = list(metrics["auroc_per_label"])
    if len(names) != y_true.shape[1]:
        raise ValueError(f"{len(names)} per-label AUROCs for {y_true.shape[1]} label columns")
    aurocs = {n: (None if math.isnan(v) else float(v)) for n, v in metrics["auroc_per_label"].items()}
    return {"auroc_per_label": aurocs, "test_label_counts": label_counts(y_true, names)}


def label_counts(y_true: np.ndarray, names: list[str]) -> dict:
    """Positives, negatives and unknowns (NaN) of each column of a multi-label ``(N, L)`` array."""
    return {
        n: {
            "positives": int((y_true[:, j] == 1).sum()),
            "negatives": int((y_true[:, j] == 0).sum()),
            "unknown": int(np.isnan(y_true[:, j]).sum()),
        }
        for j, n in enumerate(names)
    }


def per_label_table(results: dict) -> str:
    """Label x probe AUROC table, with each label's test positives and negatives, for stdout."""
    probes = results.get("probes", {})
    columns = [(key, title) for key, title in PROBE_COLUMNS if "auroc_per_label" in probes.get(key, {})]
    if not columns:
        return "per-label AUROC: none (the task is not multi-label)"
    counts = next(probes[k]["test_label_counts"] for k, _ in columns if "test_label_counts" in probes[k])
    rows = [("label", "positives", "negatives", *(title for _, title in columns))]
    for name, c in counts.items():
        cells = []
        for key, _ in columns:
            value = probes[key]["auroc_per_label"].get(name)
            cells.append("—" if value is None or math.isnan(value) else f"{value:.3f}")
        rows.append((name, str(c["positives"]), str(c["negatives"]), *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(["AUROC per label on test (— : no positive or no negative there)", *lines])
