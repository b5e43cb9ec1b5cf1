"""Object-CXR, MIDL 2020 foreign-object challenge (``object-cxr:DIR``).

Licence and access: released by JF Healthcare for the challenge, free download, non-commercial research use.
Overlaps: none with the other sets here.

Layout: ``train.csv``, ``dev.csv`` (and ``test.csv`` where present) with ``image_name`` and ``annotation`` (the
objects' boxes / ellipses / polygons; empty when the image has none) and the images, unzipped, in ``train/``,
``dev/``, ``test/``. Label: foreign object present = a non-empty annotation. Split: official — train / dev / test
as val / test when ``test.csv`` ships; otherwise dev is the test split and val is 10% of train, seeded.
"""

from __future__ import annotations

from pathlib import Path

from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import read_rows

LABELS = ["no foreign object", "foreign object"]
SPECIFIC: dict[str, str] = {}


def open_object_cxr(root: Path, options: CxrOptions) -> TableDataset:
    has_test = (root / "test.csv").is_file()
    roles = {"train": "train", "dev": "val" if has_test else "test", **({"test": "test"} if has_test else {})}
    records = []
    for source, split in roles.items():
        for r in read_rows(root / f"{source}.csv", ["image_name", "annotation"], what="Object-CXR labels"):
            records.append(
                Record(
                    image=root / source / r["image_name"],
                    sample_id=f"{source}/{r['image_name']}",
                    patient=f"{source}/{r['image_name']}",
                    label=int(bool(r["annotation"])),
                    split=split,
                )
            )
    extra = {
        "label": "foreign object = non-empty annotation",
        "splits_from": "train / dev / test csv" if has_test else "train.csv (val cut from it) / dev.csv as test",
        "licence": "JF Healthcare object-CXR, non-commercial research",
    }
    return assemble(f"object-cxr:{root}", root, records, list(LABELS), "binary", options, extra)
