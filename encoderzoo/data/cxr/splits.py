"""Seeded, patient-level, stratified splits that are the same on every machine, and published split lists.

A patient's place is decided by ``sha256(f"{seed}|{patient}")``, never Python's salted ``hash()`` nor a random
generator's stream: every run, machine and Python version agrees.
Within each stratum (the patient's label: the class for single-label data, the patient's rarest positive finding
for multi-label data, "none" without one) patients are ordered by that hash and cut at the fractions.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .files import LabelFileError, read_rows, read_text_lines

SPLIT_NAMES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
}
SHOWN = 10


def _rank(seed: int, patient: str) -> str:
    return hashlib.sha256(f"{seed}|{patient}".encode()).hexdigest()


def strata(patients: Sequence[str], labels: np.ndarray) -> dict[str, str]:
    """The stratum of each patient (see the module docstring)."""
    by_patient: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(patients):
        by_patient[p].append(i)
    if labels.ndim == 1:
        return {p: str(int(labels[rows].max())) for p, rows in by_patient.items()}
    frequency = np.nansum(labels == 1, axis=0)
    out = {}
    for p, rows in by_patient.items():
        positive = np.flatnonzero((labels[rows] == 1).any(0))
        out[p] = str(int(positive[np.argmin(frequency[positive])])) if len(positive) else "none"
    return out


def seeded_split(patients: Sequence[str], labels: np.ndarray, fractions: dict[str, float], seed: int) -> list[str]:
    """One split name per row: patients (never images) cut by ``fractions`` (in order) within each stratum."""
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for patient, stratum in strata(patients, labels).items():
        by_stratum[stratum].append(patient)
    names, cuts = list(fractions), np.cumsum(list(fractions.values()))
    place: dict[str, str] = {}
    for members in by_stratum.values():
        ordered = sorted(members, key=lambda p: _rank(seed, p))
        bounds = [round(c * len(ordered)) for c in cuts]
        start = 0
        for name, stop in zip(names, bounds, strict=True):
            for p in ordered[start:stop]:
                place[p] = name
            start = stop
        for p in ordered[start:]:  # float rounding of the last cut
            place[p] = names[-1]
    return [place[p] for p in patients]


def _keys(sample_id: str, image: Path) -> set[str]:
    return {sample_id, Path(sample_id).name, Path(sample_id).stem, image.name, image.stem}


def _read_entries(path: Path) -> list[tuple[str, list[str]]]:
    """(split, fields) per listed image, from a split CSV or a folder of per-split text files."""
    entries: list[tuple[str, list[str]]] = []
    if path.is_dir():
        for file in sorted(path.glob("*.txt")):
            split = SPLIT_NAMES.get(file.stem.lower())  # BenchX's train_1.txt / train_10.txt are train subsets
            if split is not None:
                entries += [(split, line.split()) for line in read_text_lines(file)]
        if not entries:
            raise LabelFileError(f"split folder {path} has no train.txt / val.txt / test.txt")
        return entries
    rows = read_rows(path, ["split"], what="split file")
    column = next((c for c in (rows[0] if rows else {}) if c != "split"), None)
    if column is None:
        raise LabelFileError(f"split file {path} needs an image column beside 'split'")
    for r in rows:
        split = SPLIT_NAMES.get(r["split"].lower())
        if split is None:
            raise LabelFileError(f"split file {path}: unknown split {r['split']!r}; use train, val or test")
        entries.append((split, [r[column]]))
    return entries


def read_split_file(
    path: Path,
    sample_ids: Sequence[str],
    images: Sequence[Path],
    aliases: Sequence[Sequence[str]] | None = None,
    hint: str = "",
) -> list[str | None]:
    """The split of each row from a published split list; ``None`` for rows it does not list.

    ``path`` is a CSV (``.csv`` / ``.csv.gz``) with a ``split`` column and one column naming the image, or a
    folder of ``train.txt`` / ``val.txt`` (``valid``, ``dev``) / ``test.txt`` with one image per line, as BenchX
    ships them (``preprocess/datasets/NAME/``; its ``train_1.txt`` / ``train_10.txt`` subsets are not read).
    An image is named by its sample id, file name or file stem, or by one of its ``aliases``: names a loader
    knows a published list uses for it (BenchX's COVIDx ``split/STEM.png``, its SIIM PNG names). An alias may
    name several images (BenchX's COVIDx names cut at the first dot: ``val/CR.png``); an entry naming it places
    all of them. On a line of several fields the first field that names an image is used (COVIDx's
    ``patient file class source``). A listed image the dataset does not have is an error naming it, followed
    by ``hint``.
    """
    path = Path(path).expanduser()
    index: dict[str, int | None] = {}
    for i, (sid, image) in enumerate(zip(sample_ids, images, strict=True)):
        for key in _keys(sid, image):
            index[key] = i if index.get(key, i) == i else None  # None: the key names two images
    alias_index: dict[str, list[int]] = defaultdict(list)
    for i, names in enumerate(aliases or ()):
        for name in dict.fromkeys(names):
            alias_index[name].append(i)

    def lookup(field: str) -> tuple[str, list[int] | None] | None:
        for key in (field, Path(field).name):
            if index.get(key) is not None:
                return key, [index[key]]  # type: ignore[list-item]
        if field in alias_index:
            return field, alias_index[field]
        for key in (field, Path(field).name):
            if key in index:
                return key, None
        return None

    out: list[str | None] = [None] * len(sample_ids)
    unknown, ambiguous, twice = [], [], []
    for split, fields in _read_entries(path):
        hit = next((h for h in map(lookup, fields) if h is not None), None)
        if hit is None:
            unknown.append(" ".join(fields))
            continue
        key, rows = hit
        if rows is None:
            ambiguous.append(key)
            continue
        for row in rows:
            if out[row] is not None and out[row] != split:
                twice.append(key)
            else:
                out[row] = split
    for problem, items in (
        ("names images that are not in the dataset (or were filtered out, e.g. by ?views=)", unknown),
        ("names images ambiguously (a name shared by two images; use their sample ids)", ambiguous),
        ("puts images in two splits", twice),
    ):
        if items:
            shown = ", ".join(items[:SHOWN]) + (f" ... and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
            more = f". {hint}" if hint and items is unknown else ""
            raise LabelFileError(f"split file {path} {problem}: {len(items)} entries: {shown}{more}")
    return out


def split_counts(splits: Sequence[str | None]) -> dict[str, int]:
    return dict(Counter(s for s in splits if s is not None))
