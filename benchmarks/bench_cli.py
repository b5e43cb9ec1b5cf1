"""How fast the ``encoderzoo`` command answers when it has nothing heavy to do, against ``python -c "import torch"``.

Help, ``list``, ``info``, ``card`` and usage errors need neither torch nor timm, so they must not import them.
Each case is a fresh process (what a user types), timed wall-clock; the cases are interleaved round by round so that
machine noise hits every case alike, and the median over ``--repeats`` rounds is reported. Target: help and a usage
error each at most a third of the torch import.

    python benchmarks/bench_cli.py --out benchmarks/results/cli_cpu.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import write_results

TARGET = 1 / 3


def cases() -> dict[str, list[str]]:
    exe = shutil.which("encoderzoo") or str(Path(sys.executable).with_name("encoderzoo"))
    return {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "encoderzoo --help": [exe, "--help"],
        "encoderzoo probe --seeds 0 (usage error)": [exe, "probe", "--seeds", "0"],
        "encoderzoo list": [exe, "list"],
        "encoderzoo info rad-dino": [exe, "info", "rad-dino"],
        "encoderzoo card dinov2-small": [exe, "card", "dinov2-small"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    commands = cases()
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            seconds[name].append(time.perf_counter() - start)
    torch_s = statistics.median(seconds["python -c 'import torch'"])
    rows = []
    for name, values in seconds.items():
        median = statistics.median(values)
        rows.append({"case": name, "median_s": round(median, 3), "of_torch_import": round(median / torch_s, 3)})
    width = max(len(r["case"]) for r in rows)
    print(f"{'case'.ljust(width)}  median s  x torch import")
    for r in rows:
        print(f"{r['case'].ljust(width)}  {r['median_s']:8.3f}  {r['of_torch_import']:.3f}")
    gated = [r for r in rows if r["case"].startswith(("encoderzoo --help", "encoderzoo probe"))]
    met = all(r["of_torch_import"] <= TARGET for r in gated)
    print(f"target (help and usage error <= {TARGET:.2f} x torch import): {'met' if met else 'NOT met'}")
    load = os.getloadavg()
    write_results(
        args.out, {"rows": rows, "target": TARGET, "target_met": met, "repeats": args.repeats}, loadavg=list(load)
    )


if __name__ == "__main__":
    main()
