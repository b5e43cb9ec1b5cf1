"""Image files listed in a table: ``folder:DIR`` (labels.csv), ``nih:DIR`` (ChestX-ray14), ``chexpert:DIR``."""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DatasetFormatError
from .base import SPLIT_NAMES, ImageDataset, Task
from .images import CorruptImageError, read_image
from .npz import DatasetNotFoundError

UncertainPolicy = Literal["ignore", "zeros", "ones"]
NIH_LABELS = [
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
]
CHEXPERT_LABELS = [
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
VAL_FRACTION = 0.1
MISSING_SHOWN = 10  # missing files named in the error; the rest are counted
TEXT_COLUMNS = ("text", "report")
"""Free-text columns of a folder dataset (image-text training, e.g. ACE-LoRA); never label columns."""
_RESERVED = {"path", "split", "label", "label_name", "id", "patient_id", *TEXT_COLUMNS}


@dataclass
class SplitTable:
    paths: list[Path]
    labels: np.ndarray
    ids: list[str]
    texts: list[str] | None = None


class TableDataset(ImageDataset):
    """Images on disk, one row per sample. ``read`` decodes in parallel threads.

    ``skip_corrupt=False`` (default): a file that cannot be decoded raises ``CorruptImageError`` naming it.
    ``skip_corrupt=True``: ``read`` returns ``None`` in its place and the embedding engine drops and counts it.
    """

    def __init__(
        self,
        spec: str,
        root: Path,
        tables: dict[str, SplitTable],
        task: Task,
        label_names: list[str],
        *,
        skip_corrupt: bool = False,
        extra: dict | None = None,
        threads: int = 4,
        check_files: bool = True,
    ) -> None:
        self.spec, self.root, self.tables, self.task, self.label_names = spec, root, tables, task, label_names
        self.splits = tuple(s for s in ("train", "val", "test") if s in tables and tables[s].ids) + tuple(
            s for s in tables if s not in ("train", "val", "test") and tables[s].ids
        )
        self.skip_corrupt = skip_corrupt
        self.extra = extra or {}
        self._pool = ThreadPoolExecutor(max_workers=threads)
        if check_files and not skip_corrupt:  # check_files=False: a relabelled copy of a checked dataset
            self._check_files_exist()

    def _check_files_exist(self) -> None:
        """Every listed file must exist before any work starts (one ``stat`` per file, in threads); the
        error lists the missing ones. With ``skip_corrupt`` they are dropped and counted instead."""
        paths = [(split, path) for split, table in self.tables.items() for path in table.paths]
        chunks = [paths[i : i + 1024] for i in range(0, len(paths), 1024)]
        found = self._pool.map(lambda chunk: [os.path.isfile(path) for _, path in chunk], chunks)
        missing = [
            entry for chunk, ok in zip(chunks, found, strict=True) for entry, o in zip(chunk, ok, strict=True) if not o
        ]
        if missing:
            shown = "\n  ".join(f"{split}: {path}" for split, path in missing[:MISSING_SHOWN])
            more = f"\n  ... and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
            raise DatasetNotFoundError(
                f"{self.spec}: {len(missing)} of the {len(paths)} listed image files do not exist:\n  {shown}{more}\n"
                f"Fix those paths (relative to {self.root}) or remove their rows; or add ?skip_corrupt=1 to the "
                "dataset spec to skip them (they are then listed in the embeddings' metadata['skipped'])."
            )

    def num_samples(self, split: str) -> int:
        self.check_split(split)
        return len(self.tables[split].ids)

    def labels(self, split: str) -> np.ndarray:
        self.check_split(split)
        return self.tables[split].labels

    def sample_ids(self, split: str) -> list[str]:
        self.check_split(split)
        return self.tables[split].ids

    def texts(self, split: str) -> list[str] | None:
        """The ``text`` (or ``report``) column of ``labels.csv`` for ``split``, or ``None`` without one."""
        self.check_split(split)
        return self.tables[split].texts

    def read(self, split: str, start: int, stop: int) -> np.ndarray | list[np.ndarray | None]:
        self.check_split(split)
        images = list(self._pool.map(self._read_one, self.tables[split].paths[start:stop]))
        if all(im is not None for im in images) and len({(im.shape, im.dtype) for im in images}) == 1:
            return np.stack(images)
        return images

    def _read_one(self, path: Path) -> np.ndarray | None:
        try:
            return read_image(path)
        except CorruptImageError:
            if self.skip_corrupt:
                return None
            raise

    def fingerprint(self, split: str) -> str:
        """Labels plus, for every image, its path, size, mtime, ctime and inode (not its bytes: a split can be
        hundreds of GB). Rewriting a file changes its ctime even when its size and mtime are restored."""
        table = self.tables[split]
        digest = hashlib.sha256(f"{self.spec}|{split}|{self.extra}".encode())
        digest.update(np.ascontiguousarray(np.nan_to_num(table.labels, nan=-7.0)).tobytes())
        for path in table.paths:
            try:
                stat = path.stat()
                digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_ino}\n".encode())
            except OSError:
                digest.update(f"{path}|missing\n".encode())
        return digest.hexdigest()

    def describe(self) -> dict:
        return {**super().describe(), "root": str(self.root), **self.extra}


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} not found")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _patient_val_split(patients: list[str], seed: int = 0) -> set[str]:
    """A reproducible ``VAL_FRACTION`` of patients (never images) held out of train for validation."""
    unique = sorted(set(patients))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(unique), size=max(1, round(VAL_FRACTION * len(unique))), replace=False)
    return {unique[i] for i in chosen}


def open_folder(
    root: str | os.PathLike[str], *, csv_name: str = "labels.csv", skip_corrupt: bool = False
) -> TableDataset:
    """``DIR/labels.csv`` with ``path`` and ``split`` columns and either a ``label`` column (single-label; names
    from ``label_name`` when present) or one 0/1 column per label (multi-label; blank = 0, -1 = unknown)."""
    root = Path(root).expanduser()
    rows = _read_csv(root / csv_name)
    if not rows:
        raise DatasetNotFoundError(f"{root / csv_name} has no rows")
    columns = list(rows[0])
    for required in ("path", "split"):
        if required not in columns:
            raise ValueError(f"{root / csv_name} needs a {required!r} column; it has {columns}")
    where = str(root / csv_name)
    _check_split_names([r["split"] for r in rows], where)
    _check_unique_paths([r["path"] for r in rows], where)
    if "label" in columns:
        raw = [r["label"].strip() for r in rows]
        codes, label_names = _label_codes(raw, [r.get("label_name") for r in rows], where)
        labels = np.asarray(codes, dtype=np.int64)
        task: Task = "binary" if len(label_names) <= 2 else "multi-class"
    else:
        label_names = [c for c in columns if c not in _RESERVED]
        if not label_names:
            raise ValueError(f"{root / csv_name} has neither a 'label' column nor label columns")
        labels = np.array([[_binary(r[c], "ignore") for c in label_names] for r in rows], dtype=np.float32)
        task = "multi-label"
    text_column = next((c for c in TEXT_COLUMNS if c in columns), None)
    tables = _tables_by_split(root, rows, labels, [r["path"] for r in rows], text_column)
    return TableDataset(f"folder:{root}", root, tables, task, label_names, skip_corrupt=skip_corrupt)


def _label_codes(raw: list[str], names: list[str | None], where: str) -> tuple[list[int], list[str]]:
    """A ``label`` column as class indices and names: all non-negative integers (names from ``label_name``), or
    all names (classes in sorted order). A blank, a negative number, or integers mixed with names is refused."""
    blank = [i for i, v in enumerate(raw) if not v]
    if blank:
        raise DatasetFormatError(f"{where}: empty 'label' on lines {_shown(blank)}; every row needs a label")
    numeric = [i for i, v in enumerate(raw) if _is_int(v)]
    if numeric and len(numeric) < len(raw):
        named = [i for i, v in enumerate(raw) if not _is_int(v)]
        raise DatasetFormatError(
            f"{where}: the 'label' column mixes integers (lines {_shown(numeric)}) and names (lines {_shown(named)}, "
            f"e.g. {raw[named[0]]!r}); use class indices 0, 1, ... throughout (names in 'label_name') or names only"
        )
    if not numeric:
        label_names = sorted(set(raw))
        return [label_names.index(v) for v in raw], label_names
    codes = [int(v) for v in raw]
    negative = [i for i, c in enumerate(codes) if c < 0]
    if negative:
        raise DatasetFormatError(
            f"{where}: negative 'label' on lines {_shown(negative)}; classes are 0, 1, 2, ... (drop unlabelled rows)"
        )
    names_by_code = {c: (n or str(c)) for c, n in zip(codes, names, strict=True)}
    return codes, [names_by_code.get(i, str(i)) for i in range(max(codes) + 1)]


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _check_unique_paths(paths: list[str], where: str) -> None:
    first: dict[str, int] = {}
    repeated: list[str] = []
    for row, path in enumerate(paths):
        key = str(Path(path))
        if key in first:
            repeated.append(f"{path!r} on lines {first[key] + 2} and {row + 2}")
        else:
            first[key] = row
    if repeated:
        raise DatasetFormatError(
            f"{where}: {len(repeated)} image path(s) listed twice ({'; '.join(repeated[:3])}); one row per image"
        )


def _check_split_names(names: list[str], where: str) -> None:
    bad: dict[str, list[int]] = {}
    for row, name in enumerate(names):
        if name not in SPLIT_NAMES:
            bad.setdefault(name, []).append(row)
    if bad:
        shown = "; ".join(f"{name!r} on lines {_shown(rows)}" for name, rows in bad.items())
        raise DatasetFormatError(f"{where}: unknown split name(s) {shown}; a split is one of {list(SPLIT_NAMES)}")


def _shown(rows: list[int]) -> str:
    """0-based data rows as the file's line numbers (the header is line 1)."""
    lines = [str(r + 2) for r in rows[:5]]
    return ", ".join(lines) + (f", ... ({len(rows)} in all)" if len(rows) > 5 else "")


def _tables_by_split(
    root: Path, rows, labels: np.ndarray, ids: list[str], text_column: str | None = None
) -> dict[str, SplitTable]:
    tables: dict[str, SplitTable] = {}
    splits = np.array([r["split"] for r in rows])
    for split in dict.fromkeys(splits):
        index = np.flatnonzero(splits == split)
        texts = [rows[i][text_column] or "" for i in index] if text_column else None
        tables[str(split)] = SplitTable(
            [root / rows[i]["path"] for i in index], labels[index], [ids[i] for i in index], texts
        )
    return tables


Row = tuple[Path, np.ndarray, str]  # image path, label vector, sample id


def _tables_from_rows(grouped: dict[str, list[Row]], width: int) -> dict[str, SplitTable]:
    return {
        split: SplitTable(
            [row[0] for row in rows],
            np.stack([row[1] for row in rows]) if rows else np.zeros((0, width), np.float32),
            [row[2] for row in rows],
        )
        for split, rows in grouped.items()
    }


def _binary(value: str, uncertain: UncertainPolicy) -> float:
    value = value.strip()
    if value in ("", "0", "0.0"):
        return 0.0
    if value in ("1", "1.0"):
        return 1.0
    if value in ("-1", "-1.0"):
        return {"ignore": float("nan"), "zeros": 0.0, "ones": 1.0}[uncertain]
    raise ValueError(f"label value {value!r} is not one of 1, 0, -1 or blank")


def open_nih(
    root: str | os.PathLike[str], *, skip_corrupt: bool = False, split_file: str | os.PathLike[str] | None = None
) -> TableDataset:
    """NIH ChestX-ray14: ``Data_Entry_2017*.csv``, ``train_val_list.txt``, ``test_list.txt``, PNGs under ``DIR``
    (any ``images*/`` layout). 14 findings, multi-label; "No Finding" is all zeros. Validation: 10% of the
    train_val patients (seed 0), so no patient is in two splits. ``split_file``: a published split instead
    (``read_split_file``; BenchX's ``NIH_Chest_Xray/{train,val,test}.txt``, MRM's split, list Image Index names);
    unlisted images are dropped and counted."""
    root = Path(root).expanduser()
    entries = sorted(root.glob("Data_Entry_2017*.csv"))
    if not entries:
        raise DatasetNotFoundError(f"{root} has no Data_Entry_2017*.csv: is it the NIH ChestX-ray14 folder?")
    rows = _read_csv(entries[0])
    lists = {}
    for split, name in (("train", "train_val_list.txt"), ("test", "test_list.txt")):
        path = root / name
        if not path.is_file():
            raise DatasetNotFoundError(f"{path} not found (the official split lists ship with ChestX-ray14)")
        lists[split] = set(path.read_text().split())
    files = {p.name: p for p in root.rglob("*.png")}
    val_patients = _patient_val_split([r["Patient ID"] for r in rows if r["Image Index"] in lists["train"]])
    published: list[str | None] = []
    if split_file is not None:
        from .cxr.splits import read_split_file  # here: the cxr loaders import this module

        names = [r["Image Index"] for r in rows]
        published = read_split_file(Path(split_file).expanduser(), names, [files.get(n, root / n) for n in names])
    grouped: dict[str, list[Row]] = {"train": [], "val": [], "test": []}
    for k, r in enumerate(rows):
        name = r["Image Index"]
        split = "test" if name in lists["test"] else ("train" if name in lists["train"] else None)
        if split == "train" and r["Patient ID"] in val_patients:
            split = "val"
        if split_file is not None:
            split = published[k]
        if split is None:
            continue
        if name not in files:
            raise DatasetNotFoundError(f"{name} is listed in {entries[0].name} but not found under {root}")
        findings = set(r["Finding Labels"].split("|"))
        unknown = findings - set(NIH_LABELS) - {"No Finding"}
        if unknown:
            raise ValueError(f"{name}: unknown finding(s) {sorted(unknown)}")
        grouped[split].append((files[name], np.array([f in findings for f in NIH_LABELS], np.float32), name))
    tables = _tables_from_rows(grouped, len(NIH_LABELS))
    return TableDataset(
        f"nih:{root}",
        root,
        tables,
        "multi-label",
        list(NIH_LABELS),
        skip_corrupt=skip_corrupt,
        extra={"val": "10% of train_val patients, seed 0"}
        if split_file is None
        else {"split": f"split file {split_file}", "unlisted_images_dropped": published.count(None)},
    )


def open_chexpert(
    root: str | os.PathLike[str],
    *,
    uncertain: UncertainPolicy = "ignore",
    frontal_only: bool = True,
    skip_corrupt: bool = False,
) -> TableDataset:
    """CheXpert (``train.csv``, ``valid.csv``): 14 observations, multi-label.

    ``uncertain`` (-1 labels): ``ignore`` keeps them as NaN (masked by the probes), ``zeros`` / ``ones`` are the
    U-Zeros / U-Ones policies. Blank = negative. ``frontal_only`` keeps frontal views. Splits: ``valid.csv`` is the
    test split; validation is 10% of the train patients (seed 0).
    """
    if uncertain not in ("ignore", "zeros", "ones"):
        raise ValueError(f"uncertain must be 'ignore', 'zeros' or 'ones', got {uncertain!r}")
    root = Path(root).expanduser()
    sources = {"train": _read_csv(root / "train.csv"), "test": _read_csv(root / "valid.csv")}
    missing = [c for c in CHEXPERT_LABELS + ["Path"] if c not in sources["train"][0]]
    if missing:
        raise ValueError(f"{root / 'train.csv'} lacks CheXpert columns {missing}")
    patient = lambda p: next((part for part in Path(p).parts if part.startswith("patient")), p)  # noqa: E731
    val_patients = _patient_val_split([patient(r["Path"]) for r in sources["train"]])
    grouped: dict[str, list[Row]] = {"train": [], "val": [], "test": []}
    for source_split, rows in sources.items():
        for r in rows:
            if frontal_only and r.get("Frontal/Lateral", "Frontal") != "Frontal":
                continue
            split = "val" if source_split == "train" and patient(r["Path"]) in val_patients else source_split
            labels = np.array([_binary(r[c], uncertain) for c in CHEXPERT_LABELS], np.float32)
            grouped[split].append((_chexpert_path(root, r["Path"]), labels, r["Path"]))
    tables = _tables_from_rows(grouped, len(CHEXPERT_LABELS))
    return TableDataset(
        f"chexpert:{root}",
        root,
        tables,
        "multi-label",
        list(CHEXPERT_LABELS),
        skip_corrupt=skip_corrupt,
        extra={
            "uncertain": uncertain,
            "frontal_only": frontal_only,
            "val": "10% of train patients, seed 0",
            "test": "valid.csv",
        },
    )


def _chexpert_path(root: Path, listed: str) -> Path:
    """CSV paths start with the release folder name (``CheXpert-v1.0-small/train/...``)."""
    direct = root.parent / listed
    return direct if direct.exists() else root / Path(*Path(listed).parts[1:])
