"""The dataset interface the embedding engine and the probes read."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..errors import DatasetFormatError

Task = Literal["binary", "multi-class", "multi-label"]


class ImageDataset(ABC):
    """A labelled image collection with named splits.

    Labels are ``(N,)`` int64 class indices for binary and multi-class tasks and ``(N, L)`` float32 for
    multi-label tasks (1 positive, 0 negative, NaN unknown where a policy keeps uncertainty).
    """

    spec: str
    """The dataset spec string it was opened from (``medmnist:bloodmnist@64``)."""
    task: Task
    label_names: list[str]
    splits: tuple[str, ...]

    @abstractmethod
    def num_samples(self, split: str) -> int: ...

    @abstractmethod
    def labels(self, split: str) -> np.ndarray: ...

    @abstractmethod
    def sample_ids(self, split: str) -> list[str]: ...

    @abstractmethod
    def read(self, split: str, start: int, stop: int) -> np.ndarray | list[np.ndarray]:
        """Images ``start:stop`` of ``split``: one ``(n, H, W[, C])`` array when all share a shape, else a list."""

    @abstractmethod
    def fingerprint(self, split: str) -> str:
        """Changes whenever the images or labels of ``split`` change (cache key)."""

    def texts(self, split: str) -> list[str] | None:
        """Free text per sample (a report or caption) where the dataset has one, else ``None``."""
        self.check_split(split)
        return None

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"{self.spec} has no split {split!r}; it has {list(self.splits)}")

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "task": self.task,
            "label_names": self.label_names,
            "splits": {s: self.num_samples(s) for s in self.splits},
        }


SPLIT_NAMES = ("train", "val", "test")
"""The split names the engine, the probes and ``adapt`` read; a dataset file naming another is refused."""


def check_single_labels(labels: np.ndarray, where: str) -> None:
    """Single-label class indices must be finite non-negative integers: NaN, -1 or 0.5 are refused, naming rows."""
    flat = np.asarray(labels).reshape(len(labels), -1)[:, 0] if np.ndim(labels) else np.asarray(labels)
    if flat.dtype.kind in "iu":
        bad = np.flatnonzero(flat < 0)
        rule = "negative"
    elif flat.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(flat) | (flat < 0) | (flat != np.floor(flat)))
        rule = "NaN, infinite, negative or not a whole number"
    elif flat.dtype.kind == "b":
        return
    else:
        raise DatasetFormatError(f"{where}: labels must be integers, got dtype {flat.dtype}")
    if len(bad):
        values = ", ".join(f"row {i}: {flat[i]!r}" for i in bad[:5])
        raise DatasetFormatError(
            f"{where}: {len(bad)} label(s) {rule} ({values}{', ...' if len(bad) > 5 else ''}); single-label classes "
            "are indices 0, 1, 2, ... (a missing label is not a class: drop the row)"
        )


def check_multi_labels(labels: np.ndarray, where: str) -> None:
    """Multi-label entries must be 0, 1 or NaN (unknown)."""
    values = np.asarray(labels, dtype=np.float64)
    bad = np.argwhere(~(np.isnan(values) | (values == 0) | (values == 1)))
    if len(bad):
        shown = ", ".join(f"row {r} column {c}: {values[r, c]!r}" for r, c in bad[:5])
        raise DatasetFormatError(f"{where}: multi-label entries must be 0, 1 or NaN (unknown); got {shown}")


def task_from_labels(labels: Sequence[np.ndarray]) -> Task:
    """binary / multi-class for one label per sample, multi-label for several columns."""
    first = np.asarray(labels[0])
    if first.ndim == 2 and first.shape[1] > 1:
        return "multi-label"
    classes = np.unique(np.concatenate([np.asarray(y).reshape(-1) for y in labels]))
    return "binary" if len(classes) <= 2 else "multi-class"


def normalize_labels(labels: np.ndarray, task: Task) -> np.ndarray:
    """``(N, 1)`` or ``(N,)`` -> ``(N,)`` int64 for single-label tasks; ``(N, L)`` float32 for multi-label."""
    labels = np.asarray(labels)
    if task == "multi-label":
        if labels.ndim != 2:
            raise ValueError(f"multi-label labels must be (N, L), got shape {labels.shape}")
        return labels.astype(np.float32)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"single-label labels must be (N,) or (N, 1), got shape {labels.shape}")
    return labels.astype(np.int64)
