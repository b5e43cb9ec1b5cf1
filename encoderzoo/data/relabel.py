"""``RelabelledDataset``: any ``ImageDataset`` with new labels on a subset of its rows (no image is copied)."""

from __future__ import annotations

import hashlib

import numpy as np

from .base import ImageDataset, Task


class RelabelledDataset(ImageDataset):
    """``base``'s images at ``rows[split]`` (indices into the base split, increasing) with ``labels[split]``.

    Reads are passed to ``base`` one contiguous run of rows at a time; the fingerprint covers the base's, the
    rows and the new labels, so cached embeddings of the base are never served with other labels.
    """

    def __init__(
        self,
        base: ImageDataset,
        rows: dict[str, np.ndarray],
        labels: dict[str, np.ndarray],
        task: Task,
        label_names: list[str],
        extra: dict | None = None,
    ) -> None:
        self.base, self.rows, self._labels = base, rows, labels
        self.spec, self.task, self.label_names = base.spec, task, label_names
        self.splits = tuple(s for s in base.splits if s in rows and len(rows[s]))
        self.extra = {**getattr(base, "extra", {}), **(extra or {})}

    def num_samples(self, split: str) -> int:
        self.check_split(split)
        return len(self.rows[split])

    def labels(self, split: str) -> np.ndarray:
        self.check_split(split)
        return self._labels[split]

    def sample_ids(self, split: str) -> list[str]:
        self.check_split(split)
        ids = self.base.sample_ids(split)
        return [ids[i] for i in self.rows[split]]

    def texts(self, split: str) -> list[str] | None:
        self.check_split(split)
        texts = self.base.texts(split)
        return None if texts is None else [texts[i] for i in self.rows[split]]

    def read(self, split: str, start: int, stop: int) -> np.ndarray | list:
        self.check_split(split)
        wanted = self.rows[split][start:stop]
        if len(wanted) == 0:
            return []
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
        images: list = []
        for run in np.split(wanted, breaks):
            part = self.base.read(split, int(run[0]), int(run[-1]) + 1)
            images.extend(list(part))
        shapes = {(im.shape, im.dtype) for im in images if im is not None}
        if all(im is not None for im in images) and len(shapes) == 1:
            return np.stack(images)
        return images

    def fingerprint(self, split: str) -> str:
        digest = hashlib.sha256(f"{self.base.fingerprint(split)}|{self.label_names}|{self.task}".encode())
        digest.update(np.ascontiguousarray(self.rows[split], dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(np.nan_to_num(self._labels[split], nan=-7.0)).tobytes())
        return digest.hexdigest()

    def describe(self) -> dict:
        base = self.base.describe()
        return {
            **base,
            **self.extra,
            "task": self.task,
            "label_names": self.label_names,
            "splits": {s: self.num_samples(s) for s in self.splits},
        }
