"""Small datasets written by the tests in each supported on-disk layout."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def write_npz(
    path: Path, sizes=(12, 5, 7), shape=(28, 28), flat_labels=False, classes=3, compressed=False, multilabel=0, seed=0
) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes, strict=True):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        if multilabel:
            arrays[f"{split}_labels"] = rng.integers(0, 2, (n, multilabel), dtype=np.uint8)
        else:
            labels = (np.arange(n) % classes).astype(np.uint8)
            arrays[f"{split}_labels"] = labels if flat_labels else labels[:, None]
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_nih(root: Path) -> Path:
    """8 patients, 2 images each; 12 in train_val, 4 in test."""
    rng = np.random.default_rng(1)
    findings = ["No Finding", "Effusion", "Atelectasis|Effusion", "Hernia", "Mass|Nodule|Pneumothorax"]
    rows, train_val, test = [], [], []
    for patient in range(8):
        for k in range(2):
            name = f"{patient:08d}_{k:03d}.png"
            write_png(root / f"images_00{patient % 2 + 1}" / "images" / name, rng.integers(0, 256, (40, 40), np.uint8))
            rows.append(
                {
                    "Image Index": name,
                    "Finding Labels": findings[(patient + k) % len(findings)],
                    "Patient ID": str(patient),
                }
            )
            (test if patient >= 6 else train_val).append(name)
    with open(root / "Data_Entry_2017_v2020.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["Image Index", "Finding Labels", "Patient ID"])
        writer.writeheader()
        writer.writerows(rows)
    (root / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    return root


CHEXPERT_COLUMNS = [
    "Path",
    "Sex",
    "Age",
    "Frontal/Lateral",
    "AP/PA",
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]


def write_chexpert(parent: Path) -> Path:
    """CheXpert-v1.0-small/ with train.csv (10 patients, frontal + lateral) and valid.csv (2 patients)."""
    root = parent / "CheXpert-v1.0-small"
    rng = np.random.default_rng(2)
    for csv_name, split, patients in (("train.csv", "train", range(10)), ("valid.csv", "valid", range(10, 12))):
        rows = []
        for p in patients:
            for view in ("frontal", "lateral"):
                rel = f"CheXpert-v1.0-small/{split}/patient{p:05d}/study1/view1_{view}.jpg"
                write_png(parent / rel, rng.integers(0, 256, (36, 30), np.uint8))
                row = dict.fromkeys(CHEXPERT_COLUMNS, "")
                row.update({"Path": rel, "Sex": "F", "Age": "50", "Frontal/Lateral": view.capitalize(), "AP/PA": "PA"})
                row["Edema"] = "-1.0"  # uncertain for everyone
                row["Cardiomegaly"] = "1.0" if p % 2 else "0.0"
                rows.append(row)
        with open(root / csv_name, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CHEXPERT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return root


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    photometric="MONOCHROME2",
    window=None,
    slope=1.0,
    intercept=0.0,
    bits_stored=16,
    **tags,
):
    """A DX DICOM of ``pixels`` (uint16 storage, ``bits_stored`` significant bits); ``tags`` are set by keyword
    (``ViewPosition="PA"``, ``PatientID="p1"``)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
