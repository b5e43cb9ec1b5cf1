"""The wheel must carry every subpackage: pyproject lists them explicitly (adapters/ and probes/ are mapped)."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = {name: ROOT / folder for name, folder in config["package-dir"].items()}
    found = {
        "encoderzoo." + p.parent.relative_to(ROOT / "encoderzoo").as_posix().replace("/", ".")
        for p in (ROOT / "encoderzoo").rglob("__init__.py")
        if p.parent != ROOT / "encoderzoo"
    }
    found |= {"encoderzoo"} | set(mapped)
    assert found == listed, f"pyproject packages missing {sorted(found - listed)}, stale {sorted(listed - found)}"
    assert all((folder / "__init__.py").is_file() for folder in mapped.values())


def test_adapters_and_probes_import_under_encoderzoo():
    import encoderzoo.adapters
    import encoderzoo.probes

    assert Path(encoderzoo.probes.__file__).parent == ROOT / "probes"
    assert Path(encoderzoo.adapters.__file__).parent == ROOT / "adapters"
