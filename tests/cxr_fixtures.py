"""Miniature replicas of the chest X-ray benchmarks' real layouts (file names, columns, quirks), built by the tests.

Each writer returns the dataset folder. Images are tiny (12 x 10 px); their pixel values encode nothing.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np

from .datasets_fixtures import write_dicom, write_png

RNG = np.random.default_rng(7)


def _pixels(dtype=np.uint8, high=256) -> np.ndarray:
    return RNG.integers(0, high, (12, 10)).astype(dtype)


def write_csv(path: Path, header: list[str], rows: list[list], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = gzip.open(path, "wt", newline="") if gz else open(path, "w", newline="")  # noqa: SIM115
    with fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- MIMIC-CXR-JPG 2.0.0 ------------------------------------------------------------------------------------------

MIMIC_LABELS = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
]  # alphabetical, as in mimic-cxr-2.0.0-chexpert.csv


def write_mimic(root: Path, subjects: int = 6, test_subjects: int = 1, image=None) -> Path:
    """``subjects`` x 2 studies; each study a PA (or AP) image and a LATERAL one; subject 10000005's second study has
    a blank ViewPosition image; study 50000011 has no label row. Study 1 of each subject: Pneumonia 1.0, Edema -1.0;
    study 2: No Finding 1.0, everything else blank. Official split: the last ``test_subjects`` subjects test, the
    one before them validate, the rest train. ``image(pneumonia: bool)`` makes the pixels (default: noise)."""
    split_rows, label_rows, meta_rows = [], [], []
    for s in range(subjects):
        subject = f"100000{s:02d}"
        split = (
            "test" if s >= subjects - test_subjects else ("validate" if s == subjects - test_subjects - 1 else "train")
        )
        for k in (0, 1):
            study = f"500000{s:02d}" if k == 0 else f"5000{s + 10:04d}"
            labels = dict.fromkeys(MIMIC_LABELS, "")
            if k == 0:
                labels.update({"Pneumonia": "1.0", "Edema": "-1.0", "Cardiomegaly": "0.0"})
            else:
                labels["No Finding"] = "1.0"
            if study != "50000011":
                label_rows.append([subject, study, *(labels[c] for c in MIMIC_LABELS)])
            views = ["PA" if s % 2 else "AP", "LATERAL"] + ([""] if (s, k) == (5, 1) else [])
            for v, view in enumerate(views):
                dicom = f"d{s}{k}{v}-{'x' * 8}"
                pixels = image(k == 0) if image else _pixels()
                write_png(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg", pixels)
                split_rows.append([dicom, study, subject, split])
                meta_rows.append([dicom, subject, study, "CHEST (PA AND LAT)", view, 12, 10, 21800506, 213014.531])
    write_csv(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split_rows, True)
    write_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *MIMIC_LABELS], label_rows, True)
    meta_header = [
        "dicom_id",
        "subject_id",
        "study_id",
        "PerformedProcedureStepDescription",
        "ViewPosition",
        "Rows",
        "Columns",
        "StudyDate",
        "StudyTime",
    ]
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", meta_header, meta_rows, True)
    return root


# --- RSNA Pneumonia (Kaggle stage 2) -------------------------------------------------------------------------------


def write_rsna(root: Path, n: int = 40, dicom: bool = True, images: dict[str, np.ndarray] | None = None) -> Path:
    """``n`` patients, every 4th positive with two box rows; DICOMs (ViewPosition PA / AP) or JPEG conversions.
    ``images`` (patientId -> pixels) writes those instead of noise and sets the patients."""
    ids = list(images) if images else [f"{i:08x}-{'ab' * 2}-rsna{i:03d}" for i in range(n)]
    labels, detail = [], []
    for i, pid in enumerate(ids):
        positive = i % 4 == 0 if images is None else pid.endswith("p")
        if positive:
            labels += [[pid, 264, 152, 213, 379, 1], [pid, 562, 152, 256, 453, 1]]
            detail += [[pid, "Lung Opacity"], [pid, "Lung Opacity"]]
        else:
            labels.append([pid, "", "", "", "", 0])
            detail.append([pid, "Normal" if i % 3 else "No Lung Opacity / Not Normal"])
        pixels = images[pid] if images else _pixels()
        if dicom:
            write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", pixels, ViewPosition="PA" if i % 2 else "AP")
        else:
            write_png(root / "stage_2_train_images" / f"{pid}.jpg", pixels)
    write_csv(root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], labels)
    write_csv(root / "stage_2_detailed_class_info.csv", ["patientId", "class"], detail)
    return root


# --- SIIM-ACR Pneumothorax (stage 1) -------------------------------------------------------------------------------


def write_siim(root: Path, leading_space: bool = True) -> Path:
    """24 images of 12 patients (two each); every 3rd image positive with two RLE rows; nested DICOM folders."""
    rows = []
    for i in range(24):
        image_id = f"1.2.276.0.7230010.3.1.4.8323329.{1000 + i}.1517875{i:03d}.{i}"
        patient = f"patient-{i // 2:02d}"
        if i % 3 == 0:
            rows += [[image_id, "387620 23 996 33 986 43"], [image_id, "407576 2 1021 7 1015 10"]]
        else:
            rows.append([image_id, "-1"])
        folder = root / "dicom-images-train" / f"1.2.276.0.7230010.3.1.2.{i}" / f"1.2.276.0.7230010.3.1.3.{i}"
        write_dicom(folder / f"{image_id}.dcm", _pixels(), PatientID=patient, ViewPosition="PA")
    if leading_space:  # the Kaggle file: "ImageId, EncodedPixels" and values after ", "
        rows = [[image_id, f" {value}"] for image_id, value in rows]
    write_csv(root / "train-rle.csv", ["ImageId", " EncodedPixels" if leading_space else "EncodedPixels"], rows)
    return root


# --- VinDr-CXR 1.0.0 -----------------------------------------------------------------------------------------------

VINDR_TRAIN_COLUMNS = [
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


def write_vindr(root: Path) -> Path:
    """20 train images x 3 radiologists, 5 test images (consensus, ``Other disease`` spelling). Train image i:
    Cardiomegaly marked by i % 4 of the three readers (0..3); Pleural effusion by all three when i is even;
    Other diseases by one reader. Odd images are MONOCHROME1; every image has 12-bit pixels."""
    train, test = [], []
    for i in range(20):
        image_id = f"{i:032x}"
        for r in range(3):
            row = dict.fromkeys(VINDR_TRAIN_COLUMNS, 0)
            row["Cardiomegaly"] = int(r < i % 4)
            row["Pleural effusion"] = int(i % 2 == 0)
            row["Other diseases"] = int(r == 0)
            row["No finding"] = int(not any(row.values()))
            train.append([image_id, f"R{r + 8}", *row.values()])
        write_dicom(
            root / "train" / f"{image_id}.dicom",
            RNG.integers(0, 4096, (12, 10)),
            photometric="MONOCHROME1" if i % 2 else "MONOCHROME2",
            bits_stored=12,
        )
    for i in range(5):
        image_id = f"{1000 + i:032x}"
        row = dict.fromkeys(VINDR_TRAIN_COLUMNS, 0)
        row["Cardiomegaly"], row["Other diseases"] = i % 2, 1
        test.append([image_id, *row.values()])
        write_dicom(root / "test" / f"{image_id}.dicom", RNG.integers(0, 4096, (12, 10)), bits_stored=12)
    write_csv(root / "annotations" / "image_labels_train.csv", ["image_id", "rad_id", *VINDR_TRAIN_COLUMNS], train)
    test_columns = [("Other disease" if c == "Other diseases" else c) for c in VINDR_TRAIN_COLUMNS]
    write_csv(root / "annotations" / "image_labels_test.csv", ["image_id", *test_columns], test)
    return root


# --- COVIDx CXR-4 --------------------------------------------------------------------------------------------------


def write_covidx(root: Path, images: dict[str, list[tuple[str, np.ndarray, str]]] | None = None) -> Path:
    """``{train,val,test}.txt`` lines ``patient_id filename class source``; 12/4/4 images, alternate classes.
    ``images``: split -> [(patient, pixels, 'positive' | 'negative')] written instead."""
    sizes = {"train": 12, "val": 4, "test": 4}
    for split in ("train", "val", "test"):
        entries = (images or {}).get(split) or [
            (f"{split}{i:03d}", _pixels(), "positive" if i % 2 else "negative") for i in range(sizes[split])
        ]
        lines = []
        for k, (patient, pixels, label) in enumerate(entries):
            filename = f"{patient}-{k}.png"
            write_png(root / split / filename, pixels)
            lines.append(f"{patient} {filename} {label} {'bimcv' if k % 2 else 'rsna'}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


# --- NLM Shenzhen / Montgomery -------------------------------------------------------------------------------------


def write_nlm_tb(root: Path, prefix: str = "CHNCXR", n: int = 20) -> Path:
    for i in range(n):
        write_png(root / "CXR_png" / f"{prefix}_{i + 1:04d}_{i % 2}.png", _pixels())
    (root / "CXR_png" / "Thumbs.db").write_bytes(b"\0")  # shipped with Shenzhen; not a PNG
    (root / "ClinicalReadings").mkdir(parents=True, exist_ok=True)
    return root


# --- PadChest ------------------------------------------------------------------------------------------------------

PADCHEST_CSV = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"


def write_padchest(root: Path) -> Path:
    """48 images of 24 patients, 16-bit PNGs in ImageDir folders 0 and 1. Projections cycle PA, L, AP_horizontal,
    AP. Findings cycle through the list below; one row has an empty Labels cell."""
    findings = [
        "['normal']",
        "['pneumonia', 'alveolar pattern']",
        "['loculated pleural effusion', 'cardiomegaly']",
        "['interstitial pattern']",
        "['rib fracture', 'pacemaker']",
        "['nodule', 'multiple nodules']",
        "['pleural thickening', 'unchanged']",
        "",
    ]
    projections = ["PA", "L", "AP_horizontal", "AP"]
    rows = []
    for i in range(48):
        image_id = f"2168401113669640{i:05d}_00-{i:03d}-0{i % 10}.png"
        write_png(root / str(i % 2) / image_id, _pixels(np.uint16, 65536))
        rows.append([image_id, i % 2, f"{i}", f"pat{i // 2:03d}", 1950, "M", projections[i % 4], findings[i % 8], "[]"])
    header = [
        "ImageID",
        "ImageDir",
        "StudyID",
        "PatientID",
        "PatientBirth",
        "PatientSex_DICOM",
        "Projection",
        "Labels",
        "Localizations",
    ]
    write_csv(root / PADCHEST_CSV, header, rows)
    return root


# --- Object-CXR ----------------------------------------------------------------------------------------------------


def write_object_cxr(root: Path, with_test: bool = False) -> Path:
    """train 16, dev 6 (, test 6) images; every other image has a foreign-object annotation."""
    splits = {"train": 16, "dev": 6, **({"test": 6} if with_test else {})}
    for split, n in splits.items():
        rows = []
        for i in range(n):
            name = f"{split[:1]}{i:05d}.jpg"
            write_png(root / split / name, _pixels())
            rows.append([name, "0 1268 1108 1304 1148;1 930 1304 1014 1416" if i % 2 else ""])
        write_csv(root / f"{split}.csv", ["image_name", "annotation"], rows)
    return root


# --- TBX11K --------------------------------------------------------------------------------------------------------


def write_tbx11k(root: Path) -> Path:
    """lists/TBX11K_{train,val}.txt over imgs/{health,sick,tb}; 8 of each class in train, 2 of each in val."""
    for name, per_class in (("TBX11K_train.txt", 8), ("TBX11K_val.txt", 2)):
        lines = []
        for folder, letter in (("health", "h"), ("sick", "s"), ("tb", "tb")):
            for i in range(per_class):
                rel = f"{folder}/{letter}{name[7:9]}{i:04d}.png"
                write_png(root / "imgs" / rel, _pixels())
                lines.append(rel)
        (root / "lists").mkdir(parents=True, exist_ok=True)
        (root / "lists" / name).write_text("\n".join(lines) + "\n")
    write_png(root / "imgs" / "test" / "test0001.png", _pixels())  # unlabelled test images ship too
    (root / "annotations" / "json").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "json" / "TBX11K_train.json").write_text(json.dumps({"images": [], "annotations": []}))
    return root
