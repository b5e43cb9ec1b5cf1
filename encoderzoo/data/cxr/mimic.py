"""MIMIC-CXR-JPG 2.0.0 (``mimic-cxr:DIR``).

Licence and access: PhysioNet Credentialed Health Data License 1.5.0 — a credentialed PhysioNet account, the
required human-subjects training and the signed data use agreement; the data may not be shared onward.
Overlaps: none with the other sets here (Beth Israel Deaconess, Boston, 2011-2016).

Layout: ``mimic-cxr-2.0.0-{split,chexpert,metadata}.csv.gz`` and ``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg``.
Labels are per *study* (the 14 CheXpert-labeler columns: 1.0, 0.0, -1.0, blank) and joined to each image on
(subject_id, study_id); blank = negative, -1 = unknown (``?uncertain=ignore``, default) or ``zeros`` / ``ones``.
An image whose study has no label row is dropped and counted. Views: metadata ``ViewPosition``; frontal (PA, AP)
by default. Split: the official ``split.csv.gz`` (train / validate / test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..table import CHEXPERT_LABELS, TableDataset, _binary
from .build import CxrOptions, Record, assemble
from .files import LabelFileError, find_file, read_rows

SPECIFIC = {"uncertain": "ignore"}
SPLITS = {"train": "train", "validate": "val", "test": "test"}


def open_mimic(root: Path, options: CxrOptions) -> TableDataset:
    uncertain = options.specific["uncertain"]
    if uncertain not in ("ignore", "zeros", "ones"):
        raise ValueError(f"uncertain must be 'ignore', 'zeros' or 'ones', got {uncertain!r}")
    prefix = "mimic-cxr-2.0.0-"
    files = {k: find_file(root, f"{prefix}{k}.csv.gz", f"{prefix}{k}.csv") for k in ("split", "chexpert", "metadata")}
    split_rows = read_rows(files["split"], ["dicom_id", "study_id", "subject_id", "split"])
    label_rows = read_rows(files["chexpert"], ["subject_id", "study_id", *CHEXPERT_LABELS])
    meta_rows = read_rows(files["metadata"], ["dicom_id", "subject_id", "study_id", "ViewPosition"])
    labels = {
        (r["subject_id"], r["study_id"]): np.array([_binary(r[c], uncertain) for c in CHEXPERT_LABELS], np.float32)
        for r in label_rows
    }
    views = {r["dicom_id"]: r["ViewPosition"] for r in meta_rows}  # "" (blank) is dropped by a view filter
    records, unlabelled = [], 0
    for r in split_rows:
        split = SPLITS.get(r["split"])
        if split is None:
            raise LabelFileError(f"{files['split']}: unknown split {r['split']!r} (expected {sorted(SPLITS)})")
        key = (r["subject_id"], r["study_id"])
        if key not in labels:
            unlabelled += 1
            continue
        subject, study, dicom = r["subject_id"], r["study_id"], r["dicom_id"]
        records.append(
            Record(
                image=root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg",
                sample_id=f"p{subject}/s{study}/{dicom}",
                patient=subject,
                label=labels[key],
                split=split,
                view=views.get(dicom),
            )
        )
    extra = {
        "uncertain": uncertain,
        "blank": "negative",
        "images_without_label_row_dropped": unlabelled,
        "licence": "PhysioNet Credentialed Health Data License 1.5.0 (credentialed access)",
    }
    return assemble(f"mimic-cxr:{root}", root, records, list(CHEXPERT_LABELS), "multi-label", options, extra)
