"""Images/s of ``Encoder.embed`` against the raw timm forward of the same model, batch and dtype, same run.

The peer is what a user would otherwise write: ``timm.create_model(...)`` with the same weights and
``forward_head(forward_features(x), pre_logits=True)`` (timm's own fused SDPA attention). Timings are
interleaved (ours then peer, peer then ours, ...) and the median of ``--repeats`` runs is reported, so machine noise
hits both sides alike. On CUDA every attention backend available is measured, with bf16 throughput as a
share of the GPU's dense bf16 peak (``--peak-tflops``, 790 for an H100 SXM per the issue).

    python benchmarks/bench_embed.py --device cpu --out benchmarks/results/embed_cpu.json
    python benchmarks/bench_embed.py --device cuda --dtype bfloat16 --out benchmarks/results/embed_h100.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from _results import write_results

import encoderzoo
from encoderzoo.attention import xformers_available
from encoderzoo.encoder import build_trunk

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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _seconds(fn, x, device) -> float:
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        fn(x)
    _sync(device)
    return time.perf_counter() - start


def _flops_per_image(peer: torch.nn.Module, x: torch.Tensor) -> float | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            peer.forward_head(peer.forward_features(x[:1]), pre_logits=True)
        return float(counter.get_total_flops())
    except Exception:  # FLOP counting is informative only
        return None


def bench(
    name: str,
    batch: int,
    device: torch.device,
    dtype: torch.dtype,
    attention: str,
    repeats: int,
    peak_tflops: float | None,
) -> dict:
    spec = encoderzoo.get_spec(name)
    pretrained = spec.source.package is not None  # only the embedded default has weights offline
    encoder = encoderzoo.load(name, device=device, dtype=dtype, attention=attention, pretrained=pretrained)
    peer = build_trunk(spec)
    peer.load_state_dict(
        {k.removeprefix("trunk."): v for k, v in encoder.state_dict().items() if k.startswith("trunk.")}
    )
    peer = peer.to(device=device, dtype=dtype).eval()
    x = torch.randn(batch, 3, spec.input_size, spec.input_size, device=device, dtype=dtype)

    def ours(t):
        return encoder.embed(t)

    def raw(t):
        return peer.forward_head(peer.forward_features(t), pre_logits=True)

    for _ in range(2):  # warm-up (allocator, cuDNN autotune)
        _seconds(ours, x, device), _seconds(raw, x, device)
    t_ours, t_peer = [], []
    for i in range(repeats):  # alternate who goes first, so neither side profits from running second
        if i % 2:
            t_peer.append(_seconds(raw, x, device))
            t_ours.append(_seconds(ours, x, device))
        else:
            t_ours.append(_seconds(ours, x, device))
            t_peer.append(_seconds(raw, x, device))
    med_ours, med_peer = statistics.median(t_ours), statistics.median(t_peer)
    row = {
        "encoder": name,
        "weights": "pretrained" if pretrained else "random (same architecture)",
        "batch": batch,
        "input": spec.input_size,
        "dtype": str(dtype).removeprefix("torch."),
        "attention": attention,
        "ours_img_s": batch / med_ours,
        "timm_img_s": batch / med_peer,
        "ratio": med_peer / med_ours,
    }
    flops = _flops_per_image(peer, x) if device.type == "cuda" else None
    if flops and peak_tflops:
        row["tflops"] = flops * row["ours_img_s"] / 1e12
        row["share_of_peak"] = row["tflops"] / peak_tflops
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--encoders", nargs="*", help="default: a set sized for the device")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    cases = CPU_CASES if device.type == "cpu" else GPU_CASES
    names = args.encoders or list(cases)
    backends = ["sdpa", "math"] + (["xformers"] if device.type == "cuda" and xformers_available() else [])
    if device.type == "cpu":
        backends = ["sdpa"]
    rows = []
    for name in names:
        for attention in backends if encoderzoo.get_spec(name).patch_size else ["sdpa"]:
            row = bench(name, cases.get(name, 8), device, dtype, attention, args.repeats, args.peak_tflops)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    header = "| encoder | weights | batch | input | dtype | attention | encoderzoo img/s | timm img/s | ratio |"
    print(header + "\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['encoder']} | {r['weights']} | {r['batch']} | {r['input']} | {r['dtype']} | {r['attention']} "
            f"| {r['ours_img_s']:.1f} | {r['timm_img_s']:.1f} | {r['ratio']:.3f} |"
        )
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    write_results(args.out, {"results": rows}, device=device_name, repeats=args.repeats)


if __name__ == "__main__":
    main()
