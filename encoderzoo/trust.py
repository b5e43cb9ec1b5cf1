"""Calibration, conformal sets and saved predictions for every probe of a ``run_probes`` job.

``Trust`` holds the options (target coverage, conformal scores, bins) and, when asked, the ``Predictions``
store; each probe hands it the probabilities of its fitted classifier on val and test and gets back the
``calibration`` and ``conformal`` entries of its results (``{mean, std, values}`` leaves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .predictions import Predictions
from .probes.conformal import SCORES
from .probes.trust import add_intervals, summarize_leaves, trust_report


@dataclass
class Trust:
    """Args:
    coverage: target coverage of the conformal sets (``1 - alpha``).
    scores: conformal scores, the first reported at the top level (``lac``, ``aps``, ``raps``).
    n_bins: calibration bins.
    predictions: a store to record every scored split in (``None``: nothing is kept).
    """

    coverage: float = 0.9
    scores: Sequence[str] = ("lac", "aps")
    n_bins: int = 15
    predictions: Predictions | None = field(default=None)

    def __post_init__(self) -> None:
        if not 0.0 < self.coverage < 1.0:
            raise ValueError(f"coverage must be strictly between 0 and 1 (e.g. 0.9), got {self.coverage!r}")
        unknown = [s for s in self.scores if s not in SCORES]
        if unknown or not self.scores:
            raise ValueError(f"unknown conformal score(s) {unknown or list(self.scores)}; choose from {SCORES}")
        if not isinstance(self.n_bins, int) or self.n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer, got {self.n_bins!r}")

    def protocol(self) -> dict:
        return {
            "calibration": f"top-label (per label if multi-label), {self.n_bins} bins; temperature fit on val by NLL",
            "conformal": f"split conformal on val, target coverage {self.coverage}, scores {list(self.scores)}",
        }

    def record(self, probe: str, split: str, ids, labels, proba) -> None:
        """Keep one scored split's predictions when a store is attached."""
        if self.predictions is not None:
            self.predictions.add(probe, split, ids, labels, proba)

    def assess(
        self,
        probe: str,
        val: tuple | None,
        test: tuple,
        label_names: Sequence[str] | None,
    ) -> dict:
        """``val`` / ``test``: ``(ids, labels as proba's columns, proba)`` (``val`` may be ``None``). Records both
        and returns ``{"calibration": ..., "conformal": ...}`` in the results style."""
        if val is not None:
            self.record(probe, "val", *val)
        self.record(probe, "test", *test)
        y_val, proba_val = (val[1], val[2]) if val is not None else (None, None)
        y_test, proba_test = np.asarray(test[1]), test[2]
        options = {"coverage": self.coverage, "scores": self.scores, "n_bins": self.n_bins}
        report = trust_report(y_val, proba_val, y_test, proba_test, label_names=label_names, **options)
        return add_intervals(summarize_leaves([report]), y_val, proba_val, y_test, proba_test, **options)


def _mean(entry) -> str:
    return f"{entry['mean']:.3f}" if isinstance(entry, dict) and "mean" in entry else "-"


def trust_table(results: dict) -> str:
    """Probe x trust metric table for stdout: calibration before -> after temperature scaling, the headline
    conformal score's coverage and set size, and (with the robustness probe) mean accuracy/AUROC under
    corruption with the relative AUROC drop."""
    rows = [("probe", "ECE", "ECE (T)", "T", "Brier", "NLL", "coverage", "set size", "worst class", "robust acc/auroc")]
    probes = results["probes"]
    entries = [(name, probes[name]) for name in ("knn", "linear", "zeroshot", "adapted") if name in probes]
    for clf, by_shot in probes.get("fewshot", {}).get("results", {}).items():
        entries += [(f"{n}-shot {clf}", metrics) for n, metrics in by_shot.items()]
    for name, entry in entries:
        cal, conf, robust = entry.get("calibration"), entry.get("conformal", {}), entry.get("robustness")
        if cal is None:
            continue
        scaled = cal.get("temperature_scaled", {})
        rows.append(
            (
                name,
                _mean(cal["ece"]),
                _mean(scaled.get("ece")),
                _mean(scaled.get("temperature")),
                _mean(cal["brier"]),
                _mean(cal["nll"]),
                _mean(conf.get("coverage")),
                _mean(conf.get("set_size")),
                _mean(conf.get("worst_class_coverage")),
                f"{_mean(robust['robust_accuracy'])}/{_mean(robust['robust_auroc'])}" if robust else "",
            )
        )
    if len(rows) == 1:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    conformal = next((e["conformal"] for _, e in entries if "target" in e.get("conformal", {})), {})
    note = (
        "calibration on test (T: temperature fitted on val); conformal sets calibrated on val: "
        f"{conformal.get('score')}, target coverage {conformal.get('target')}"
    )
    return "\n".join([note, *lines])


def robustness_table(results: dict, probe: str = "linear") -> str:
    """Corruption x severity table of one probe's test accuracy (AUROC in brackets), with the clean reference."""
    entry = results["probes"].get(probe, {}).get("robustness")
    if not entry:
        return ""
    severities = [str(s) for s in results["probes"]["robustness"]["severities"]]
    rows = [(f"{probe} under corruption", *(f"severity {s}" for s in severities))]
    clean = entry["clean"]
    rows.append(("clean", f"{clean['accuracy']:.3f} ({clean['auroc']:.3f})", *[""] * (len(severities) - 1)))
    for name, by_severity in entry["corruptions"].items():
        cells = [
            f"{by_severity[s]['accuracy']['mean']:.3f} ({by_severity[s]['auroc']['mean']:.3f})" for s in severities
        ]
        rows.append((name, *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    drop = entry["relative_drop_auroc"]["mean"]
    return "\n".join(
        [
            *lines,
            f"mean over corruptions: accuracy {entry['robust_accuracy']['mean']:.3f}, "
            f"AUROC {entry['robust_auroc']['mean']:.3f}, relative AUROC drop from clean {drop:.1%}",
        ]
    )
