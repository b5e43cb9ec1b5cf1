"""Lay out real chest X-rays (Kermany et al. 2018, CC BY 4.0, in ../shared/data) as two benchmark replicas in two
different distributed layouts, from disjoint images and patients, for the README's external-validation run:

- ``OUT/rsna``: the RSNA Pneumonia stage-2 layout (``stage_2_train_labels.csv``, ``stage_2_detailed_class_info.csv``,
  ``stage_2_train_images/ID.jpg``) from Kermany's train + val images; pneumonia -> Target 1 with one box row (the
  whole image: Kermany has no boxes, and the loader reads Target only);
- ``OUT/mimic``: the MIMIC-CXR-JPG 2.0.0 layout (``mimic-cxr-2.0.0-{split,chexpert,metadata}.csv.gz``,
  ``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg``) from Kermany's test images, all in the official ``test`` split;
  pneumonia -> ``Pneumonia`` 1.0, normal -> ``No Finding`` 1.0, every other column blank (= negative).
  Kermany records no view: every image is frontal and written as ``PA``.

``person123_...`` and ``IM-0115-...`` name the patient: the RSNA side takes one image per patient (as RSNA has),
the MIMIC side keeps a patient's images under one subject; a patient or an image (by sha256: the collection holds
byte-identical duplicates) already on the RSNA side is never on the MIMIC side.
``--per-class`` images of each class are taken per side (seeded, in name order), so both are balanced.

    python benchmarks/kermany_cxr_replicas.py /tmp/cxr-replicas --per-class 300 150 [--kermany DIR]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np

KERMANY = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr-pneumonia-kermany"
CHEXPERT_COLUMNS = [
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
]


def patient_of(path: str) -> str:
    name = Path(path).stem
    match = re.match(r"(person\d+)_", name) or re.match(r"((?:NORMAL2-)?IM-\d+)-", name)
    if match is None:
        raise ValueError(f"cannot tell the patient of {path}")
    return match.group(1)


def choose(rows: list[dict], per_class: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for label in ("0", "1"):
        pool = sorted((r for r in rows if r["label"] == label), key=lambda r: r["path"])
        out += [pool[i] for i in sorted(rng.choice(len(pool), size=min(per_class, len(pool)), replace=False))]
    return out


def write_csv(path: Path, header: list[str], rows: list[list], gz: bool = False) -> None:
    with gzip.open(path, "wt", newline="") if gz else open(path, "w", newline="") as fh:  # noqa: SIM115
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, nargs=2, default=(300, 150), metavar=("RSNA", "MIMIC"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kermany", type=Path, default=KERMANY, help="the cxr-pneumonia-kermany folder")
    args = parser.parse_args()
    kermany = args.kermany
    rows = list(csv.DictReader(open(kermany / "labels.csv", newline="")))  # noqa: SIM115
    digest = {r["path"]: hashlib.sha256((kermany / r["path"]).read_bytes()).hexdigest() for r in rows}
    first_per_patient: dict[str, dict] = {}  # RSNA has one image per patient: keep the first of each
    for r in sorted((r for r in rows if r["split"] in ("train", "val")), key=lambda r: r["path"]):
        first_per_patient.setdefault(patient_of(r["path"]), r)
    rsna_rows = choose(list(first_per_patient.values()), args.per_class[0], args.seed)
    taken_patients = {patient_of(r["path"]) for r in rsna_rows}
    taken_images = {digest[r["path"]] for r in rsna_rows}
    test_pool = [
        r
        for r in rows
        if r["split"] == "test"
        and patient_of(r["path"]) not in taken_patients
        and digest[r["path"]] not in taken_images
    ]
    mimic_rows = choose(test_pool, args.per_class[1], args.seed)
    if args.out.exists():
        shutil.rmtree(args.out)

    rsna = args.out / "rsna"
    (rsna / "stage_2_train_images").mkdir(parents=True)
    labels, detail = [], []
    for i, r in enumerate(rsna_rows):
        pid = f"kermany-{i:05d}-{Path(r['path']).stem}"
        shutil.copyfile(kermany / r["path"], rsna / "stage_2_train_images" / f"{pid}.jpg")
        if r["label"] == "1":
            labels.append([pid, 0, 0, 224, 224, 1])
            detail.append([pid, "Lung Opacity"])
        else:
            labels.append([pid, "", "", "", "", 0])
            detail.append([pid, "Normal"])
    write_csv(rsna / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], labels)
    write_csv(rsna / "stage_2_detailed_class_info.csv", ["patientId", "class"], detail)

    mimic = args.out / "mimic"
    mimic.mkdir(parents=True)
    split_rows, label_rows, meta_rows = [], [], []
    subjects: dict[str, str] = {}
    for i, r in enumerate(mimic_rows):
        subject = subjects.setdefault(patient_of(r["path"]), f"1{len(subjects):07d}")
        study, dicom = f"5{i:07d}", f"kermany-{Path(r['path']).stem}"
        target = mimic / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kermany / r["path"], target)
        values = dict.fromkeys(CHEXPERT_COLUMNS, "")
        values["Pneumonia" if r["label"] == "1" else "No Finding"] = "1.0"
        split_rows.append([dicom, study, subject, "test"])
        label_rows.append([subject, study, *values.values()])
        meta_rows.append([dicom, subject, study, "PA"])
    prefix = mimic / "mimic-cxr-2.0.0-"
    write_csv(Path(f"{prefix}split.csv.gz"), ["dicom_id", "study_id", "subject_id", "split"], split_rows, True)
    write_csv(Path(f"{prefix}chexpert.csv.gz"), ["subject_id", "study_id", *CHEXPERT_COLUMNS], label_rows, True)
    write_csv(Path(f"{prefix}metadata.csv.gz"), ["dicom_id", "subject_id", "study_id", "ViewPosition"], meta_rows, True)
    shared = taken_patients & {patient_of(r["path"]) for r in mimic_rows}
    print(
        f"rsna-pneumonia:{rsna}  {len(rsna_rows)} images ({sum(r['label'] == '1' for r in rsna_rows)} pneumonia), "
        f"{len(taken_patients)} patients\nmimic-cxr:{mimic}  {len(mimic_rows)} images "
        f"({sum(r['label'] == '1' for r in mimic_rows)} pneumonia), {len(subjects)} patients\n"
        f"patients on both sides: {len(shared)}; identical images on both sides: "
        f"{len(taken_images & {digest[r['path']] for r in mimic_rows})}"
    )


if __name__ == "__main__":
    main()
