"""One chest X-ray label vocabulary across datasets (``?labels=common``).

The vocabulary is torchxrayvision's default pathology list (18 findings). Each dataset's own label names are
mapped onto it by one rule: names match case-insensitively with ``_`` read as a space, plus the synonyms below,
written down once. A common label that a dataset does not have is *unknown* (NaN, masked by every probe and
metric), never negative. Several source labels mapping onto one common label combine as: positive if any is
positive, unknown if none is positive and any is unknown, negative otherwise.
"""

from __future__ import annotations

import numpy as np

from .base import ImageDataset
from .relabel import RelabelledDataset
from .table import SplitTable, TableDataset

COMMON_LABELS = [
    "Atelectasis",
    "Consolidation",
    "Infiltration",
    "Pneumothorax",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Effusion",
    "Pneumonia",
    "Pleural Thickening",
    "Cardiomegaly",
    "Nodule",
    "Mass",
    "Hernia",
    "Lung Lesion",
    "Fracture",
    "Lung Opacity",
    "Enlarged Cardiomediastinum",
]

SYNONYMS: dict[str, tuple[str, ...]] = {
    "Effusion": ("Pleural Effusion",),  # CheXpert, MIMIC-CXR, VinDr-CXR ("Pleural effusion")
    "Fibrosis": ("Pulmonary fibrosis",),  # VinDr-CXR
    "Nodule": ("Nodule/Mass",),  # VinDr-CXR's one column counts for both
    "Mass": ("Nodule/Mass",),
    "Fracture": ("Rib fracture", "Clavicle fracture"),  # VinDr-CXR annotates these two kinds
}
"""Source spellings that mean a common label (beyond the case / underscore rule)."""

DATASET_SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    # RSNA's Target marks "lung opacity suggestive of pneumonia": torchxrayvision scores it as both findings
    "rsna-pneumonia": {"Pneumonia": ("pneumonia",), "Lung Opacity": ("pneumonia",)},
    # ChestMNIST (NIH ChestX-ray14 at 28-224 px) shortens Pleural_Thickening to "pleural"
    "medmnist": {"Pleural Thickening": ("pleural",)},
}
"""Synonyms that hold for one dataset only (by spec scheme)."""


class NoCommonLabelsError(ValueError):
    """A dataset (or a pair of datasets) shares none of the common labels."""


def _norm(name: str) -> str:
    return name.replace("_", " ").strip().lower()


def common_mapping(scheme: str, label_names: list[str], task: str) -> dict[str, list[int]]:
    """For each common label the dataset has, the indices of its own labels that make it.

    Single-label datasets (binary, multi-class) map their classes: class ``i`` is the source "column"
    ``label == i``. Common labels absent from the result are unknown for this dataset.
    """
    spellings: dict[str, set[str]] = {c: {_norm(c), *map(_norm, SYNONYMS.get(c, ()))} for c in COMMON_LABELS}
    for common, extra in DATASET_SYNONYMS.get(scheme, {}).items():
        spellings[common] |= set(map(_norm, extra))
    offset = 1 if task == "binary" else 0  # a binary dataset's class 0 is the negative class, never a finding
    names = label_names[offset:]
    mapping: dict[str, list[int]] = {}
    for common in COMMON_LABELS:
        sources = [i + offset for i, n in enumerate(names) if _norm(n) in spellings[common]]
        if sources:
            mapping[common] = sources
    return mapping


def to_common(labels: np.ndarray, task: str, mapping: dict[str, list[int]], names: list[str]) -> np.ndarray:
    """``(N, len(names))`` float32 over the common labels ``names``; NaN where the dataset lacks the label."""
    n = len(labels)
    out = np.full((n, len(names)), np.nan, dtype=np.float32)
    for j, common in enumerate(names):
        if common not in mapping:
            continue
        if task == "multi-label":
            source = labels[:, mapping[common]].astype(np.float32)
        else:
            source = np.stack([(labels == i).astype(np.float32) for i in mapping[common]], 1)
        positive = (source == 1).any(1)
        unknown = np.isnan(source).any(1)
        out[:, j] = np.where(positive, 1.0, np.where(unknown, np.nan, 0.0))
    return out


def mapping_table(schemes_and_names: dict[str, tuple[list[str], str]]) -> str:
    """A markdown table dataset x common label naming the source label(s) (README helper)."""
    header = "| common label | " + " | ".join(f"`{s}`" for s in schemes_and_names) + " |"
    rows = [header, "|---|" + "---|" * len(schemes_and_names)]
    maps = {s: (names, common_mapping(s, names, task)) for s, (names, task) in schemes_and_names.items()}
    for common in COMMON_LABELS:
        cells = []
        for names, mapping in maps.values():
            cells.append(" + ".join(names[i] for i in mapping[common]) if common in mapping else "unknown")
        rows.append(f"| {common} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def scheme_of(spec: str) -> str:
    return spec.partition(":")[0]


def with_common_labels(dataset: ImageDataset) -> ImageDataset:
    """The same images with labels over ``COMMON_LABELS`` (multi-label, NaN where the dataset lacks a finding):
    a ``TableDataset`` stays one; any other dataset (npz, MedMNIST) is wrapped in a ``RelabelledDataset``.

    Raises ``NoCommonLabelsError`` for a dataset none of whose labels is in the vocabulary.
    """
    scheme = scheme_of(dataset.spec)
    mapping = common_mapping(scheme, dataset.label_names, dataset.task)
    if not mapping:
        raise NoCommonLabelsError(
            f"{dataset.spec}: none of its labels {dataset.label_names} is in the common vocabulary "
            f"({', '.join(COMMON_LABELS)}); use its own labels (drop ?labels=common)"
        )
    info = {
        "labels": {
            "vocabulary": "common (torchxrayvision default pathologies)",
            "from": {c: [dataset.label_names[i] for i in idx] for c, idx in mapping.items()},
            "unknown": [c for c in COMMON_LABELS if c not in mapping],
        },
    }
    if not isinstance(dataset, TableDataset):
        rows = {s: np.arange(dataset.num_samples(s)) for s in dataset.splits}
        labels = {s: to_common(dataset.labels(s), dataset.task, mapping, COMMON_LABELS) for s in dataset.splits}
        return RelabelledDataset(dataset, rows, labels, "multi-label", list(COMMON_LABELS), info)
    tables = {
        split: SplitTable(t.paths, to_common(t.labels, dataset.task, mapping, COMMON_LABELS), t.ids, t.texts)
        for split, t in dataset.tables.items()
    }
    return TableDataset(
        dataset.spec,
        dataset.root,
        tables,
        "multi-label",
        list(COMMON_LABELS),
        skip_corrupt=dataset.skip_corrupt,
        extra={**dataset.extra, **info},
        check_files=False,
    )


def known_common_labels(dataset) -> list[str]:
    """The common labels a dataset has: by its mapping, or (opened with ``?labels=common``) by its record."""
    info = getattr(dataset, "extra", {}).get("labels")
    if info and info.get("vocabulary", "").startswith("common"):
        return [c for c in COMMON_LABELS if c in info["from"]]
    return [c for c in COMMON_LABELS if c in common_mapping(scheme_of(dataset.spec), dataset.label_names, dataset.task)]
