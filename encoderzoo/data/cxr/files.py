"""Reading the label files CXR datasets ship: CSV (plain or gzip) with named-column checks, DICOM header tags."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..npz import DatasetNotFoundError


class LabelFileError(ValueError):
    """A label or split file lacks expected columns, or holds a value the loader does not know."""


def read_rows(path: Path, required: Sequence[str] = (), *, what: str = "") -> list[dict[str, str]]:
    """Rows of a CSV (``.csv`` or ``.csv.gz``) as dicts. Header names are stripped of surrounding spaces (SIIM's
    ``" EncodedPixels"``), cell values too. ``required`` columns missing -> ``LabelFileError`` naming them."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} not found{f' ({what})' if what else ''}")
    raw = gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")  # noqa: SIM115
    with raw as fh:
        reader = csv.reader(fh)
        header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
        rows = [dict(zip(header, (v.strip() for v in row), strict=False)) for row in reader if row]
    missing = [c for c in required if c not in header]
    if missing:
        raise LabelFileError(f"{path} lacks column(s) {missing}; it has {header}")
    return rows


def find_file(root: Path, *names: str) -> Path:
    """The first of ``names`` that exists under ``root`` (e.g. ``x.csv.gz`` or ``x.csv``), else a clear error."""
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DatasetNotFoundError(f"{root} has none of {list(names)}: is it the right dataset folder?")


def read_text_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def dicom_tags(paths: Sequence[Path], keywords: Sequence[str], threads: int = 8) -> list[dict[str, str]]:
    """``keywords`` (e.g. ``ViewPosition``, ``PatientID``) from each DICOM header, without decoding pixels.
    A missing file or tag gives no entry for it (the dataset's file check reports missing files)."""
    try:
        import pydicom
    except ImportError as err:
        from ...errors import EncoderZooError

        raise EncoderZooError("reading DICOM needs pydicom: pip install 'encoderzoo[dicom]'") from err

    def one(path: Path) -> dict[str, str]:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(keywords))
        except (OSError, pydicom.errors.InvalidDicomError):
            return {}
        return {k: str(getattr(ds, k)).strip() for k in keywords if k in ds and str(getattr(ds, k)).strip()}

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, paths))
