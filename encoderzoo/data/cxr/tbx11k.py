"""TBX11K (``tbx11k:DIR``).

Licence and access: CC BY-NC-SA 2.0 (Liu et al., CVPR 2020), free download. Overlaps: its ``imgs/extra`` holds
the NLM Montgomery and Shenzhen sets (``nlm-tb:``); the lists used here do not include them.

Layout as distributed: ``lists/TBX11K_train.txt`` and ``lists/TBX11K_val.txt`` (one image per line, relative to
``imgs/``: ``health/h0001.png``, ``sick/s0001.png``, ``tb/tb0001.png``) and the images under ``imgs/``. The test
images ship without labels and are not used. Label (multi-class) from the folder: healthy, sick but not TB, TB.
No patient ids ship (each image stands for its patient). Split: the official val is the test split; val is 10%
of the official train, seeded and stratified.
"""

from __future__ import annotations

from pathlib import Path

from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import LabelFileError, read_text_lines

LABELS = ["healthy", "sick but not TB", "tuberculosis"]
FOLDERS = {"health": 0, "sick": 1, "tb": 2}
SPECIFIC: dict[str, str] = {}


def open_tbx11k(root: Path, options: CxrOptions) -> TableDataset:
    records = []
    for name, split in (("TBX11K_train.txt", "train"), ("TBX11K_val.txt", "test")):
        path = root / "lists" / name
        if not path.is_file():
            from ..npz import DatasetNotFoundError

            raise DatasetNotFoundError(f"{path} not found: is {root} the TBX11K folder (lists/, imgs/)?")
        for line in read_text_lines(path):
            relative = line.split()[0].removeprefix("imgs/")
            folder = relative.split("/")[0]
            if folder not in FOLDERS:
                raise LabelFileError(f"{path}: {relative!r} is not under health/, sick/ or tb/")
            records.append(
                Record(
                    image=root / "imgs" / relative,
                    sample_id=relative,
                    patient=relative,
                    label=FOLDERS[folder],
                    split=split,
                )
            )
    extra = {
        "splits_from": "lists/TBX11K_train.txt (val cut from it) and lists/TBX11K_val.txt as test",
        "licence": "CC BY-NC-SA 2.0",
    }
    return assemble(f"tbx11k:{root}", root, records, list(LABELS), "multi-class", options, extra)
