"""SIIM-ACR Pneumothorax Segmentation, stage 1 (``siim-pneumothorax:DIR``).

Licence and access: Kaggle competition data (accept the competition rules; non-commercial research). Overlaps:
the images come from NIH ChestX-ray14.

Layout: ``train-rle.csv`` (``ImageId`` and ``" EncodedPixels"`` — the header has a leading space; ``-1`` means
no pneumothorax; a positive image has one row per mask) and DICOMs anywhere under
``dicom-images-train/**/IMAGEID.dcm``. Label: pneumothorax if any row of the image has a mask. Patient: the
DICOM PatientID tag (the image id where absent). Views: the DICOM ViewPosition tag. Split: seeded, stratified,
patient-level 70/15/15.

BenchX's split lists (``preprocess/datasets/SIIM/{train,val,test}.txt``) name images by the PNG names of the
Kaggle re-release "Pneumothorax Chest X-ray Images and Masks" (vbookshelf): ``424_train_1_`` (index, stage-1
part, label). ``?split_file=`` maps them to ImageIds through that release's ``stage_1_train_images.csv`` /
``stage_1_test_images.csv`` (or BenchX's ``siim_labels.csv``, their concatenation): columns ``new_filename``,
``ImageId``, ``has_pneumo``, looked for beside the split files, then in DIR; ``has_pneumo`` must agree with
the masks. BenchX's test.txt names the stage-1 *test* images (``N_test_L_``), which this stage-1 train layout
does not hold: such a list is refused, naming them.
"""

from __future__ import annotations

from pathlib import Path

from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import LabelFileError, dicom_tags, read_rows

LABELS = ["no pneumothorax", "pneumothorax"]
SPECIFIC: dict[str, str] = {}
IMAGE_DIR = "dicom-images-train"
NAME_MAPS = ("siim_labels.csv", "stage_1_train_images.csv", "stage_1_test_images.csv")
SPLIT_HINT = (
    "BenchX's SIIM lists name the vbookshelf PNGs (424_train_1_): put that release's stage_1_train_images.csv / "
    "stage_1_test_images.csv (or BenchX's siim_labels.csv) beside the split files; its N_test_L_ images are "
    "stage-1 test images, not in train-rle.csv"
)


def _png_names(root: Path, options: CxrOptions, positive: dict[str, int]) -> tuple[dict[str, tuple[str, ...]], list]:
    """ImageId -> the re-release's PNG names for it (with and without ``.png``), and the files read: those of
    ``NAME_MAPS`` in the first folder (the split file's, then ``root``) holding any; ``has_pneumo`` is checked
    against the masks."""
    folders = [options.split_file if options.split_file.is_dir() else options.split_file.parent, root]
    for folder in folders:
        files = [folder / name for name in NAME_MAPS if (folder / name).is_file()]
        if not files:
            continue
        names: dict[str, tuple[str, ...]] = {}
        wrong = []
        for file in files:
            for r in read_rows(file, ["new_filename", "ImageId"], what="SIIM PNG names"):
                image, png = r["ImageId"], r["new_filename"]
                names[image] = (png, png.removesuffix(".png"))
                flag = r.get("has_pneumo", "")
                if image in positive and flag and flag not in ("0", "1", "0.0", "1.0"):
                    raise LabelFileError(f"{file}: has_pneumo {flag!r} for {png} is not 0 or 1")
                if image in positive and flag and int(float(flag)) != positive[image]:
                    wrong.append(f"{png} ({image})")
        if wrong:
            raise LabelFileError(f"{files[0].parent}: has_pneumo disagrees with train-rle.csv for {wrong[:5]}")
        return names, [str(f) for f in files]
    return {}, []


def open_siim(root: Path, options: CxrOptions) -> TableDataset:
    rows = read_rows(root / "train-rle.csv", ["ImageId", "EncodedPixels"], what="SIIM-ACR masks")
    positive: dict[str, int] = {}
    for r in rows:
        has_mask = r["EncodedPixels"] not in ("-1", "")
        positive[r["ImageId"]] = max(positive.get(r["ImageId"], 0), int(has_mask))
    found = {p.stem: p for p in (root / IMAGE_DIR).rglob("*.dcm")}
    images = [found.get(i, root / IMAGE_DIR / f"{i}.dcm") for i in positive]
    tags = dicom_tags(images, ["PatientID", "ViewPosition"])
    pngs, maps = _png_names(root, options, positive) if options.split_file is not None else ({}, [])
    records = [
        Record(
            image=image,
            sample_id=i,
            patient=t.get("PatientID", i),
            label=y,
            view=t.get("ViewPosition"),
            aliases=pngs.get(i, ()),
        )
        for (i, y), image, t in zip(positive.items(), images, tags, strict=True)
    ]
    extra = {
        "label": "pneumothorax = any EncodedPixels row other than -1",
        "overlaps": "images from NIH ChestX-ray14",
        "licence": "Kaggle competition rules (SIIM-ACR Pneumothorax Segmentation)",
    }
    if maps:
        extra["split_file_png_names"] = maps
    return assemble(
        f"siim-pneumothorax:{root}", root, records, list(LABELS), "binary", options, extra, split_hint=SPLIT_HINT
    )
