"""Images/s of ``Encoder.embed`` against the raw timm forward of the same model, batch and dtype, same run.

A thin wrapper over ``encoderzoo.bench.run_bench`` (the runner behind ``encoderzoo bench``) with ``vs_timm=True``:
the peer is what a user would otherwise write, ``timm.create_model(...)`` with the same weights and
``forward_head(forward_features(x), pre_logits=True)`` (timm's own fused attention). Timings are interleaved,
alternating who goes first, and the median of ``--repeats`` is reported, so machine noise hits both sides alike.
Each row also carries ms per batch, peak memory, FLOPs per image and, on a GPU with a known peak, the share of it.

    python benchmarks/bench_embed.py --device cpu --out benchmarks/results/embed_cpu.json
    python benchmarks/bench_embed.py --device cuda --dtype bfloat16 --attention sdpa,xformers,math \\
        --out benchmarks/results/embed_cuda.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from _results import write_results

import encoderzoo
from encoderzoo.bench import format_table, run_bench

CPU_CASES = {"efficientnet-lite0": 16, "dinov3-small": 8, "biomedclip": 8, "dinov2-small": 2}
GPU_CASES = {
    "efficientnet-lite0": 256,
    "dinov2-small": 64,
    "dinov2-base": 64,
    "dinov3-base": 128,
    "rad-dino": 64,
    "biomedclip": 256,
    "medsiglip-448": 32,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--encoders", nargs="*", help="default: a set sized for the device")
    parser.add_argument("--attention", default="sdpa", help="comma-separated kernels (ViTs only)")
    parser.add_argument("--image-size", type=int, action="append", help="repeatable; default: each native size")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    cases = CPU_CASES if device.type == "cpu" else GPU_CASES
    rows, environment = [], {}
    for name in args.encoders or list(cases):
        pretrained = encoderzoo.get_spec(name).source.package is not None  # only the embedded default is offline
        report = run_bench(
            [name],
            image_sizes=args.image_size or [None],
            attentions=args.attention.split(","),
            device=device,
            dtype=args.dtype,
            batch_size=cases.get(name, 8),
            pretrained=pretrained,
            warmup=args.warmup,
            repeats=args.repeats,
            vs_timm=True,
        )
        environment = report["environment"]
        for row in report["results"]:
            print(json.dumps(row), file=sys.stderr)
        rows += report["results"]
    print(format_table({"environment": environment, "results": rows}))
    print("\nratio vs raw timm forward: " + ", ".join(f"{r['encoder']} {r['ratio_vs_timm']:.3f}" for r in rows))
    write_results(args.out, {"results": rows}, **environment, repeats=args.repeats)


if __name__ == "__main__":
    main()
