"""SIIM-ACR Pneumothorax Segmentation, stage 1 (``siim-pneumothorax:DIR``).

Licence and access: Kaggle competition data (accept the competition rules; non-commercial research). Overlaps:
the images come from NIH ChestX-ray14.

Layout: ``train-rle.csv`` (``ImageId`` and ``" EncodedPixels"`` — the header has a leading space; ``-1`` means
no pneumothorax; a positive image has one row per mask) and DICOMs anywhere under
``dicom-images-train/**/IMAGEID.dcm``. Label: pneumothorax if any row of the image has a mask. Patient: the
DICOM PatientID tag (the image id where absent). Views: the DICOM ViewPosition tag. Split: seeded, stratified,
patient-level 70/15/15.
"""

from __future__ import annotations

from pathlib import Path

from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import dicom_tags, read_rows

LABELS = ["no pneumothorax", "pneumothorax"]
SPECIFIC: dict[str, str] = {}
IMAGE_DIR = "dicom-images-train"


def open_siim(root: Path, options: CxrOptions) -> TableDataset:
    rows = read_rows(root / "train-rle.csv", ["ImageId", "EncodedPixels"], what="SIIM-ACR masks")
    positive: dict[str, int] = {}
    for r in rows:
        has_mask = r["EncodedPixels"] not in ("-1", "")
        positive[r["ImageId"]] = max(positive.get(r["ImageId"], 0), int(has_mask))
    found = {p.stem: p for p in (root / IMAGE_DIR).rglob("*.dcm")}
    images = [found.get(i, root / IMAGE_DIR / f"{i}.dcm") for i in positive]
    tags = dicom_tags(images, ["PatientID", "ViewPosition"])
    records = [
        Record(image=image, sample_id=i, patient=t.get("PatientID", i), label=y, view=t.get("ViewPosition"))
        for (i, y), image, t in zip(positive.items(), images, tags, strict=True)
    ]
    extra = {
        "label": "pneumothorax = any EncodedPixels row other than -1",
        "overlaps": "images from NIH ChestX-ray14",
        "licence": "Kaggle competition rules (SIIM-ACR Pneumothorax Segmentation)",
    }
    return assemble(f"siim-pneumothorax:{root}", root, records, list(LABELS), "binary", options, extra)
