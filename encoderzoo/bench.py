"""``encoderzoo bench``: how fast is an encoder on this machine? Images/s, ms per batch, peak memory, FLOPs.

One row per (encoder, image size, attention kernel):

- **time**: ``warmup`` untimed forwards, then the median of ``repeats`` timed ones (``Encoder.embed`` on a batch
  of random normalized pixels under ``torch.inference_mode``, CUDA synchronized around each);
- **peak memory**: CUDA ``max_memory_allocated`` over the timed forwards (weights included); on CPU the peak
  resident set size over the timed forwards minus the RSS before them, sampled every 2 ms;
- **FLOPs per image**: ``torch.utils.flop_counter.FlopCounterMode`` on one image, with the math attention kernel
  so attention is counted the same way whatever kernel is timed (the counter sees no FLOPs inside CPU SDPA or
  xformers); matrix products and convolutions, 2 FLOPs per multiply-add; elementwise work is not counted;
- **share of peak**: achieved FLOP/s over the device's dense peak for the dtype, for the GPUs in ``PEAK_TFLOPS``.

Speed does not depend on the weights' values: ``pretrained=False`` measures offline.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .attention import resolve_backend
from .encoder import Encoder
from .environment import device_name, environment
from .spec import EncoderSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class PeakFlops:
    """Dense (no structured sparsity) peak TFLOP/s of one GPU model, per dtype, and where the figures come from."""

    match: tuple[str, ...]
    """Substrings that must all appear in ``torch.cuda.get_device_name()`` (case-insensitive)."""
    label: str
    tflops: dict[str, float]
    source: str


# Vendor datasheets list tensor-core figures "with sparsity"; the dense figure is half of that. float32 is the
# CUDA-core FP32 peak (PyTorch leaves TF32 off for matmuls by default). Checked in order: more specific first.
PEAK_TFLOPS: tuple[PeakFlops, ...] = (
    PeakFlops(
        ("h200",),
        "NVIDIA H200 (SXM)",
        {"bfloat16": 989.4, "float16": 989.4, "float32": 66.9},
        "NVIDIA H200 datasheet: BF16/FP16 1,979 TFLOPS with sparsity, FP32 67 TFLOPS "
        "(https://www.nvidia.com/en-us/data-center/h200/)",
    ),
    PeakFlops(
        ("h100", "pcie"),
        "NVIDIA H100 PCIe",
        {"bfloat16": 756.5, "float16": 756.5, "float32": 51.2},
        "NVIDIA H100 datasheet, PCIe: BF16/FP16 1,513 TFLOPS with sparsity, FP32 51 TFLOPS "
        "(https://www.nvidia.com/en-us/data-center/h100/)",
    ),
    PeakFlops(
        ("h100", "hbm3"),
        "NVIDIA H100 SXM",
        {"bfloat16": 989.4, "float16": 989.4, "float32": 66.9},
        "NVIDIA H100 datasheet, SXM: BF16/FP16 1,979 TFLOPS with sparsity, FP32 67 TFLOPS "
        "(https://www.nvidia.com/en-us/data-center/h100/)",
    ),
    PeakFlops(
        ("h100", "sxm"),
        "NVIDIA H100 SXM",
        {"bfloat16": 989.4, "float16": 989.4, "float32": 66.9},
        "NVIDIA H100 datasheet, SXM: BF16/FP16 1,979 TFLOPS with sparsity, FP32 67 TFLOPS "
        "(https://www.nvidia.com/en-us/data-center/h100/)",
    ),
    PeakFlops(
        ("a100",),
        "NVIDIA A100",
        {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5},
        "NVIDIA A100 datasheet: BF16/FP16 312 TFLOPS dense, FP32 19.5 TFLOPS "
        "(https://www.nvidia.com/en-us/data-center/a100/)",
    ),
)


def peak_flops(device_name: str) -> PeakFlops | None:
    """The known peak of a GPU by its ``torch.cuda.get_device_name``, or ``None`` (then no share is reported)."""
    name = device_name.lower()
    for entry in PEAK_TFLOPS:
        if all(part in name for part in entry.match):
            return entry
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], Any]], device: torch.device, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` times, calls interleaved in alternating order.

    Alternating who goes first means neither side profits from running second (caches, clocks); machine noise
    hits all sides alike. ``warmup`` untimed rounds first (allocator, cuDNN autotuning, compilation).
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            _sync(device)
            start = time.perf_counter()
            fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _rss_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


class _RssPeak:
    """Peak RSS above the starting RSS while the ``with`` block runs, sampled by a background thread."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.start = _rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is not None and self.peak is not None:
                self.peak = max(self.peak, rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> _RssPeak:
        if self.start is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        rss = _rss_bytes()
        if rss is not None and self.peak is not None:
            self.peak = max(self.peak, rss)

    @property
    def delta_mib(self) -> float | None:
        if self.start is None or self.peak is None:
            return None
        return (self.peak - self.start) / 2**20


def count_flops(encoder: Encoder, pixels: torch.Tensor) -> int:
    """FLOPs of ``encoder.embed`` on ``pixels`` (``FlopCounterMode``; attention through the math kernel)."""
    from torch.utils.flop_counter import FlopCounterMode

    backend = encoder.attention
    encoder.set_attention("math")
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            encoder.embed(pixels)
    finally:
        encoder.set_attention(backend)
    return int(counter.get_total_flops())


def tokens_of(spec: EncoderSpec) -> int | None:
    """Tokens a ViT attends over at ``spec.input_size`` (prefix + patches); ``None`` for CNNs."""
    if spec.patch_size is None:
        return None
    return spec.num_prefix_tokens + (spec.input_size // spec.patch_size) ** 2


def bench_encoder(
    name: str | EncoderSpec,
    *,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    attention: str = "sdpa",
    batch_size: int | None = None,
    image_size: int | None = None,
    compile: bool = False,
    pretrained: bool = True,
    warmup: int | None = None,
    repeats: int | None = None,
    vs_timm: bool = False,
    weights: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Measure one encoder at one size with one attention kernel; returns one result row (see module docstring).

    Defaults sized for the device: on CPU batch 2, 1 warm-up, 3 timed forwards; on CUDA batch 64, 5 and 20.
    ``vs_timm`` also times the raw timm forward of the same weights (``forward_head(forward_features(x))``,
    timm's own attention), interleaved with ours, and reports the ratio: the wrapper's overhead on this machine.
    """
    from .loading import load

    device = torch.device(device)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    on_cuda = device.type == "cuda"
    batch_size = (64 if on_cuda else 2) if batch_size is None else batch_size
    warmup = (5 if on_cuda else 1) if warmup is None else warmup
    repeats = (20 if on_cuda else 3) if repeats is None else repeats
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError("batch_size and repeats must be >= 1 and warmup >= 0")
    backend = resolve_backend(attention, device)
    encoder = load(
        name,
        device=device,
        dtype=DTYPES[dtype],
        attention=backend,
        pretrained=pretrained,
        weights=weights,
        image_size=image_size,
    )
    spec = encoder.spec
    size = spec.input_size
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch_size, 3, size, size, generator=generator).to(device=device, dtype=DTYPES[dtype])
    flops = count_flops(encoder, pixels[:1])

    model: Callable[[torch.Tensor], torch.Tensor] = torch.compile(encoder) if compile else encoder

    def ours() -> None:
        with torch.inference_mode():
            model(pixels)

    fns: dict[str, Callable[[], Any]] = {"encoderzoo": ours}
    if vs_timm:
        peer = _timm_peer(encoder, device, DTYPES[dtype])

        def raw() -> None:
            with torch.inference_mode():
                peer.forward_head(peer.forward_features(pixels), pre_logits=True)

        fns["timm"] = raw
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with _RssPeak() as rss:
        times = time_interleaved(fns, device, warmup, repeats)
    seconds = statistics.median(times["encoderzoo"])
    images_per_s = batch_size / seconds
    achieved = flops * images_per_s / 1e12
    peak = peak_flops(device_name(device))  # CPUs match no entry
    peak_tflops = peak.tflops.get(dtype) if peak else None
    row: dict[str, Any] = {
        "encoder": spec.name,
        "family": spec.family,
        "weights": "pretrained" if pretrained else "random (same architecture)",
        "image_size": size,
        "native_image_size": spec.native_input_size or size,
        "tokens": tokens_of(spec),
        "batch_size": batch_size,
        "dtype": dtype,
        "attention": attention,
        "attention_kernel": backend,
        "compile": compile,
        "device": device_name(device),
        "warmup": warmup,
        "repeats": repeats,
        "images_per_s": images_per_s,
        "ms_per_batch": seconds * 1000,
        "ms_per_batch_min": min(times["encoderzoo"]) * 1000,
        "ms_per_batch_max": max(times["encoderzoo"]) * 1000,
        "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if on_cuda else rss.delta_mib,
        "memory_measure": "cuda max_memory_allocated (weights included)"
        if on_cuda
        else "peak RSS above the RSS before the timed forwards (sampled every 2 ms)",
        "flops_per_image": flops,
        "gflops_per_image": flops / 1e9,
        "achieved_tflops": achieved,
        "peak_tflops": peak_tflops,
        "share_of_peak": achieved / peak_tflops if peak_tflops else None,
        "peak_source": peak.source if peak else None,
    }
    if vs_timm:
        peer_seconds = statistics.median(times["timm"])
        row["timm_images_per_s"] = batch_size / peer_seconds
        row["ratio_vs_timm"] = peer_seconds / seconds
    return row


def _timm_peer(encoder: Encoder, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The plain timm module of ``encoder.spec`` holding the same trunk weights."""
    from .encoder import build_trunk

    peer = build_trunk(encoder.spec)
    state = encoder.state_dict()
    peer.load_state_dict({k.removeprefix("trunk."): v for k, v in state.items() if k.startswith("trunk.")})
    return peer.to(device=device, dtype=dtype).eval()


def run_bench(
    encoders: Sequence[str | EncoderSpec],
    *,
    image_sizes: Sequence[int | None] = (None,),
    attentions: Sequence[str] = ("sdpa",),
    **kwargs: Any,
) -> dict[str, Any]:
    """Every (encoder, image size, attention) combination; ``{"environment": ..., "results": [rows]}``.

    Attention kernels apply to ViTs only; CNN rows are measured once, with ``attention`` reported as ``n/a``.
    Every kernel is validated for the device before anything is measured: asking for xformers where it cannot
    run is an error, never a silent fallback.
    """
    device = torch.device(kwargs.get("device", "cpu"))
    for attention in attentions:
        resolve_backend(attention, device)
    rows = []
    for name in encoders:
        spec = name if isinstance(name, EncoderSpec) else _spec_of(name)
        kernels = attentions if spec is None or spec.patch_size is not None else attentions[:1]
        for size in image_sizes:
            for attention in kernels:
                row = bench_encoder(name, image_size=size, attention=attention, **kwargs)
                if spec is not None and spec.patch_size is None:
                    row["attention"] = row["attention_kernel"] = "n/a"
                rows.append(row)
    return {"environment": environment(device), "results": rows}


def _spec_of(name: str) -> EncoderSpec | None:
    """The registry spec behind ``name`` (``random:NAME`` has NAME's), ``None`` for saved folders and ``pixels``."""
    from .names import parse_encoder_name
    from .registry import get_spec

    ref = parse_encoder_name(name)
    return get_spec(ref.target) if ref.kind in ("registry", "random") else None


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table of ``run_bench`` results for stdout."""
    headers = ("encoder", "size", "tokens", "batch", "dtype", "attention", "img/s", "ms/batch", "peak MiB", "GFLOP/img")
    headers += ("TFLOP/s", "% of peak")
    rows = [headers]
    for r in report["results"]:
        mem = r["peak_memory_mib"]
        rows.append(
            (
                r["encoder"],
                str(r["image_size"]),
                "-" if r["tokens"] is None else str(r["tokens"]),
                str(r["batch_size"]),
                r["dtype"],
                r["attention"] + (" +compile" if r["compile"] else ""),
                f"{r['images_per_s']:.1f}",
                f"{r['ms_per_batch']:.1f}",
                "-" if mem is None else f"{mem:.0f}",
                f"{r['gflops_per_image']:.3g}",
                f"{r['achieved_tflops']:.3g}",
                "-" if r["share_of_peak"] is None else f"{100 * r['share_of_peak']:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    env = report["environment"]
    footer = [f"device: {env['device']}; torch {env['torch']}"]
    if report["results"]:
        footer.append(f"memory: {report['results'][0]['memory_measure']}; FLOPs: torch FlopCounterMode, math attention")
    sources = sorted({r["peak_source"] for r in report["results"] if r["peak_source"]})
    footer += [f"peak: {source}" for source in sources]
    return "\n".join([*lines, *footer])
