"""``SubsetDataset``: a seeded, class-stratified subset of some splits of a dataset (for quick runs).

Rows keep their original order; each class keeps its share (rounded, at least one row of every class present
when the budget allows); multi-label splits are subsampled uniformly. The spec, fingerprint and description
name the subset, so embeddings of a subset never mix with those of the whole split in the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from .base import ImageDataset


def stratified_rows(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a class-stratified random subset of ``size`` rows (uniform for multi-label)."""
    n = len(labels)
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if labels.ndim == 2:
        return np.sort(rng.choice(n, size=size, replace=False))
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(np.floor(counts * size / n).astype(int), np.minimum(counts, 1))
    while quota.sum() > size:  # the at-least-one rule overshot: take back from the largest quotas
        quota[np.argmax(quota)] -= 1
    spare = size - quota.sum()
    remainder = counts * size / n - np.floor(counts * size / n)
    for i in np.argsort(-remainder, kind="stable")[:spare]:
        quota[i] += 1
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


class SubsetDataset(ImageDataset):
    """``base`` with the splits named in ``sizes`` cut to at most that many rows (others whole)."""

    def __init__(self, base: ImageDataset, sizes: Mapping[str, int], seed: int = 0) -> None:
        for split, size in sizes.items():
            base.check_split(split)
            if not isinstance(size, (int, np.integer)) or size < 1:
                raise ValueError(f"subset size for {split} must be a positive integer, got {size!r}")
        self.base, self.sizes, self.seed = base, dict(sizes), seed
        self.rows = {split: stratified_rows(base.labels(split), int(size), seed) for split, size in self.sizes.items()}
        self.task, self.label_names, self.splits = base.task, base.label_names, base.splits
        self.spec = f"{base.spec} (subset {self._describe_sizes()}, seed {seed})"

    def _describe_sizes(self) -> str:
        return ", ".join(f"{s} {len(r)}/{self.base.num_samples(s)}" for s, r in self.rows.items())

    def _index(self, split: str) -> np.ndarray | None:
        return self.rows.get(split)

    def num_samples(self, split: str) -> int:
        rows = self._index(split)
        return self.base.num_samples(split) if rows is None else len(rows)

    def labels(self, split: str) -> np.ndarray:
        rows = self._index(split)
        labels = self.base.labels(split)
        return labels if rows is None else labels[rows]

    def sample_ids(self, split: str) -> list[str]:
        rows = self._index(split)
        ids = self.base.sample_ids(split)
        return ids if rows is None else [ids[i] for i in rows]

    def read(self, split: str, start: int, stop: int):
        rows = self._index(split)
        if rows is None:
            return self.base.read(split, start, stop)
        images = [self.base.read(split, int(i), int(i) + 1)[0] for i in rows[start:stop]]
        shapes = {None if im is None else im.shape for im in images}
        return np.stack(images) if len(shapes) == 1 and None not in shapes else images

    def fingerprint(self, split: str) -> str:
        rows = self._index(split)
        base = self.base.fingerprint(split)
        if rows is None:
            return base
        return hashlib.sha256(f"{base}|rows:{hashlib.sha256(rows.tobytes()).hexdigest()}".encode()).hexdigest()

    def texts(self, split: str) -> list[str] | None:
        texts, rows = self.base.texts(split), self._index(split)
        return texts if texts is None or rows is None else [texts[i] for i in rows]

    def describe(self) -> dict:
        return {
            **self.base.describe(),
            "spec": self.spec,
            "splits": {s: self.num_samples(s) for s in self.splits},
            "subset": {
                "rows": {s: len(r) for s, r in self.rows.items()},
                "seed": self.seed,
                "stratified": "by class (uniform for multi-label)",
            },
        }
