"""``encoderzoo benchmark`` against the user's alternative, a shell loop over ``encoderzoo probe``, on the same cells.

3 encoders (efficientnet-lite0 and random:efficientnet-lite0 at --image-size 32, pixels) x 3 datasets from
../shared/data (breastmnist_resaved whole; pneumoniamnist_subset and pbcblood_28 cut to --rows train/val/test
images drawn at random (seed 0) from each split, so the run takes minutes on a loaded 2-core CPU), probes
knn,linear, CPU. Each side starts from an empty embedding cache of its own. Writes the wall times, their ratio,
whether every cell's results.json is identical (all but ``timings_s``), where the time goes (per-cell timings_s
summed), and the machine's ``uptime`` before and after each side; the benchmark's leaderboard.md/csv/png are kept
beside the JSON (``benchmarks/results/benchmark_vs_loop/``).

    python benchmarks/bench_benchmark.py --out benchmarks/results/benchmark_vs_loop.json
    python benchmarks/bench_benchmark.py --benchmark-first --out benchmarks/results/benchmark_vs_loop_reversed.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = next(  # ../shared/data from the main checkout, ../../shared/data from a worktree under wt/
    (p / "shared" / "data" / "medmnist-format" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data" / "medmnist-format",
)
ENCODERS = ["efficientnet-lite0", "random:efficientnet-lite0", "pixels"]
IMAGE_SIZE = 32
PROBES = "knn,linear"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def make_datasets(folder: Path, rows: dict[str, int]) -> list[Path]:
    """breastmnist whole; the two larger files cut to ``rows[split]`` images per split, drawn at random (seed 0,
    order kept): the files are sorted by label, so their first rows would hold one class."""
    out = [DATA / "breastmnist_resaved.npz"]
    for name in ("pneumoniamnist_subset", "pbcblood_28"):
        arrays = {}
        with np.load(DATA / f"{name}.npz") as source:
            for split, n in rows.items():
                images, labels = source[f"{split}_images"], source[f"{split}_labels"]
                keep = np.sort(np.random.default_rng(0).choice(len(labels), size=n, replace=False))
                arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[keep], labels[keep]
        path = folder / f"{name}_head.npz"
        np.savez(path, **arrays)
        out.append(path)
    return out


def _run(command: list[str], cache: Path) -> float:
    env = {**os.environ, "ENCODERZOO_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _probe_args(encoder: str) -> list[str]:
    return [] if encoder.startswith("pixels") else ["--image-size", str(IMAGE_SIZE)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "benchmark_vs_loop.json")
    parser.add_argument("--rows", type=int, nargs=3, default=(200, 60, 120), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--benchmark-first", action="store_true", help="run the benchmark side first (load drifts)")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "encoderzoo")
    work = Path(tempfile.mkdtemp(prefix="bench-benchmark-"))
    try:
        datasets = make_datasets(work, dict(zip(("train", "val", "test"), args.rows, strict=True)))
        specs = [f"npz:{p}" for p in datasets]
        record: dict = {"encoders": ENCODERS, "datasets": [str(p) for p in datasets], "probes": PROBES}

        loop_dir = work / "loop"
        loop_commands = [
            [
                exe,
                "probe",
                "-e",
                e,
                "-d",
                d,
                "-p",
                PROBES,
                "--device",
                "cpu",
                *_probe_args(e),
                "-o",
                str(loop_dir / f"{i}_{j}.json"),
            ]
            for i, e in enumerate(ENCODERS)
            for j, d in enumerate(specs)
        ]
        bench_out = work / "benchmark"
        bench_command = [exe, "benchmark", *(a for e in ENCODERS for a in ("--encoder", e))]
        bench_command += [*(a for d in specs for a in ("--dataset", d)), "--probes", PROBES]
        bench_command += ["--image-size", str(IMAGE_SIZE), "--device", "cpu", "--out", str(bench_out)]
        record["order"] = "benchmark, then loop" if args.benchmark_first else "loop, then benchmark"
        for side in ("benchmark", "loop") if args.benchmark_first else ("loop", "benchmark"):
            record[f"uptime_before_{side}"] = _uptime()
            if side == "loop":
                loop_s = sum(_run(c, work / "cache-loop") for c in loop_commands)
            else:
                bench_s = _run(bench_command, work / "cache-benchmark")
            record[f"uptime_after_{side}"] = _uptime()

        from encoderzoo.benchmark.runner import cell_dir
        from encoderzoo.benchmark.suite import Cell

        differences, timings = [], {"loop": {}, "benchmark": {}}
        for i, encoder in enumerate(ENCODERS):
            for j, spec in enumerate(specs):
                single = json.loads((loop_dir / f"{i}_{j}.json").read_text())
                cell = json.loads((cell_dir(bench_out, Cell(encoder, spec, {})) / "results.json").read_text())
                for side, result in (("loop", single), ("benchmark", cell)):
                    for step, seconds in result.pop("timings_s").items():
                        timings[side][step] = round(timings[side].get(step, 0.0) + seconds, 2)
                if single != cell:
                    differences.append(f"{encoder} | {spec}")
        record.update(
            loop_command=" ; ".join(" ".join(["encoderzoo", *c[1:]]) for c in loop_commands[:1]) + " ; ... (9 runs)",
            benchmark_command=" ".join(["encoderzoo", *bench_command[1:]]),
            loop_wall_s=round(loop_s, 2),
            benchmark_wall_s=round(bench_s, 2),
            ratio_benchmark_over_loop=round(bench_s / loop_s, 3),
            identical_cell_results=not differences,
            differing_cells=differences,
            timings_s_summed_over_cells=timings,
            note="process start-up, imports and anything outside run_probes = wall time minus the summed timings",
        )
        keep = args.out.with_suffix("")  # the benchmark's own leaderboard, shown in the README
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.png"):
            if (bench_out / name).is_file():
                text = (bench_out / name).read_bytes().replace(str(work).encode(), b"<tmp>")
                (keep / name).write_bytes(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
