"""Plain-PyTorch neighborhood attention (window gather) against the masked full-attention oracle.

Same inputs, same run: time per call (median of repeats) and peak extra memory (CPU: tracemalloc cannot see
torch allocations, so ``ru_maxrss`` growth in a fresh subprocess per case; CUDA: max_memory_allocated).
Shapes are MedViTV2's LFP stages at 224 px input: 56x56 (2 heads), 28x28 (4 heads), 14x14 (8 heads),
head_dim 32, kernel 7.

    python benchmarks/bench_neighborhood_attention.py --out benchmarks/results/neighborhood_attention_cpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _results import write_results

CASES = [(56, 2), (28, 4), (14, 8)]

CHILD = """
import resource, statistics, time, torch, json, sys
from encoderzoo.models.neighborhood_attention import naive_neighborhood_attention, neighborhood_attention
side, heads, batch, which, device, repeats = {side}, {heads}, {batch}, "{which}", "{device}", {repeats}
fn = neighborhood_attention if which == "window" else naive_neighborhood_attention
torch.manual_seed(0)
q, k, v = (torch.randn(batch, heads, side, side, 32, device=device) for _ in range(3))
rpb = torch.randn(heads, 13, 13, device=device)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if device == "cuda":
    torch.cuda.reset_peak_memory_stats(); start_mem = torch.cuda.memory_allocated()
times = []
with torch.inference_mode():
    for _ in range(repeats + 1):
        if device == "cuda": torch.cuda.synchronize()
        t = time.perf_counter(); fn(q, k, v, 7, 1, rpb)
        if device == "cuda": torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
extra = ((torch.cuda.max_memory_allocated() - start_mem) / 2**20 if device == "cuda"
         else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
print(json.dumps({{"seconds": statistics.median(times[1:]), "extra_memory_mib": extra}}))
"""


def run(side, heads, batch, which, device, repeats) -> dict:
    code = CHILD.format(side=side, heads=heads, batch=batch, which=which, device=device, repeats=repeats)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for side, heads in CASES:
        window = run(side, heads, args.batch, "window", args.device, args.repeats)
        oracle = run(side, heads, args.batch, "oracle", args.device, args.repeats)
        rows.append(
            {
                "tokens": f"{side}x{side}",
                "heads": heads,
                "batch": args.batch,
                "window_s": window["seconds"],
                "oracle_s": oracle["seconds"],
                "speedup": oracle["seconds"] / window["seconds"],
                "window_extra_mib": window["extra_memory_mib"],
                "oracle_extra_mib": oracle["extra_memory_mib"],
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    print("| tokens | heads | batch | window s | oracle s | speedup | window MiB | oracle MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['tokens']} | {r['heads']} | {r['batch']} | {r['window_s']:.4f} | {r['oracle_s']:.4f} | "
            f"{r['speedup']:.1f}x | {r['window_extra_mib']:.0f} | {r['oracle_extra_mib']:.0f} |"
        )
    write_results(args.out, {"results": rows}, device=args.device)


if __name__ == "__main__":
    main()
