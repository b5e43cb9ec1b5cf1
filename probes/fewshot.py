"""Few-shot evaluation: n labelled examples per class, several seeds, kNN / linear / prototype classifiers.

Each (shots, seed) episode samples ``shots`` training examples per class (all of a class if it has fewer,
recorded), fits each classifier, scores it once on the test split, and the results are reported as
``{mean, std, values}`` over seeds. Episodes are drawn from the training split only (seeded by the seed index);
the validation split only chooses the linear probe's C, when one is given (else C = 1).

The linear classifier works on L2-normalized features. Z-scoring with the statistics of a few shots (3 samples
for a 1-shot 3-class episode) amplifies whichever features those samples happen to agree on, and scored below
chance in a 1-shot trial on real embeddings; yet on other features it helps. So validation chooses, per episode,
between raw and z-scored (unit-norm) features along with C; without a validation split the features stay raw
and C = 1. On unit-norm features a strongly regularized logistic regression points each class's weights at its
centred class mean, the prototype classifier's rule, so the grid holds a prototype-like candidate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ._base import ProbeBase, as_features, as_labels, pick_device
from .bootstrap import add_intervals
from .knn import KNNProbe
from .linear import DEFAULT_C_GRID, LinearProbe
from .metrics import METRICS, evaluate, summarize
from .trust import summarize_leaves, trust_report

CLASSIFIERS = ("knn", "linear", "prototype")


class PrototypeProbe(ProbeBase):
    """Nearest class mean in cosine space; probabilities are a softmax of similarities / temperature."""

    def __init__(self, temperature: float = 0.07, device: str | None = "auto") -> None:
        self.temperature = temperature
        self.device = device

    def fit(self, X, y) -> PrototypeProbe:
        X, targets = self._validate_fit(X, y)
        if self.multilabel_:
            raise ValueError("PrototypeProbe is for single-label tasks")
        self.device_ = pick_device(self.device)
        x = torch.nn.functional.normalize(torch.from_numpy(X).to(self.device_), dim=1)
        t = torch.from_numpy(targets).to(self.device_)
        protos = torch.stack([x[t == c].mean(0) for c in range(len(self.classes_))])
        self.prototypes_ = torch.nn.functional.normalize(protos, dim=1)
        return self

    def predict_proba(self, X) -> np.ndarray:
        x = torch.nn.functional.normalize(torch.from_numpy(self._validate_predict(X)).to(self.device_), dim=1)
        return ((x @ self.prototypes_.T) / self.temperature).softmax(1).cpu().numpy()


def sample_shots(y: np.ndarray, shots: int, seed: int) -> tuple[np.ndarray, list]:
    """Indices of ``shots`` examples per class (sorted), and the classes that had fewer."""
    rng = np.random.default_rng(seed)
    chosen, short = [], []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) < shots:
            short.append(c.item() if hasattr(c, "item") else c)
        chosen.append(rng.choice(members, size=min(shots, len(members)), replace=False))
    return np.sort(np.concatenate(chosen)), short


def few_shot(
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    shots: Sequence[int] = (1, 5, 10),
    seeds: int = 5,
    classifiers: Sequence[str] = CLASSIFIERS,
    X_val=None,
    y_val=None,
    label_names=None,
    device: str | None = "auto",
    trust: dict | None = None,
    record=None,
) -> dict:
    """Run every (shots, seed) episode; returns ``{classifier: {shots: {metric: {mean, std, values}}}}``.

    ``trust``: keyword arguments of ``encoderzoo.probes.trust.trust_report`` (``coverage``, ``scores``,
    ``n_bins``): each episode's classifier is also scored for calibration and conformal sets (calibrated on the
    validation split, which is then required), summarized over seeds under ``calibration`` and ``conformal``.
    ``record(key, split, labels, proba)`` receives every scored split (``key``: ``fewshot/<clf>/<n>-shot/seed<s>``).
    """
    X_train, X_test = as_features(X_train), as_features(X_test, "X_test")
    y_train, y_test = as_labels(y_train, len(X_train)), as_labels(y_test, len(X_test))
    if y_train.ndim != 1:
        raise ValueError("few-shot episodes sample n examples per class: single-label tasks only")
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown:
        raise ValueError(f"unknown classifier(s) {unknown}; choose from {CLASSIFIERS}")
    if trust is not None and X_val is None:
        raise ValueError("few-shot calibration and conformal sets need a validation split: pass X_val and y_val")
    results: dict = {c: {} for c in classifiers}
    notes: dict = {}
    unit = [unit_rows(X) if X is not None else None for X in (X_train, X_test, X_val)]  # the linear classifier's
    for n in shots:
        per_classifier: dict = {c: [] for c in classifiers}
        trusted: dict = {c: [] for c in classifiers}
        probas: dict = {c: [] for c in classifiers}
        for seed in range(seeds):
            index, short = sample_shots(y_train, n, seed)
            if short:
                notes.setdefault(f"{n}-shot", f"classes with fewer than {n} examples used whole: {short}")
            for name in classifiers:
                probe = _make(name, n, len(index), device, X_val is not None)
                train, test = (unit[0], unit[1]) if name == "linear" else (X_train, X_test)
                args = (unit[2], y_val) if (name == "linear" and X_val is not None) else ()
                probe.fit(train[index], y_train[index], *args)
                proba, test_true = probe.predict_proba(test), probe.column_targets(y_test)
                probas[name].append(proba)
                per_classifier[name].append(evaluate(test_true, proba, label_names))
                if trust is not None or record is not None:
                    val_x = unit[2] if name == "linear" else X_val
                    val_proba = probe.predict_proba(val_x) if X_val is not None else None
                    val_true = probe.column_targets(y_val, split="val") if X_val is not None else None
                    key = f"fewshot/{name}/{n}-shot/seed{seed}"
                    if record is not None:
                        if val_proba is not None:
                            record(key, "val", val_true, val_proba)
                        record(key, "test", test_true, proba)
                    if trust is not None:
                        report = trust_report(val_true, val_proba, test_true, proba, label_names=label_names, **trust)
                        trusted[name].append(report)
        for name, runs in per_classifier.items():
            summary = {m: summarize([r[m] for r in runs]) for m in METRICS}
            results[name][n] = add_intervals(summary, y_test, probas[name])  # the interval of the mean over seeds
            if trusted[name]:
                results[name][n] |= summarize_leaves(trusted[name])
    return {"results": results, "shots": list(shots), "seeds": list(range(seeds)), "notes": notes}


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    X = as_features(X)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _make(name: str, shots: int, n_train: int, device, has_val: bool):
    if name == "knn":
        return KNNProbe(k=min(20, n_train), device=device)
    if name == "linear":
        if not has_val:
            return LinearProbe(C=1.0, standardize=False, device=device)
        return LinearProbe(C=DEFAULT_C_GRID, standardize="auto", device=device)
    return PrototypeProbe(device=device)
