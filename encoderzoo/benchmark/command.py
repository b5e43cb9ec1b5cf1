"""``encoderzoo benchmark``: resolve the suite, run the cells, write the leaderboard, the pictures and the page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import leaderboard, plots, published, report
from .runner import parse_shard, prepare_out, read_suite_json, run_cells
from .suite import SETTINGS, ExpandedSuite, expand, list_presets, read_suite


def list_suites_text() -> str:
    """Each shipped preset with what it runs and its protocol."""
    blocks = []
    for name, raw in list_presets().items():
        datasets = raw.get("datasets", [])
        sizes = f" x sizes {raw['sizes']}" if raw.get("sizes") else ""
        blocks.append(
            "\n".join(
                [
                    f"{name}: {raw.get('description', '')}",
                    f"  encoders: {', '.join(raw.get('encoders', []))}",
                    f"  datasets: {len(datasets)}{sizes} ({', '.join(d['spec'] for d in datasets[:3])}"
                    + (", ..." if len(datasets) > 3 else "")
                    + ")",
                    f"  probes: {', '.join(raw.get('probes', []))}; ranked by {raw.get('rank_by', 'linear:auroc')}",
                    f"  protocol: {' '.join(str(raw.get('protocol', '')).split())}",
                ]
            )
        )
    return "\n\n".join(blocks)


def resolve(
    suite: str | None,
    encoders: list[str] | None,
    datasets: list[str] | None,
    settings: dict[str, Any],
    *,
    sizes: list[int] | None = None,
    data_root: str | None = None,
    rank_by: str | None = None,
) -> ExpandedSuite:
    """The expanded suite for the command line (every check that needs no model or data); ``SuiteError`` if bad."""
    raw, source = read_suite(suite) if suite or not (encoders or datasets) else ({}, "command line")
    if not raw:  # ad hoc: the default preset's settings, the command line's encoders and datasets
        preset, _ = read_suite(None)
        raw = {k: v for k, v in preset.items() if k in SETTINGS or k == "rank_by"}
        raw.update(encoders=[] if encoders else preset["encoders"], datasets=[] if datasets else preset["datasets"])
        raw["name"] = "adhoc"
    expanded = expand(
        raw,
        source,
        encoders=encoders or None,
        datasets=datasets or None,
        overrides={k: v for k, v in settings.items() if k in SETTINGS},
        sizes=sizes,
        data_root=data_root,
        rank_by=rank_by,
    )
    if expanded.published:
        published.read(expanded.published)  # a bad figures file is a usage error, found before any work
    return expanded


def write_outputs(suite: ExpandedSuite, out: Path, rank_by: str | None, warn: Callable[[str], None]) -> dict:
    """leaderboard.{json,md,csv}, the pictures (with the plots extra) and report.html, from the cells in ``out``."""
    board = leaderboard.build(suite, out, rank_by)
    leaderboard.write(board, out)
    pictures, note = [], None
    if plots.available():
        pictures.append(plots.heatmap(board, out / "leaderboard.png"))
        few = plots.fewshot(board, out / "fewshot.png")
        if few is not None:
            pictures.append(few)
    else:
        note = plots.PLOTS_HINT + " (then `encoderzoo benchmark --out DIR --report` redraws them)"
        warn(note)
    report.write(board, out, pictures, note)
    return board


def run(
    *,
    suite: str | None,
    encoders: list[str],
    datasets: list[str],
    settings: dict[str, Any],
    out: Path | None,
    device: str,
    batch_size: int | None,
    rank_by: str | None,
    sizes: list[int] | None,
    data_root: str | None,
    shard: str | None,
    report_only: bool,
    echo: Callable[[str], None],
    warn: Callable[[str], None],
    progress: bool = True,
) -> int:
    """The command's work; returns its exit code (0, or 1 when a cell failed). Usage errors raise ``SuiteError``
    before any work."""
    if report_only:
        if out is None:
            from .suite import SuiteError

            raise SuiteError("--report rebuilds the leaderboard of an existing run: pass its --out")
        expanded = read_suite_json(out)
        if rank_by:
            leaderboard.parse_rank_by(rank_by)
        board = write_outputs(expanded, out, rank_by, warn)
        echo(leaderboard.markdown(board))
        return 0
    expanded = resolve(suite, encoders, datasets, settings, sizes=sizes, data_root=data_root, rank_by=rank_by)
    index_count = parse_shard(shard)
    out = out or Path("runs") / expanded.name
    from ..devices import init_distributed_from_env, resolve_device, world

    device = init_distributed_from_env(resolve_device(device))  # under torchrun: one process group for the run
    rank, size = world()
    if rank == 0:
        prepare_out(out, expanded)
    if size > 1:
        import torch.distributed as dist

        dist.barrier()
    summary = run_cells(
        expanded, out, device=device, batch_size=batch_size, shard=index_count, progress=progress, log=warn
    )
    if rank != 0:  # under torchrun rank 0 writes the leaderboard and reports
        return 0
    board = write_outputs(expanded, out, rank_by, warn)
    echo(leaderboard.markdown(board))
    warn(
        f"{len(summary.ran)} cell(s) run, {len(summary.skipped)} already done, {len(summary.failed)} failed "
        f"in {summary.seconds:.1f} s; leaderboard and report.html in {out}"
    )
    return 1 if summary.failed else 0
