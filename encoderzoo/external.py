"""External validation: fit on one dataset, score on another's test split, over the labels both have.

``align(train_data, test_data)`` returns the two datasets relabelled onto the labels they share:

- the same label names and task on both (two folders with the same classes): used as they are;
- otherwise both are mapped onto the common chest X-ray vocabulary (``encoderzoo.data.vocabulary``) and the
  labels *both* have are kept (a label one of them lacks would be unknown on one side). None shared: an error.
  One shared label makes a binary task (images whose label is unknown are dropped, and counted); several make a
  multi-label task (unknown stays NaN, masked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data.base import ImageDataset
from .data.table import SplitTable, TableDataset
from .data.vocabulary import COMMON_LABELS, NoCommonLabelsError, known_common_labels, with_common_labels


@dataclass
class Aligned:
    """Both datasets over ``labels``, and what was done (for ``results.json``)."""

    train: ImageDataset
    test: ImageDataset
    labels: list[str]
    info: dict


def _subset(data: TableDataset, labels: list[str], binary: bool) -> tuple[TableDataset, dict[str, int]]:
    """``data`` (already on the common vocabulary) restricted to ``labels``; binary drops unknown rows."""
    columns = [data.label_names.index(n) for n in labels]
    tables, dropped = {}, {}
    for split, t in data.tables.items():
        y = t.labels[:, columns]
        if binary:
            keep = ~np.isnan(y[:, 0])
            dropped[split] = int((~keep).sum())
            index = np.flatnonzero(keep)
            tables[split] = SplitTable(
                [t.paths[i] for i in index],
                y[index, 0].astype(np.int64),
                [t.ids[i] for i in index],
                None if t.texts is None else [t.texts[i] for i in index],
            )
        else:
            tables[split] = SplitTable(t.paths, y, t.ids, t.texts)
    names = [f"no {labels[0]}", labels[0]] if binary else list(labels)
    extra = {**data.extra, "external_validation_labels": list(labels)}
    out = TableDataset(
        data.spec,
        data.root,
        tables,
        "binary" if binary else "multi-label",
        names,
        skip_corrupt=data.skip_corrupt,
        extra=extra,
        check_files=False,
    )
    return out, dropped


def _common(data: ImageDataset) -> TableDataset:
    if not isinstance(data, TableDataset):
        raise NoCommonLabelsError(
            f"{data.spec} has labels {data.label_names}; external validation across different label sets needs "
            "chest X-ray datasets with a mapping to the common vocabulary (nih:, chexpert:, mimic-cxr:, ...)"
        )
    return data if data.label_names == COMMON_LABELS else with_common_labels(data)


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
    train, train_dropped = _subset(_common(train_data), shared, binary)
    test, test_dropped = _subset(_common(test_data), shared, binary)
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
