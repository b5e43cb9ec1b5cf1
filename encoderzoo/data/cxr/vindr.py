"""VinDr-CXR 1.0.0 (``vindr-cxr:DIR``).

Licence and access: PhysioNet Credentialed Health Data License 1.5.0 — a credentialed PhysioNet account and the
signed data use agreement. Overlaps: none with the other sets here (two Vietnamese hospitals).

Layout: ``annotations/image_labels_{train,test}.csv`` and ``train/ID.dicom``, ``test/ID.dicom``. 28 finding
columns (22 local, 6 global). The training file has one row per radiologist (``rad_id``, three per image),
aggregated by ``?readers=majority`` (default: positive when more than half of the image's readers marked it) or
``any``; the test labels are the consensus of five readers, one row per image. The "other diseases" column is
spelled ``Other diseases`` in train and ``Other disease`` in test: both read as ``Other diseases``. DICOMs are
12-16-bit, some MONOCHROME1: read through ``read_dicom`` (rescale, VOI window, inversion). No patient ids ship
(each image stands for its patient). Split: official train / test; val is 10% of train, seeded.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import LabelFileError, dicom_tags, read_rows

LABELS = [
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Clavicle fracture",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged PA",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Lung cavity",
    "Lung cyst",
    "Mediastinal shift",
    "Nodule/Mass",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
    "Rib fracture",
    "Other lesion",
    "COPD",
    "Lung tumor",
    "Pneumonia",
    "Tuberculosis",
    "Other diseases",
    "No finding",
]
OTHER = ("Other diseases", "Other disease")
SPECIFIC = {"readers": "majority"}


def _read(path: Path, extra_columns: list[str]) -> list[dict[str, str]]:
    rows = read_rows(path, ["image_id", *extra_columns], what="VinDr-CXR image labels")
    columns = set(rows[0]) if rows else set()
    other = next((c for c in OTHER if c in columns), None)
    missing = [c for c in LABELS if c != "Other diseases" and c not in columns] + ([] if other else [OTHER[0]])
    if missing:
        raise LabelFileError(f"{path} lacks VinDr-CXR column(s) {missing}")
    for r in rows:
        r["Other diseases"] = r.pop(other)
    return rows


def _value(path: Path, row: dict[str, str], column: str) -> float:
    value = row[column]
    if value in ("0", "0.0"):
        return 0.0
    if value in ("1", "1.0"):
        return 1.0
    raise LabelFileError(f"{path}: {column}={value!r} for image {row['image_id']} is not 0 or 1")


def _aggregate(path: Path, rows: list[dict[str, str]], readers: str) -> dict[str, np.ndarray]:
    by_image: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in rows:
        by_image[r["image_id"]].append(np.array([_value(path, r, c) for c in LABELS], np.float32))
    out = {}
    for image, votes in by_image.items():
        stacked = np.stack(votes)
        positive = stacked.any(0) if readers == "any" else stacked.sum(0) * 2 > len(stacked)
        out[image] = positive.astype(np.float32)
    return out


def open_vindr(root: Path, options: CxrOptions) -> TableDataset:
    readers = options.specific["readers"]
    if readers not in ("majority", "any"):
        raise ValueError(f"readers must be 'majority' or 'any', got {readers!r}")
    train_csv = root / "annotations" / "image_labels_train.csv"
    test_csv = root / "annotations" / "image_labels_test.csv"
    sources = {
        "train": _aggregate(train_csv, _read(train_csv, ["rad_id"]), readers),
        "test": _aggregate(test_csv, _read(test_csv, []), readers),
    }
    records = [
        Record(image=root / split / f"{image}.dicom", sample_id=image, patient=image, label=label, split=split)
        for split, labels in sources.items()
        for image, label in labels.items()
    ]
    if options.views != "all":
        for record, tags in zip(records, dicom_tags([r.image for r in records], ["ViewPosition"]), strict=True):
            record.view = tags.get("ViewPosition")
    extra = {
        "readers": f"train: {readers} of the 3 radiologists per image; test: consensus labels as shipped",
        "licence": "PhysioNet Credentialed Health Data License 1.5.0 (credentialed access)",
    }
    return assemble(f"vindr-cxr:{root}", root, records, list(LABELS), "multi-label", options, extra)
