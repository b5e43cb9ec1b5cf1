"""A paper's published figures beside ours: the ``published = "FILE.json"`` field of a suite.

A published-figures file (shipped ones live in ``encoderzoo/benchmark/published/``) holds, for one encoder, the
test figures a paper reports, exactly as it writes them (``"88.79±0.04"``, in ``unit``), where they were read
(``source``), and which of our probe entries each column corresponds to (``columns``: the paper's column name ->
our ``probe`` path and ``metric``). ``dataset`` turns the paper's dataset and size into our dataset spec
(``medmnist:{dataset}@{size}``).

``compare`` pairs each published figure with the leaderboard's metric entry for the same encoder, dataset, probe
and metric: the paper's mean and std, our mean and 95% interval, the difference, and whether the paper's mean
lies inside our interval. Figures whose cell the suite does not hold are left out; cells the suite holds but has
not finished are listed as ``pending`` (so a reader sees what is still unmeasured).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from .suite import SuiteError

PUBLISHED_FOLDER = "published"
_FIGURE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:±\s*(\d+(?:\.\d+)?))?\s*$")
_UNITS = {"percent": 100.0, "fraction": 1.0}
_REQUIRED = ("title", "citation", "source", "unit", "encoder", "dataset", "columns", "figures")


def shipped() -> list[str]:
    """File names of the published-figures files shipped with encoderzoo."""
    folder = resources.files("encoderzoo.benchmark") / PUBLISHED_FOLDER
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".json"))


def read(name: str) -> dict[str, Any]:
    """A published-figures file: a shipped name (``medmnist_plus_dino_vitb16.json``) or a path. Checked: every
    field, and every figure parses."""
    if name in shipped():
        text = (resources.files("encoderzoo.benchmark") / PUBLISHED_FOLDER / name).read_text(encoding="utf-8")
        origin = f"published:{name}"
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise SuiteError(
                f"published figures {name!r}: neither a shipped file ({', '.join(shipped())}) nor a file at {path}"
            )
        text, origin = path.read_text(encoding="utf-8"), str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SuiteError(f"published figures {origin} are not valid JSON: {err}") from err
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise SuiteError(f"published figures {origin} lack {missing}")
    if data["unit"] not in _UNITS:
        raise SuiteError(f"published figures {origin}: unit {data['unit']!r} is not one of {sorted(_UNITS)}")
    for dataset, sizes in data["figures"].items():
        for size, row in sizes.items():
            unknown = sorted(set(row) - set(data["columns"]))
            if unknown:
                raise SuiteError(f"published figures {origin}: {dataset}@{size} has columns {unknown} not in columns")
            for column, text in row.items():
                parse_figure(text, f"{origin}: {dataset}@{size} {column}")
    return {**data, "origin": origin}


def parse_figure(text: str, where: str = "figure") -> tuple[float, float | None]:
    """``"88.79±0.04"`` -> ``(88.79, 0.04)``; ``"85.24"`` -> ``(85.24, None)``."""
    match = _FIGURE.match(str(text))
    if not match:
        raise SuiteError(f"{where}: {text!r} is not a figure like 88.79±0.04 or 85.24")
    mean, std = match.groups()
    return float(mean), float(std) if std is not None else None


def compare(published: dict[str, Any], cells: list[dict], metrics: list[dict]) -> dict[str, Any]:
    """The published figures beside the leaderboard's ``cells`` and ``metrics`` (both as ``leaderboard.build``
    makes them), every value as a fraction (our metrics' scale)."""
    scale = _UNITS[published["unit"]]
    encoder = published["encoder"]
    status = {c["dataset"]: c["status"] for c in cells if c["encoder"] == encoder}
    ours = {(m["dataset"], m["probe"], m["metric"]): m for m in metrics if m["encoder"] == encoder}
    rows = []
    for dataset, sizes in published["figures"].items():
        for size, row in sizes.items():
            spec = published["dataset"].format(dataset=dataset, size=size)
            if spec not in status:
                continue
            for column, text in row.items():
                probe, metric = published["columns"][column]["probe"], published["columns"][column]["metric"]
                mean, std = parse_figure(text)
                record: dict[str, Any] = {
                    "dataset": spec,
                    "column": column,
                    "probe": probe,
                    "metric": metric,
                    "paper": mean / scale,
                    "paper_std": std / scale if std is not None else None,
                }
                entry = ours.get((spec, probe, metric))
                if entry is None:
                    record.update(status=status[spec] if status[spec] != "done" else "not in results", ours=None)
                else:
                    ci = entry.get("ci95")
                    inside = bool(ci and None not in ci and ci[0] <= record["paper"] <= ci[1])
                    record.update(
                        status="done",
                        ours=entry["mean"],
                        ours_ci95=ci,
                        difference=entry["mean"] - record["paper"],
                        paper_inside_ci=inside,
                    )
                rows.append(record)
    return {
        "title": published["title"],
        "citation": published["citation"],
        "source": published["source"],
        "encoder": encoder,
        "origin": published["origin"],
        "rows": rows,
    }


HEADER = ("dataset", "paper's column", "paper", "ours [95% CI]", "ours − paper", "paper in our CI")
"""The columns of the "paper vs ours" table (``leaderboard.md`` and ``report.html``)."""


def row_cells(row: dict[str, Any]) -> list[str]:
    """One comparison row as the table's text cells (``HEADER``): pending cells show their status."""
    paper = f"{row['paper']:.4f}" + (f" ± {row['paper_std']:.4f}" if row["paper_std"] is not None else "")
    if row["status"] != "done":
        return [row["dataset"], row["column"], paper, row["status"], "–", "–"]
    ci = row["ours_ci95"]
    interval = f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci and None not in ci else ""
    inside = "yes" if row["paper_inside_ci"] else "no"
    return [row["dataset"], row["column"], paper, f"{row['ours']:.4f}{interval}", f"{row['difference']:+.4f}", inside]


def markdown(section: dict[str, Any]) -> str:
    """The "paper vs ours" table of ``leaderboard.md`` (empty when the suite holds none of the paper's cells)."""
    if not section["rows"]:
        return (
            f"The published figures ({section['title']}) are for `{section['encoder']}`, which this run does not "
            "include.\n"
        )
    lines = [
        f"## Paper vs ours: {section['title']}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for row in section["rows"]:
        dataset, *rest = row_cells(row)
        lines.append("| " + " | ".join([f"`{dataset}`", *rest]) + " |")
    source = section["source"]
    lines += [
        "",
        f"Paper: {section['citation']} Figures from {source['repository']}@{source['commit'][:7]} "
        f"{source['files']}, {source['rows']}; {source['how']}. The paper's ± is the std over its seeds; ours is a "
        "95% bootstrap interval over test images.",
    ]
    return "\n".join(lines) + "\n"
