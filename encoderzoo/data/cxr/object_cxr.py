"""Object-CXR, MIDL 2020 foreign-object challenge (``object-cxr:DIR``).

Licence and access: released by JF Healthcare for the MIDL 2020 challenge, free download (academictorrents);
the terms are JF Healthcare's (object-CXR site): research use. Overlaps: none with the other sets here.

Layout: ``train.csv``, ``dev.csv`` (and ``test.csv`` where present) with ``image_name`` (the challenge page
spells it ``image_path``, a path whose file name is used) and ``annotation`` (the objects' boxes / ellipses /
polygons; empty when the image has none) and the images, unzipped, in ``train/``,
``dev/``, ``test/``. Label: foreign object present = a non-empty annotation. Split: official — train / dev / test
as val / test when ``test.csv`` ships; otherwise dev is the test split and val is 10% of train, seeded.
"""

from __future__ import annotations

from pathlib import Path

from ..table import TableDataset
from .build import CxrOptions, Record, assemble
from .files import LabelFileError, read_rows

LABELS = ["no foreign object", "foreign object"]
SPECIFIC: dict[str, str] = {}


def open_object_cxr(root: Path, options: CxrOptions) -> TableDataset:
    has_test = (root / "test.csv").is_file()
    roles = {"train": "train", "dev": "val" if has_test else "test", **({"test": "test"} if has_test else {})}
    records = []
    for source, split in roles.items():
        rows = read_rows(root / f"{source}.csv", ["annotation"], what="Object-CXR labels")
        column = next((c for c in ("image_name", "image_path") if rows and c in rows[0]), None)
        if rows and column is None:
            raise LabelFileError(
                f"{root / source}.csv lacks an image_name (or image_path) column; it has {list(rows[0])}"
            )
        for r in rows:
            name = Path(r[column]).name
            records.append(
                Record(
                    image=root / source / name,
                    sample_id=f"{source}/{name}",
                    patient=f"{source}/{name}",
                    label=int(bool(r["annotation"])),
                    split=split,
                )
            )
    extra = {
        "label": "foreign object = non-empty annotation",
        "splits_from": "train / dev / test csv" if has_test else "train.csv (val cut from it) / dev.csv as test",
        "licence": "JF Healthcare object-CXR challenge terms (research use)",
    }
    return assemble(f"object-cxr:{root}", root, records, list(LABELS), "binary", options, extra)
