"""``predictions.npz``: every scored split of every probe, so any figure of results.json can be recomputed.

Keys are ``<probe>/<split>/<field>`` with ``field`` one of

- ``ids``: the sample ids (unicode strings, in the split's row order);
- ``labels``: the true labels as ``proba``'s columns read them (class index ``(N,)`` int64; multi-label
  ``(N, L)`` float32 with NaN unknown);
- ``proba``: the predicted probabilities, float32 ``(N, K)``.

``<probe>`` is the results.json path of the probe (``knn``, ``linear``, ``fewshot/linear/5-shot/seed0``,
``robustness/linear/gaussian_noise/3``...). Read it with ``numpy.load`` (no pickle needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write

FIELDS = ("ids", "labels", "proba")


class Predictions:
    """Collects the predictions of a probe run and writes them atomically as one ``.npz``."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, probe: str, split: str, ids, labels, proba) -> None:
        ids, labels, proba = np.asarray(list(ids), dtype=str), np.asarray(labels), np.asarray(proba)
        if not (len(ids) == len(labels) == len(proba)):
            raise ValueError(f"{probe}/{split}: {len(ids)} ids, {len(labels)} labels and {len(proba)} predictions")
        key = f"{probe}/{split}"
        if f"{key}/proba" in self.arrays:
            raise ValueError(f"predictions for {key} were already recorded")
        self.arrays[f"{key}/ids"] = ids
        self.arrays[f"{key}/labels"] = labels.astype(np.float32 if labels.ndim == 2 else np.int64)
        self.arrays[f"{key}/proba"] = proba.astype(np.float32)

    def keys(self) -> list[str]:
        """``<probe>/<split>`` of everything recorded, in order."""
        return [k[: -len("/proba")] for k in self.arrays if k.endswith("/proba")]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Predictions:
        """A store holding the arrays of a saved ``predictions.npz``."""
        store = cls()
        with np.load(path) as saved:
            store.arrays = {k: saved[k] for k in saved.files}
        return store

    def save(self, path: str | os.PathLike[str]) -> Path:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to a path
                np.savez(fh, **self.arrays)

        return atomic_write(Path(path), write)
