"""Running a benchmark's cells: each cell is ``evaluate.run_probes`` (the ``encoderzoo probe`` job) and writes the
same ``results.json``; the model is loaded and its weights hashed once per encoder; finished cells are skipped.

``--out`` layout::

    suite.json                                the expanded suite and its hash (a different suite is refused)
    cells/<encoder>/<dataset>/results.json    a finished cell (written atomically, so a killed run loses at most
                                              the cell in progress; its embeddings are in the cache)
    cells/<encoder>/<dataset>/error.json      a failed cell: its error message (retried on the next run)
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..atomic import atomic_write
from ..paths import check_writable
from .suite import Cell, ExpandedSuite, SuiteError, diff

SUITE_FILE = "suite.json"
RESULTS_FILE = "results.json"
ERROR_FILE = "error.json"


def slug(text: str) -> str:
    """A folder name for an encoder or dataset name: kept when already safe, else cleaned plus a short hash."""
    safe = re.sub(r"[^A-Za-z0-9._@+-]+", "_", text).strip("_.")[:80] or "_"
    return safe if safe == text else f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def cell_dir(out: Path, cell: Cell) -> Path:
    return out / "cells" / slug(cell.encoder) / slug(cell.dataset)


def prepare_out(out: Path, suite: ExpandedSuite) -> None:
    """Write ``suite.json`` into ``out``, or check that the one there is this suite (else a ``SuiteError``)."""
    check_writable(out, folder=True)
    path = out / SUITE_FILE
    if path.is_file():
        stored = json.loads(path.read_text())
        difference = diff(stored, suite)
        if difference:
            raise SuiteError(
                f"--out {out} holds another suite ({stored.get('name')!r}, hash {stored.get('hash')}; this one is "
                f"{suite.name!r}, hash {suite.hash}): {difference}. Use a new --out, or remove {out} to start over."
            )
        return
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(suite.to_dict(), indent=2) + "\n"))


def read_suite_json(out: Path) -> ExpandedSuite:
    path = out / SUITE_FILE
    if not path.is_file():
        raise SuiteError(f"{out} has no {SUITE_FILE}: it is not a benchmark --out folder (nothing to report)")
    return ExpandedSuite.from_dict(json.loads(path.read_text()))


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` (1 <= I <= N) -> (I, N); ``None`` -> (1, 1)."""
    if text is None:
        return 1, 1
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise SuiteError(f"--shard {text!r}: write I/N with 1 <= I <= N (--shard 2/4 runs cells 2, 6, 10, ...)")
    return int(match[1]), int(match[2])


@dataclass
class RunSummary:
    """What one invocation did."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def run_cells(
    suite: ExpandedSuite,
    out: Path,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    shard: tuple[int, int] = (1, 1),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """Run every unfinished cell of ``suite`` in this shard (cell ``k`` belongs to shard ``k % N + 1``)."""
    from ..devices import init_distributed_from_env, resolve_device, world
    from ..engine import pinned_fingerprint, single_process
    from ..loading import load
    from ..probe_job import run_probes

    start = time.perf_counter()
    resolved = init_distributed_from_env(resolve_device(device))
    rank, size = world()
    index, count = shard
    mine = [c for k, c in enumerate(suite.cells()) if k % count == index - 1]
    summary = RunSummary(skipped=[c.key for c in mine if (cell_dir(out, c) / RESULTS_FILE).is_file()])
    todo = [c for c in mine if c.key not in summary.skipped]
    if summary.skipped and rank == 0:
        log(f"{len(summary.skipped)} of {len(mine)} cell(s) already finished in {out}: skipped")
    groups: dict[tuple, list[Cell]] = {}
    for cell in todo:  # one model per (encoder, size, text tower): load() arguments as run_probes passes them
        key = (cell.encoder, cell.settings["image_size"], "zeroshot" in cell.settings["probes"])
        groups.setdefault(key, []).append(cell)
    bar = _bar(len(mine), len(summary.skipped), progress and rank == 0)
    try:
        for (name, image_size, text), cells in groups.items():
            bar.set_description(f"loading {name}")
            try:
                model = load(name, device=resolved, text=True if text else None, image_size=image_size)
            except Exception as err:  # a gated, unreachable or corrupt encoder fails its cells, not the run
                for cell in cells:
                    if rank == 0:
                        _record_failure(out, cell, err, summary)
                    bar.update(1)
                continue
            with pinned_fingerprint(model):
                for cell in cells:
                    bar.set_description(cell.key)
                    try:
                        if size > 1:  # torchrun: every rank embeds a share of the cell's splits into the cache
                            _embed_together(model, cell, batch_size, progress and rank == 0)
                        if rank == 0:  # ... and rank 0 alone runs the probe job on the cached embeddings
                            with single_process():
                                results = run_probes(
                                    cell.encoder,
                                    cell.dataset,
                                    probes=cell.settings["probes"],
                                    shots=cell.settings["shots"],
                                    seeds=cell.settings["seeds"],
                                    device=resolved,
                                    batch_size=batch_size,
                                    fit=cell.settings["fit"],
                                    progress=progress,
                                    image_size=image_size,
                                    test_dataset=cell.settings.get("test_dataset"),
                                    loaded=model,
                                )
                    except Exception as err:  # a missing dataset or a corrupt file fails this cell only
                        if rank == 0:
                            _record_failure(out, cell, err, summary)
                    else:
                        if rank == 0:
                            _record_success(out, cell, results)
                            summary.ran.append(cell.key)
                    if size > 1:
                        import torch.distributed as dist

                        dist.barrier()  # the next cell starts together
                    bar.update(1)
            del model
    finally:
        bar.close()
    for key, error in summary.failed.items():
        log(f"failed: {key}: {error}")
    summary.seconds = time.perf_counter() - start
    return summary


def _embed_together(model: torch.nn.Module, cell: Cell, batch_size: int | None, progress: bool) -> None:
    """Every rank embeds its share of the splits the probe job reads (the engine splits the work by chunks and
    caches the result), so rank 0's probe job finds them cached. Splits it embeds beyond these (an external test
    dataset, corrupted test sets) rank 0 embeds alone."""
    from ..data import open_dataset
    from ..engine import embed_splits

    splits = ("test",) if set(cell.settings["probes"]) == {"zeroshot"} else ("train", "val", "test")
    embed_splits(
        model, open_dataset(cell.dataset), splits, batch_size=batch_size, fit=cell.settings["fit"], progress=progress
    )


def _record_success(out: Path, cell: Cell, results: dict) -> None:
    folder = cell_dir(out, cell)
    text = json.dumps(results, indent=2) + "\n"
    atomic_write(folder / RESULTS_FILE, lambda tmp: tmp.write_text(text))
    (folder / ERROR_FILE).unlink(missing_ok=True)


def _record_failure(out: Path, cell: Cell, err: Exception, summary: RunSummary) -> None:
    message = f"{type(err).__name__}: {err}"
    record = {"encoder": cell.encoder, "dataset": cell.dataset, "error": message}
    path = cell_dir(out, cell) / ERROR_FILE
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
    summary.failed[cell.key] = message


def _bar(total: int, done: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="cell", disable=not enabled, position=0, leave=True)
