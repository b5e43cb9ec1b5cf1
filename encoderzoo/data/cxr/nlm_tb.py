"""NLM tuberculosis sets: Shenzhen (``ChinaSet_AllFiles``) or Montgomery (``MontgomerySet``) (``nlm-tb:DIR``).

Licence and access: public (U.S. National Library of Medicine), free download; cite Jaeger et al. 2014.
Overlaps: both sets are part of TBX11K's "extra" images: never train on one and test on the other.

Layout: ``CXR_png/*_0.png`` (normal) and ``*_1.png`` (tuberculosis): the label is the file name's last digit
(``CHNCXR_0001_0.png``, ``MCUCXR_0001_0.png``); a PNG that does not end in ``_0`` / ``_1`` is an error. Each
image is one patient. Split: seeded, stratified 70/15/15.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..npz import DatasetNotFoundError
from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import LabelFileError

LABELS = ["normal", "tuberculosis"]
SPECIFIC: dict[str, str] = {}
NAME = re.compile(r"^(?P<patient>.+)_(?P<label>[01])$")


def open_nlm_tb(root: Path, options: CxrOptions) -> TableDataset:
    folder = root / "CXR_png"
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder} not found: point nlm-tb: at ChinaSet_AllFiles or MontgomerySet")
    records, bad = [], []
    for path in sorted(folder.glob("*.png")):
        match = NAME.match(path.stem)
        if match is None:
            bad.append(path.name)
            continue
        records.append(Record(image=path, sample_id=path.name, patient=match["patient"], label=int(match["label"])))
    if bad:
        raise LabelFileError(f"{folder}: {len(bad)} PNG name(s) do not end in _0 or _1: {bad[:10]}")
    extra = {"label": "file name's last digit", "licence": "public (U.S. National Library of Medicine)"}
    return assemble(f"nlm-tb:{root}", root, records, list(LABELS), "binary", options, extra)
