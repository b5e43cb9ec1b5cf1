"""RSNA Pneumonia Detection Challenge, Kaggle stage 2 (``rsna-pneumonia:DIR``).

Licence and access: Kaggle competition data (accept the competition rules; non-commercial research). Overlaps:
its images are a subset of NIH ChestX-ray14 (re-annotated by radiologists), so never train on NIH and test on
RSNA (or the reverse) as "external" validation; COVIDx also includes RSNA images.

Layout: ``stage_2_train_labels.csv`` (patientId, x, y, width, height, Target: one row per box, so a positive
patient has several rows, a negative one row with empty box), ``stage_2_detailed_class_info.csv`` (patientId,
class; checked against Target where present) and ``stage_2_train_images/PATIENTID.dcm`` (or ``.jpg`` / ``.png``
conversions). Label: Target (binary; positive if any row of the patient is). Views: the DICOM ViewPosition tag
(all RSNA images are PA or AP, so the frontal default keeps all). Split: none official; seeded, stratified,
patient-level 70/15/15 (``?split_file=`` for a published one).
"""

from __future__ import annotations

from pathlib import Path

from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import LabelFileError, dicom_tags, read_rows

LABELS = ["no pneumonia", "pneumonia"]
SPECIFIC: dict[str, str] = {}
IMAGE_DIR = "stage_2_train_images"


def open_rsna(root: Path, options: CxrOptions) -> TableDataset:
    rows = read_rows(root / "stage_2_train_labels.csv", ["patientId", "Target"], what="RSNA stage 2 labels")
    target: dict[str, int] = {}
    for r in rows:
        if r["Target"] not in ("0", "1"):
            raise LabelFileError(f"stage_2_train_labels.csv: Target {r['Target']!r} for {r['patientId']} is not 0/1")
        target[r["patientId"]] = max(target.get(r["patientId"], 0), int(r["Target"]))
    if (root / "stage_2_detailed_class_info.csv").is_file():
        detail = read_rows(root / "stage_2_detailed_class_info.csv", ["patientId", "class"])
        wrong = sorted(
            {r["patientId"] for r in detail if (r["class"] == "Lung Opacity") != bool(target.get(r["patientId"], 0))}
        )
        if wrong:
            raise LabelFileError(
                f"stage_2_detailed_class_info.csv disagrees with Target for {len(wrong)} patients, e.g. {wrong[:5]}"
            )
    folder = root / IMAGE_DIR
    suffixes = {p.suffix.lower() for p in folder.iterdir()} if folder.is_dir() else set()
    suffix = next((s for s in (".dcm", ".jpg", ".png") if s in suffixes), ".dcm")
    images = [folder / f"{p}{suffix}" for p in target]
    views: list[str | None] = [None] * len(images)
    if suffix == ".dcm" and options.views != "all":
        views = [tags.get("ViewPosition") for tags in dicom_tags(images, ["ViewPosition"])]
    records = [
        Record(image=image, sample_id=p, patient=p, label=t, view=v)
        for (p, t), image, v in zip(target.items(), images, views, strict=True)
    ]
    extra = {
        "label": "Target (any box row of the patient)",
        "images": suffix,
        "overlaps": "subset of NIH ChestX-ray14",
        "licence": "Kaggle competition rules (RSNA Pneumonia Detection Challenge)",
    }
    return assemble(f"rsna-pneumonia:{root}", root, records, list(LABELS), "binary", options, extra)
