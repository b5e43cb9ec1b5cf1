"""COVIDx CXR-4 (``covidx:DIR``).

Licence and access: the COVIDx compilation is free to download (Kaggle / the COVID-Net project); each source
keeps its own licence (several are CC BY-NC-SA or research-only). Overlaps: its negatives include RSNA Pneumonia
(hence NIH ChestX-ray14) images, and it draws on BIMCV, RICORD, SIRM and other sets.

Layout: ``{train,val,test}.txt`` with ``patient_id filename class source`` per line and the images in
``train/``, ``val/``, ``test/``. Label: ``positive`` / ``negative`` (COVID-19). Split: official (val cut from
train, seeded, where an older release ships no ``val.txt``). ``?split_file=`` also reads BenchX's COVIDx lists
(``preprocess/datasets/COVIDx/{train,val,test}.txt``): one ``split/NAME.png`` per line, where NAME is the
official file name cut at its first dot (BenchX re-saves every image as PNG under that name, so several
``CR.*`` files become one ``val/CR.png``, listed once per image: all of them are placed); BenchX's reading of
the official lists drops each list's first line, so those images are unlisted and dropped (counted).
"""

from __future__ import annotations

from pathlib import Path

from ..npz import DatasetNotFoundError
from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import LabelFileError, read_text_lines

LABELS = ["negative", "positive"]
SPECIFIC: dict[str, str] = {}


def open_covidx(root: Path, options: CxrOptions) -> TableDataset:
    records = []
    for split in ("train", "val", "test"):
        path = root / f"{split}.txt"
        if not path.is_file():
            if split == "val":
                continue
            raise DatasetNotFoundError(f"{path} not found: is {root} the COVIDx CXR-4 folder?")
        for n, line in enumerate(read_text_lines(path), 1):
            fields = line.split()
            if len(fields) < 3:
                raise LabelFileError(f"{path}:{n}: expected 'patient_id filename class source', got {line!r}")
            patient, filename, label = fields[0], fields[1], fields[2].lower()
            if label not in LABELS:
                raise LabelFileError(f"{path}:{n}: class {fields[2]!r} is not positive / negative (COVIDx CXR-4)")
            records.append(
                Record(
                    image=root / split / filename,
                    sample_id=f"{split}/{filename}",
                    patient=patient,
                    label=LABELS.index(label),
                    split=split,
                    aliases=(f"{split}/{filename.split('.')[0]}.png",),  # BenchX's name for it
                )
            )
    extra = {
        "overlaps": "negatives include RSNA (NIH ChestX-ray14) images",
        "licence": "per source (COVIDx compilation)",
    }
    return assemble(f"covidx:{root}", root, records, list(LABELS), "binary", options, extra)
