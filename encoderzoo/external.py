"""External validation: fit on one dataset, score on another's test split, over the labels both have.

``align(train_data, test_data)`` returns the two datasets relabelled onto the labels they share:

- the same label names and task on both (two folders with the same classes): used as they are;
- otherwise both are mapped onto the common chest X-ray vocabulary (``encoderzoo.data.vocabulary``: the CXR
  benchmarks' own mappings, and for any other dataset its label or class names read through the synonyms, so a
  folder or npz with classes normal / pneumonia has Pneumonia) and the labels *both* have are kept (a label one
  of them lacks would be unknown on one side). None shared: an error.
  One shared label makes a binary task (images whose label is unknown are dropped, and counted); several make a
  multi-label task (unknown stays NaN, masked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data.base import ImageDataset
from .data.relabel import RelabelledDataset
from .data.vocabulary import (
    COMMON_LABELS,
    NoCommonLabelsError,
    common_mapping,
    known_common_labels,
    scheme_of,
    to_common,
)


@dataclass
class Aligned:
    """Both datasets over ``labels``, and what was done (for ``results.json``)."""

    train: ImageDataset
    test: ImageDataset
    labels: list[str]
    info: dict


def _relabel(data: ImageDataset, labels: list[str], binary: bool) -> tuple[RelabelledDataset, dict[str, int]]:
    """``data`` over the common labels ``labels`` (all of which it has); binary drops rows where it is unknown."""
    if data.label_names == COMMON_LABELS:  # opened with ?labels=common
        mapping = {n: [COMMON_LABELS.index(n)] for n in labels}
        task = "multi-label"
    else:
        mapping, task = common_mapping(scheme_of(data.spec), data.label_names, data.task), data.task
    rows, new_labels, dropped = {}, {}, {}
    for split in data.splits:
        y = to_common(data.labels(split), task, mapping, labels)
        if binary:
            keep = np.flatnonzero(~np.isnan(y[:, 0]))
            dropped[split] = len(y) - len(keep)
            rows[split], new_labels[split] = keep, y[keep, 0].astype(np.int64)
        else:
            rows[split], new_labels[split] = np.arange(len(y)), y
    names = [f"no {labels[0]}", labels[0]] if binary else list(labels)
    extra = {"external_validation_labels": list(labels)}
    return RelabelledDataset(data, rows, new_labels, "binary" if binary else "multi-label", names, extra), dropped


def align(train_data: ImageDataset, test_data: ImageDataset) -> Aligned:
    """``train_data`` and ``test_data`` over the labels both have (see the module docstring)."""
    if train_data.label_names == test_data.label_names and train_data.task == test_data.task:
        info = {"labels": "the same label names on both datasets", "labels_scored": list(train_data.label_names)}
        return Aligned(train_data, test_data, list(train_data.label_names), info)
    have_train, have_test = known_common_labels(train_data), known_common_labels(test_data)
    shared = [n for n in COMMON_LABELS if n in have_train and n in have_test]
    if not shared:
        raise NoCommonLabelsError(
            f"{train_data.spec} and {test_data.spec} share none of the common labels: the first has "
            f"{have_train or 'none'}, the second {have_test or 'none'}"
        )
    binary = len(shared) == 1
    train, train_dropped = _relabel(train_data, shared, binary)
    test, test_dropped = _relabel(test_data, shared, binary)
    info = {
        "labels": "common vocabulary (torchxrayvision's default pathologies), labels both datasets have",
        "labels_scored": shared,
        "labels_only_in_train_dataset": [n for n in have_train if n not in shared],
        "labels_only_in_test_dataset": [n for n in have_test if n not in shared],
    }
    if binary:
        info["unknown_label_images_dropped"] = {
            "train_dataset": {s: n for s, n in train_dropped.items() if s in ("train", "val")},
            "test_dataset": {"test": test_dropped.get("test", 0)},
        }
    return Aligned(train, test, shared, info)


def open_aligned(train_data: ImageDataset, test_dataset: str) -> Aligned:
    """Open ``test_dataset`` (a spec), check it has a test split, and ``align`` the two (before any embedding)."""
    from .data import open_dataset

    test_data = open_dataset(test_dataset)
    if "test" not in test_data.splits:
        raise ValueError(f"--test-dataset {test_dataset} has no test split (it has {list(test_data.splits)})")
    aligned = align(train_data, test_data)
    aligned.info = {
        "train_dataset": train_data.spec,
        "test_dataset": test_dataset,
        "fitted_on": "train (hyperparameters chosen on val) of the train dataset",
        "scored_on": "test of the test dataset",
        **aligned.info,
        "test_dataset_info": aligned.test.describe(),
    }
    return aligned
