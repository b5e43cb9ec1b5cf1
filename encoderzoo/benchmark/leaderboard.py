"""The leaderboard: every cell's metrics in one table, encoders ranked per dataset (ties averaged, as MTEB and
THUNDER rank), and the encoders whose 95% interval overlaps the best one's marked.

``leaderboard.json`` holds the suite, every cell (status, error, results path), every (encoder, dataset, probe,
metric) with mean, std, values and interval, and the ranking for ``rank_by``; ``leaderboard.md`` and
``leaderboard.csv`` are the ranking table (encoders as rows, datasets as columns, then mean and mean rank).

Probe names are the paths of the metric entries in ``results["probes"]``: ``knn``, ``linear``,
``knn/medmnist_plus``, ``fewshot/results/linear/5``, ``curation/budgets/0.1/curated``, ``zeroshot``.
Overlapping intervals are a conservative reading: two non-overlapping 95% intervals differ at well below 5%;
overlapping ones may still differ.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from . import published
from .runner import ERROR_FILE, RESULTS_FILE, cell_dir
from .suite import LOWER_IS_BETTER, ExpandedSuite, parse_rank_by

METRIC_KEYS = {"mean", "std", "values"}


def metric_entries(probes: dict, path: tuple[str, ...] = ()) -> list[tuple[str, str, dict]]:
    """``(probe, metric, entry)`` for every ``{mean, std, values}`` entry under ``results["probes"]``."""
    out = []
    for key, value in probes.items():
        if not isinstance(value, dict):
            continue
        if METRIC_KEYS <= set(value):
            out.append(("/".join(path), str(key), value))
        else:
            out.extend(metric_entries(value, (*path, str(key))))
    return out


def average_ranks(values: list[float], *, lower_is_better: bool = False) -> list[float]:
    """Rank 1 for the highest value (the lowest with ``lower_is_better``); tied values share the mean of the ranks
    they span."""
    order = sorted(range(len(values)), key=lambda i: values[i] if lower_is_better else -values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def build(suite: ExpandedSuite, out: Path, rank_by: str | None = None) -> dict[str, Any]:
    """The leaderboard of whatever cells of ``suite`` are in ``out`` (finished, failed or not yet run)."""
    rank_by = rank_by or suite.rank_by
    probe, metric = parse_rank_by(rank_by)
    cells, metrics = [], []
    versions: dict[str, str] = {}
    for cell in suite.cells():
        folder = cell_dir(out, cell)
        record: dict[str, Any] = {"encoder": cell.encoder, "dataset": cell.dataset, "settings": cell.settings}
        if (folder / RESULTS_FILE).is_file():
            results = json.loads((folder / RESULTS_FILE).read_text())
            versions = versions or results.get("versions", {})
            record.update(status="done", error=None, results=str((folder / RESULTS_FILE).relative_to(out)))
            for p, m, entry in metric_entries(results["probes"]):
                metrics.append(
                    {
                        "encoder": cell.encoder,
                        "dataset": cell.dataset,
                        "probe": p,
                        "metric": m,
                        "mean": entry["mean"],
                        "std": entry["std"],
                        "ci95": entry.get("ci95"),
                        "values": entry["values"],
                    }
                )
        elif (folder / ERROR_FILE).is_file():
            error = json.loads((folder / ERROR_FILE).read_text())["error"]
            record.update(status="failed", error=error, results=None)
        else:
            record.update(status="pending", error=None, results=None)
        cells.append(record)
    board = {
        "suite": suite.to_dict(),
        "rank_by": rank_by,
        "cells": cells,
        "metrics": metrics,
        "ranking": _ranking(suite, cells, metrics, probe, metric),
        "versions": versions,
    }
    if suite.published:
        board["published"] = published.compare(published.read(suite.published), cells, metrics)
    return board


def _ranking(suite: ExpandedSuite, cells: list[dict], metrics: list[dict], probe: str, metric: str) -> dict:
    chosen = {(m["encoder"], m["dataset"]): m for m in metrics if m["probe"] == probe and m["metric"] == metric}
    status = {(c["encoder"], c["dataset"]): c["status"] for c in cells}
    datasets = [d["spec"] for d in suite.datasets]
    table: dict[str, dict[str, Any]] = {e: {} for e in suite.encoders}
    for dataset in datasets:
        present = [e for e in suite.encoders if (e, dataset) in chosen and np.isfinite(chosen[(e, dataset)]["mean"])]
        lower = metric in LOWER_IS_BETTER
        ranks = average_ranks([chosen[(e, dataset)]["mean"] for e in present], lower_is_better=lower)
        pick = min if lower else max
        best = pick(present, key=lambda e: chosen[(e, dataset)]["mean"]) if present else None
        best_ci = chosen[(best, dataset)]["ci95"] if best else None
        for encoder in suite.encoders:
            entry = chosen.get((encoder, dataset))
            if encoder in present:
                ci = entry["ci95"]
                overlaps = bool(
                    ci and best_ci and None not in ci + best_ci and ci[0] <= best_ci[1] and ci[1] >= best_ci[0]
                )
                table[encoder][dataset] = {
                    "mean": entry["mean"],
                    "ci95": ci,
                    "rank": ranks[present.index(encoder)],
                    "best": encoder == best,
                    "overlaps_best": overlaps,
                }
            else:
                cell_status = status.get((encoder, dataset), "pending")
                # a finished cell without the ranked entry (that probe did not run there) says so, not "done"
                table[encoder][dataset] = {"status": f"no {probe}:{metric}" if cell_status == "done" else cell_status}
    summary = []
    for encoder in suite.encoders:
        scored = [v for v in table[encoder].values() if "mean" in v]
        summary.append(
            {
                "encoder": encoder,
                "mean": float(np.mean([v["mean"] for v in scored])) if scored else None,
                "mean_rank": float(np.mean([v["rank"] for v in scored])) if scored else None,
                "datasets": len(scored),
            }
        )
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    summary.sort(key=lambda s: (s["mean_rank"] is None, s["mean_rank"] or 0.0, sign * (s["mean"] or 0.0)))
    return {
        "probe": probe,
        "metric": metric,
        "lower_is_better": metric in LOWER_IS_BETTER,
        "datasets": datasets,
        "table": table,
        "encoders": summary,
    }


def _cell_text(entry: dict) -> str:
    if "mean" not in entry:
        return entry["status"]
    text = f"{entry['mean']:.3f}"
    if entry["best"]:
        return f"**{text}**"
    return text + (" ≈" if entry["overlaps_best"] else "")


def _short(dataset: str) -> str:
    """A column title: the dataset spec without its folders."""
    scheme, _, rest = dataset.partition(":")
    name = rest.rstrip("/").rsplit("/", 1)[-1].partition("?")[0]
    return f"{scheme}:{name}" if scheme in ("npz", "folder", "nih", "chexpert") else dataset


def markdown(board: dict) -> str:
    """``leaderboard.md``: the ranking table, its legend, and the failed cells."""
    ranking = board["ranking"]
    datasets = ranking["datasets"]
    header = ["encoder", *(_short(d) for d in datasets), "mean", "mean rank"]
    lines = [
        f"# {board['suite']['name']}: {ranking['probe']} {ranking['metric']}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for row in ranking["encoders"]:
        encoder = row["encoder"]
        values = [_cell_text(ranking["table"][encoder][d]) for d in datasets]
        mean = f"{row['mean']:.3f}" if row["mean"] is not None else "–"
        rank = f"{row['mean_rank']:.2f}" if row["mean_rank"] is not None else "–"
        lines.append("| " + " | ".join([f"`{encoder}`", *values, mean, rank]) + " |")
    lines += [
        "",
        f"Test {ranking['metric']} of the {ranking['probe']} probe per dataset (bold: best; ≈: its 95% bootstrap "
        "interval over test images overlaps the best one's, so the difference may not be real). Mean rank: "
        "encoders ranked per dataset, ties averaged, then averaged over the datasets each encoder has.",
    ]
    scored = [e for row in ranking["table"].values() for e in row.values() if "mean" in e]
    if scored and not any(e["ci95"] and None not in e["ci95"] for e in scored):
        lines.append(
            f"{ranking['metric']} has no confidence interval here, so no ≈ is marked: read close values as ties."
        )
    failed = [c for c in board["cells"] if c["status"] == "failed"]
    if failed:
        lines += ["", "Failed cells:", ""] + [f"- `{c['encoder']}` on `{c['dataset']}`: {c['error']}" for c in failed]
    pending = [c for c in board["cells"] if c["status"] == "pending"]
    if pending:
        lines += ["", f"{len(pending)} cell(s) not run yet (another shard, or an interrupted run)."]
    if board.get("published"):
        lines += ["", published.markdown(board["published"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def csv_text(board: dict) -> str:
    """``leaderboard.csv``: encoder, one column per dataset (the metric's mean), mean, mean_rank."""
    ranking = board["ranking"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["encoder", *ranking["datasets"], "mean", "mean_rank"])
    for row in ranking["encoders"]:
        cells = [ranking["table"][row["encoder"]][d] for d in ranking["datasets"]]
        writer.writerow(
            [
                row["encoder"],
                *(f"{c['mean']:.6f}" if "mean" in c else "" for c in cells),
                f"{row['mean']:.6f}" if row["mean"] is not None else "",
                f"{row['mean_rank']:.4f}" if row["mean_rank"] is not None else "",
            ]
        )
    return buffer.getvalue()


def write(board: dict, out: Path) -> list[Path]:
    """Write leaderboard.json, .md and .csv into ``out`` (atomically); returns the paths."""
    texts = {
        "leaderboard.json": json.dumps(board, indent=2) + "\n",
        "leaderboard.md": markdown(board),
        "leaderboard.csv": csv_text(board),
    }
    written = []
    for name, text in texts.items():
        written.append(atomic_write(out / name, lambda tmp, text=text: tmp.write_text(text)))
    return written
