"""PadChest (``padchest:DIR``).

Licence and access: BIMCV (Hospital San Juan, Alicante); free for research after a request form; CC BY-SA 4.0.
Overlaps: none with the other sets here.

Layout: ``PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv`` (or ``.csv.gz``) with ``ImageID``,
``ImageDir``, ``PatientID``, ``Projection`` and ``Labels`` — a Python list literal of report findings
(``"['pneumonia', 'alveolar pattern']"``) — and the 16-bit PNGs in ``DIR/<ImageDir>/`` or flat in ``DIR``.
Labels: torchxrayvision's PadChest findings, each positive when one of its terms occurs in a listed finding
(e.g. Infiltration from "interstitial pattern", "ground glass pattern", ...). Rows whose Labels cell is empty
have no labels and are dropped (counted). Views: ``Projection``; frontal (PA, AP, AP_horizontal) by default.
Split: seeded, stratified, patient-level 70/15/15.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import LabelFileError, find_file, read_rows

CSV = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
TERMS: dict[str, tuple[str, ...]] = {
    "Air Trapping": ("air trapping",),
    "Aortic Atheromatosis": ("aortic atheromatosis",),
    "Aortic Elongation": ("aortic elongation",),
    "Atelectasis": ("atelectasis",),
    "Bronchiectasis": ("bronchiectasis",),
    "Cardiomegaly": ("cardiomegaly",),
    "Consolidation": ("consolidation", "air bronchogram"),
    "Costophrenic Angle Blunting": ("costophrenic angle blunting",),
    "Edema": ("edema",),
    "Effusion": ("effusion",),
    "Emphysema": ("emphysema",),
    "Fibrosis": ("fibrosis",),
    "Flattened Diaphragm": ("flattened diaphragm",),
    "Fracture": ("fracture",),
    "Granuloma": ("granuloma",),
    "Hemidiaphragm Elevation": ("hemidiaphragm elevation",),
    "Hernia": ("hernia",),
    "Hilar Enlargement": ("hilar enlargement", "adenopathy", "pulmonary artery enlargement"),
    "Infiltration": (
        "infiltrates",
        "interstitial pattern",
        "ground glass pattern",
        "reticular interstitial pattern",
        "reticulonodular interstitial pattern",
        "alveolar pattern",
        "consolidation",
        "air bronchogram",
    ),
    "Mass": ("mass",),
    "Nodule": ("nodule",),
    "Pleural_Thickening": ("pleural thickening",),
    "Pneumonia": ("pneumonia",),
    "Pneumothorax": ("pneumothorax",),
    "Scoliosis": ("scoliosis",),
    "Support Devices": ("device", "pacemaker"),
    "Tuberculosis": ("tuberculosis",),
}
"""torchxrayvision's PadChest findings and the report terms that make each one (substring of a finding)."""
LABELS = list(TERMS)
SPECIFIC: dict[str, str] = {}


def _findings(path: Path, row: dict[str, str]) -> list[str] | None:
    cell = row["Labels"]
    if cell in ("", "nan", "None"):
        return None
    try:
        parsed = ast.literal_eval(cell)
    except (ValueError, SyntaxError) as err:
        raise LabelFileError(f"{path}: Labels of {row['ImageID']} is not a list literal: {cell[:80]!r}") from err
    if not isinstance(parsed, list):
        raise LabelFileError(f"{path}: Labels of {row['ImageID']} is not a list: {cell[:80]!r}")
    return [str(f).strip().lower() for f in parsed if str(f).strip()]


def open_padchest(root: Path, options: CxrOptions) -> TableDataset:
    path = find_file(root, CSV, CSV + ".gz")
    rows = read_rows(path, ["ImageID", "ImageDir", "PatientID", "Projection", "Labels"])
    records, unlabelled = [], 0
    folders: dict[str, bool] = {}
    for r in rows:
        findings = _findings(path, r)
        if findings is None:
            unlabelled += 1
            continue
        label = np.array([any(t in f for f in findings for t in TERMS[n]) for n in LABELS], np.float32)
        folder = r["ImageDir"]
        if folder not in folders:
            folders[folder] = (root / folder).is_dir()
        image = root / folder / r["ImageID"] if folders[folder] else root / r["ImageID"]
        records.append(
            Record(image=image, sample_id=r["ImageID"], patient=r["PatientID"], label=label, view=r["Projection"])
        )
    extra = {
        "labels_from": "torchxrayvision's PadChest findings (terms matched inside the report findings)",
        "rows_without_labels_dropped": unlabelled,
        "licence": "CC BY-SA 4.0 (BIMCV; request form)",
    }
    return assemble(f"padchest:{root}", root, records, list(LABELS), "multi-label", options, extra)
