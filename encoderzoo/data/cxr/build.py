"""What every CXR loader shares: one record per image, the spec options, view filtering, splits, assembly."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base import Task
from ..table import SplitTable, TableDataset
from .splits import read_split_file, seeded_split, split_counts

FRONTAL = ("PA", "AP", "AP HORIZONTAL", "AP SUPINE")
"""View names (upper case, ``_`` as space) counted as frontal: MIMIC ``ViewPosition``, PadChest ``Projection``,
the DICOM ViewPosition tag."""
SEEDED = {"train": 0.70, "val": 0.15, "test": 0.15}
VAL_FROM_TRAIN = 0.10


@dataclass
class Record:
    """One image: its file, sample id, patient, label (class index, or a float vector with NaN unknown),
    the official split (``None`` where the dataset has none), the view (``None`` where not recorded) and other
    names a published split list may give the image (``aliases``, see ``read_split_file``)."""

    image: Path
    sample_id: str
    patient: str
    label: int | np.ndarray
    split: str | None = None
    view: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass
class CxrOptions:
    """The ``?key=value`` options every CXR spec takes (dataset-specific ones live in ``specific``)."""

    seed: int = 0
    split_file: Path | None = None
    views: str | None = None  # None: the default (frontal where views are recorded)
    skip_corrupt: bool = False
    specific: dict[str, str] = field(default_factory=dict)

    @classmethod
    def pop(cls, options: dict[str, str], specific: dict[str, str]) -> CxrOptions:
        """Take the common options and the dataset's ``specific`` ones (name -> default) out of ``options``."""
        seed = options.pop("seed", "0")
        if not seed.isdigit():
            raise ValueError(f"option seed={seed!r}: use a non-negative integer")
        skip = options.pop("skip_corrupt", "0").lower()
        if skip not in ("0", "1", "true", "false", "yes", "no"):
            raise ValueError(f"option skip_corrupt={skip!r}: use 1 or 0")
        split_file = options.pop("split_file", None)
        return cls(
            seed=int(seed),
            split_file=Path(split_file).expanduser() if split_file else None,
            views=options.pop("views", None),
            skip_corrupt=skip in ("1", "true", "yes"),
            specific={k: options.pop(k, default) for k, default in specific.items()},
        )


def _norm_view(view: str) -> str:
    return view.replace("_", " ").strip().upper()


def filter_views(spec: str, records: list[Record], views: str | None) -> tuple[list[Record], dict]:
    """Frontal views only by default where the dataset records views; ``views=all`` keeps every image;
    ``views=PA,AP`` keeps those. A view recorded blank (``""``: MIMIC metadata) is dropped by any filter, it
    cannot be shown to be frontal. A view not recorded for that image (``None``: no DICOM ViewPosition tag) is
    kept by the default, since the view is not known, and dropped by an explicit list; an image whose file is
    missing is always kept, so that the open-time check names it. Datasets without any view record refuse an
    explicit filter."""
    if views == "all":
        return records, {"views": "all"}
    recorded = any(r.view is not None for r in records)
    if not recorded:
        if views is not None:
            raise ValueError(f"{spec}: this layout records no view per image, so ?views={views} cannot apply")
        return records, {"views": "not recorded in this layout (all images kept)"}
    choice = "frontal" if views is None else views
    wanted = set(FRONTAL) if choice == "frontal" else {_norm_view(v) for v in choice.split(",") if v.strip()}

    def keep(r: Record) -> bool:
        if r.view is None:
            return views is None or not r.image.is_file()
        return _norm_view(r.view) in wanted

    decisions = [keep(r) for r in records]
    kept = [r for r, k in zip(records, decisions, strict=True) if k]
    dropped = Counter(
        "(unknown)" if r.view is None else _norm_view(r.view) or "(blank)"
        for r, k in zip(records, decisions, strict=True)
        if not k
    )
    if not kept:
        raise ValueError(f"{spec}: no image has a view in {sorted(wanted)} (views present: {dict(dropped)})")
    info = {"kept": sorted(wanted), "dropped": dict(sorted(dropped.items()))}
    unknown = sum(r.view is None for r in kept)
    if unknown:
        info["view_not_recorded_kept"] = unknown
    return kept, {"views": info}


def assign_splits(
    spec: str, records: list[Record], options: CxrOptions, split_hint: str = ""
) -> tuple[list[str | None], dict]:
    """Split per record: a published list (``?split_file=``; ``split_hint`` follows its unknown-image error),
    else the official split, with val cut from train (10% of patients) when the dataset has none, else a seeded
    70/15/15 patient-level stratified split."""
    if options.split_file is not None:
        splits = read_split_file(
            options.split_file,
            [r.sample_id for r in records],
            [r.image for r in records],
            [r.aliases for r in records],
            split_hint,
        )
        info = {"split": f"split file {options.split_file}", "unlisted_images_dropped": splits.count(None)}
        return splits, info
    labels = np.stack([np.asarray(r.label) for r in records])
    official = [r.split for r in records]
    if all(s is not None for s in official):
        if "val" in official or "train" not in official:  # nothing to cut a val split from
            return list(official), {"split": "official"}
        train = [i for i, s in enumerate(official) if s == "train"]
        cut = seeded_split(
            [records[i].patient for i in train],
            labels[train],
            {"train": 1 - VAL_FROM_TRAIN, "val": VAL_FROM_TRAIN},
            options.seed,
        )
        out = list(official)
        for i, s in zip(train, cut, strict=True):
            out[i] = s
        return out, {
            "split": f"official; val = {VAL_FROM_TRAIN:.0%} of the official train patients, stratified, seeded",
            "seed": options.seed,
        }
    splits = seeded_split([r.patient for r in records], labels, SEEDED, options.seed)
    return list(splits), {
        "split": "seeded, patient-level, stratified " + "/".join(f"{v:.0%}" for v in SEEDED.values()),
        "seed": options.seed,
        "hash": "sha256(seed|patient)",
    }


def assemble(
    spec: str,
    root: Path,
    records: list[Record],
    label_names: list[str],
    task: Task,
    options: CxrOptions,
    extra: dict,
    split_hint: str = "",
) -> TableDataset:
    """Filter views, assign splits and build the ``TableDataset`` (which checks that every image exists)."""
    if not records:
        raise ValueError(f"{spec}: the label files list no images")
    records, view_info = filter_views(spec, records, options.views)
    splits, split_info = assign_splits(spec, records, options, split_hint)
    grouped: dict[str, list[Record]] = defaultdict(list)
    for record, split in zip(records, splits, strict=True):
        if split is not None:
            grouped[split].append(record)
    tables = {}
    for split in ("train", "val", "test"):
        rows = grouped.get(split, [])
        labels = (
            np.array([r.label for r in rows], dtype=np.int64)
            if task != "multi-label"
            else np.stack([r.label for r in rows]).astype(np.float32)
            if rows
            else np.zeros((0, len(label_names)), np.float32)
        )
        tables[split] = SplitTable([r.image for r in rows], labels, [r.sample_id for r in rows])
    patients = {s: {r.patient for r in rows} for s, rows in grouped.items()}
    shared = sorted({p for a in patients for b in patients if a < b for p in patients[a] & patients[b]})
    info = {**extra, **view_info, **split_info, "split_sizes": split_counts(splits)}
    if shared:
        info["patients_in_two_splits"] = len(shared)
    return TableDataset(spec, root, tables, task, label_names, skip_corrupt=options.skip_corrupt, extra=info)
