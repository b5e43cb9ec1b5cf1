"""The embedding engine: ``embed_dataset(encoder, dataset, split)`` -> ``EmbeddingSet``, computed once
(``embed_splits`` for several splits, hashing the weights once).

- Batches are decoded by a background thread while the device works on the previous one; preprocessing
  (dtype, channels, resize or MedMNIST+ padding, normalization) runs on the encoder's device. ``fit="pad"``
  follows the MedMNIST+ reference code: normalize first, then zero-pad, so the canvas is the mean colour.
- The split is cut into chunks of ``chunk_size`` rows. Each finished chunk is written atomically to the
  cache, so a run killed half-way resumes from its completed chunks; when all are there they are merged
  into one ``<split>.safetensors`` with its provenance.
- The cache key covers the encoder (spec, sha256 of every weight byte), the preprocessing, the dataset
  fingerprint (labels, and each file's path, size, mtime, ctime and inode, plus an npz's member CRC-32: see
  ``ImageDataset.fingerprint``) and the split, so changed weights or rewritten files never reuse a stale cache.
- Under ``torchrun`` (``torch.distributed`` initialized), chunk ``i`` goes to rank ``i % world_size``; rank 0
  merges, so the result equals the single-process one, in order and values.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from . import __version__
from .atomic import atomic_write
from .batches import autocast_for, first_tensor, read_ahead
from .data import ImageDataset, open_dataset
from .embeddings import EmbeddingSet
from .encoder import Encoder
from .environment import device_name
from .errors import EncoderZooError, InputError
from .paths import cache_root
from .transforms import as_nchw, pad_to_canvas

CACHE_FORMAT = 3  # bump when the cache layout or preprocessing semantics change
Fit = Literal["resize", "pad"]


class NonFiniteEmbeddingError(EncoderZooError):
    """The encoder produced NaN or inf features."""


def weights_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over every entry of ``module.state_dict()``: name, shape, dtype and all of its bytes.

    Each tensor's raw bytes are hashed in place (a byte view, no float copy; GPU tensors are copied to the host
    once), several tensors at a time in threads (hashlib releases the GIL), and the per-tensor digests are
    hashed in state-dict order. A change to any single value changes the fingerprint.
    """
    entries = [(name, tensor.detach()) for name, tensor in module.state_dict().items()]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(pool.map(_tensor_digest, (t for _, t in entries)))
    top = hashlib.sha256()
    for (name, tensor), digest in zip(entries, digests, strict=True):
        top.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|{digest}\n".encode())
    return top.hexdigest()


_PINNED: dict[int, str] = {}


@contextmanager
def pinned_fingerprint(encoder: torch.nn.Module) -> Iterator[str]:
    """Hash ``encoder``'s weights once and reuse that fingerprint in every ``embed_splits`` call made inside the
    ``with`` block (a benchmark embeds many datasets with one model). The weights must not change inside it."""
    key = id(encoder)
    outer = key in _PINNED
    if not outer:
        _PINNED[key] = weights_fingerprint(encoder)
    try:
        yield _PINNED[key]
    finally:
        if not outer:
            del _PINNED[key]


def _tensor_digest(tensor: torch.Tensor) -> str:
    flat = tensor.reshape(-1)
    if flat.device.type != "cpu":
        flat = flat.to("cpu")
    flat = flat.contiguous()  # no copy when it already is
    return hashlib.sha256(memoryview(flat.view(torch.uint8).numpy())).hexdigest()


_SINGLE_PROCESS = False


@contextmanager
def single_process() -> Iterator[None]:
    """Embed in this process alone even where a process group exists (rank 0's probe work under torchrun, after
    the splits were embedded by every rank together): no chunk sharing, no barrier waiting for the others."""
    global _SINGLE_PROCESS
    before, _SINGLE_PROCESS = _SINGLE_PROCESS, True
    try:
        yield
    finally:
        _SINGLE_PROCESS = before


def _provenance(encoder: Encoder, dataset: ImageDataset, split: str, fit: Fit, fingerprint: str) -> dict:
    spec = encoder.spec.to_dict()
    spec.pop("tiny")
    for provenance_only in ("facts_from", "verified"):  # where facts were read is not what the weights are
        spec["source"].pop(provenance_only, None)
    preprocessing = {
        "transform": encoder.transform.extra_repr(),
        "fit": fit,
        "mean": list(encoder.spec.mean),
        "std": list(encoder.spec.std),
    }
    if fit == "pad":  # caches written when pad came before normalization (a black canvas) get a new key
        preprocessing["pad"] = "normalize, then zero-pad into the canvas (mean colour)"
    return {
        "cache_format": CACHE_FORMAT,
        "encoder": encoder.spec.name,
        "encoder_spec": spec,
        "revision": encoder.spec.source.revision,
        "weights_fingerprint": fingerprint,
        "pooling": encoder.spec.pooling,
        "preprocessing": preprocessing,
        "dataset": dataset.spec,
        "dataset_fingerprint": dataset.fingerprint(split),
        "split": split,
    }


def cache_key(provenance: dict) -> str:
    return hashlib.sha256(json.dumps(provenance, sort_keys=True).encode()).hexdigest()[:24]


def embed_dataset(
    encoder: Encoder,
    dataset: ImageDataset | str,
    split: str,
    *,
    batch_size: int | None = None,
    fit: Fit = "resize",
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    chunk_size: int = 4096,
    compile: bool = False,
    autocast: bool = True,
    progress: bool = True,
) -> EmbeddingSet:
    """Embed one split of ``dataset`` with ``encoder`` (see the module docstring).

    Args:
        batch_size: images per forward; default 16 on CPU (fastest measured for efficientnet-lite0 on 2 cores)
            and 128 on CUDA.
        fit: ``resize`` (default) to the encoder's input, or ``pad``: the MedMNIST+ protocol, each image at its
            native size normalized with the encoder's mean and std, then zero-padded into the centre of the input
            canvas (so the border is the mean colour, not black).
        cache_dir: where embeddings are cached (default ``$ENCODERZOO_CACHE/embeddings``).
        use_cache: ``False`` computes in memory and writes nothing (under torchrun every rank then embeds the
            whole split: sharding goes through the cache, which must be on a filesystem all ranks share).
        compile: wrap the encoder in ``torch.compile`` first.
        autocast: bf16 autocast on CUDA.
    """
    return embed_splits(
        encoder,
        dataset,
        [split],
        batch_size=batch_size,
        fit=fit,
        cache_dir=cache_dir,
        use_cache=use_cache,
        chunk_size=chunk_size,
        compile=compile,
        autocast=autocast,
        progress=progress,
    )[split]


def embed_splits(
    encoder: Encoder,
    dataset: ImageDataset | str,
    splits: Sequence[str],
    *,
    batch_size: int | None = None,
    fit: Fit = "resize",
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    chunk_size: int = 4096,
    compile: bool = False,
    autocast: bool = True,
    progress: bool = True,
) -> dict[str, EmbeddingSet]:
    """``embed_dataset`` for several splits, hashing the encoder's weights once (``weights_fingerprint`` reads
    every weight byte: about a second per GB); arguments as for ``embed_dataset``."""
    if isinstance(dataset, str):
        dataset = open_dataset(dataset)
    for split in splits:
        dataset.check_split(split)
    if fit not in ("resize", "pad"):
        raise ValueError(f"fit must be 'resize' or 'pad', got {fit!r}")
    if batch_size is None:
        batch_size = 128 if first_tensor(encoder).device.type == "cuda" else 16
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    fingerprint = _PINNED.get(id(encoder)) or weights_fingerprint(encoder)
    out = {}
    for split in splits:
        provenance = _provenance(encoder, dataset, split, fit, fingerprint)
        runner = _Runner(encoder, dataset, split, batch_size, fit, compile, autocast)
        out[split] = _embed_split(runner, provenance, cache_dir, use_cache, chunk_size, progress)
    return out


def _embed_split(
    runner: _Runner,
    provenance: dict,
    cache_dir: str | os.PathLike[str] | None,
    use_cache: bool,
    chunk_size: int,
    progress: bool,
) -> EmbeddingSet:
    encoder, dataset, split = runner.encoder, runner.dataset, runner.split
    if not use_cache:
        kept, feats = runner.run(0, dataset.num_samples(split), progress)
        return _assemble(dataset, split, [(kept, feats)], provenance, runner.device_name)

    folder = Path(cache_dir or cache_root() / "embeddings") / cache_key(provenance)
    final = folder / f"{split}.safetensors"
    if final.is_file():
        return EmbeddingSet.load(final)
    distributed = dist.is_available() and dist.is_initialized() and not _SINGLE_PROCESS
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    chunks_dir = folder / f"{split}.chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    n = dataset.num_samples(split)
    starts = list(range(0, n, chunk_size))
    mine = [i for i in range(len(starts)) if i % world == rank]
    todo = [i for i in mine if not (chunks_dir / f"{i:05d}.safetensors").is_file()]
    total = sum(min(chunk_size, n - starts[i]) for i in todo)
    # the bar is closed before any error propagates, so the error is printed on a line of its own
    with _progress_bar(total, f"{encoder.spec.name} {dataset.spec} {split}", progress and rank == 0) as bar:
        for i in todo:
            kept, feats = runner.run(starts[i], min(n, starts[i] + chunk_size), False, bar)
            chunk = {"kept": kept.contiguous(), "features": feats.contiguous()}
            atomic_write(chunks_dir / f"{i:05d}.safetensors", lambda tmp, chunk=chunk: save_file(chunk, tmp))
    if world > 1:
        dist.barrier()
    if rank == 0:
        parts = [load_file(str(chunks_dir / f"{i:05d}.safetensors")) for i in range(len(starts))]
        result = _assemble(dataset, split, [(p["kept"], p["features"]) for p in parts], provenance, runner.device_name)
        result.save(final)
        for i in range(len(starts)):
            (chunks_dir / f"{i:05d}.safetensors").unlink()
        chunks_dir.rmdir()
    if world > 1:
        dist.barrier()
    return EmbeddingSet.load(final)


def mixed_widths_error(encoder: str, dataset: str, split: str, where: str) -> InputError:
    """The error for images whose embeddings differ in width (the ``pixels`` control keeps each image's channels)."""
    return InputError(
        f"{encoder} keeps each image's channels, and {dataset} {split} mixes grayscale and colour images ({where}): "
        "their embeddings would differ in width. Store the images in one mode (all RGB or all grayscale), or use "
        "an encoder that converts them (every zoo encoder does)."
    )


def _assemble(dataset, split, parts, provenance, device_name) -> EmbeddingSet:
    """One ``EmbeddingSet`` from ``(kept rows, features)`` parts (chunks, or ranks' chunks), in order."""
    filled = [p for p in parts if len(p[0])]
    widths = sorted({int(p[1].shape[1]) for p in filled})
    if len(widths) > 1:
        where = f"parts of {' and '.join(map(str, widths))} features"
        raise mixed_widths_error(provenance.get("encoder", "the encoder"), dataset.spec, split, where)
    kept = torch.cat([p[0] for p in filled]).numpy() if filled else np.zeros(0, np.int64)
    width = widths[0] if widths else (int(parts[0][1].shape[1]) if parts else 0)
    features = torch.cat([p[1] for p in filled]) if filled else torch.zeros(0, width)
    ids = dataset.sample_ids(split)
    skipped = sorted(set(range(dataset.num_samples(split))) - set(kept.tolist()))
    metadata = {
        **provenance,
        "dataset_info": dataset.describe(),
        "task": dataset.task,
        "label_names": dataset.label_names,
        "skipped": [ids[i] for i in skipped],
        "encoderzoo_version": __version__,
        "torch_version": torch.__version__,
        "device": device_name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
    }
    return EmbeddingSet(features, dataset.labels(split)[kept], [ids[i] for i in kept], metadata)


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False)


class _Runner:
    """Reads, preprocesses and embeds rows ``start:stop`` in batches, one batch read ahead."""

    def __init__(
        self,
        encoder: Encoder,
        dataset: ImageDataset,
        split: str,
        batch_size: int,
        fit: Fit,
        compile: bool,
        autocast: bool,
    ) -> None:
        self.encoder, self.dataset, self.split, self.batch_size, self.fit = encoder, dataset, split, batch_size, fit
        self.device = first_tensor(encoder).device
        self.device_name = device_name(self.device)
        self.model = torch.compile(encoder) if compile else encoder
        self.autocast = autocast_for(encoder, autocast)

    def run(self, start: int, stop: int, progress: bool, bar=None) -> tuple[torch.Tensor, torch.Tensor]:
        own_bar = bar is None
        bar = bar or _progress_bar(stop - start, f"{self.encoder.spec.name} {self.split}", progress)
        bounds = [(s, min(stop, s + self.batch_size)) for s in range(start, stop, self.batch_size)]
        kept, feats = [], []
        try:
            for (lo, hi), images in read_ahead(lambda rows: self.dataset.read(self.split, *rows), bounds):
                rows, out = self._embed_batch(images, lo, hi)
                if len(rows):  # a batch whose images were all skipped adds nothing (and has no width of its own)
                    if feats and out.shape[1] != feats[0].shape[1]:
                        where = f"rows {lo}:{hi} give {out.shape[1]} features, earlier rows {feats[0].shape[1]}"
                        raise mixed_widths_error(self.encoder.spec.name, self.dataset.spec, self.split, where)
                    kept.append(rows)
                    feats.append(out)
                bar.update(hi - lo)
        finally:
            if own_bar:  # closed before an error propagates, so it is printed on a line of its own
                bar.close()
        width = self.encoder.spec.output_dim
        return (
            torch.cat(kept) if kept else torch.zeros(0, dtype=torch.int64),
            torch.cat(feats) if feats else torch.zeros(0, width),
        )

    def _pixels(self, images) -> torch.Tensor:
        x = as_nchw(images).to(self.device, non_blocking=True)
        if self.fit == "pad":  # MedMNIST+: normalize at the native size, then zero-pad (the mean colour)
            return pad_to_canvas(self.encoder.transform(x, resize=False), self.encoder.spec.input_size)
        return self.encoder.transform(x)

    @torch.inference_mode()
    def _embed_batch(self, images, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(images, list):
            rows = [lo + j for j, im in enumerate(images) if im is not None]
            pixels = [self._pixels(im[None]) for im in images if im is not None]
            if not pixels:
                return torch.zeros(0, dtype=torch.int64), torch.zeros(0, self.encoder.spec.output_dim)
            channels = sorted({p.shape[1] for p in pixels})
            if len(channels) > 1:
                where = f"rows {lo}:{hi} have {' and '.join(map(str, channels))} channels"
                raise mixed_widths_error(self.encoder.spec.name, self.dataset.spec, self.split, where)
            x = torch.cat(pixels)
        else:
            rows, x = list(range(lo, hi)), self._pixels(images)
        with self.autocast:
            out = self.model(x).float().cpu()
        bad = ~torch.isfinite(out).all(dim=1)
        if bad.any():
            ids = self.dataset.sample_ids(self.split)
            first = [ids[rows[j]] for j in torch.nonzero(bad).flatten()[:5].tolist()]
            raise NonFiniteEmbeddingError(
                f"{self.encoder.spec.name} produced NaN/inf features for {int(bad.sum())} image(s) in the batch of "
                f"rows {lo}:{hi} of {self.dataset.spec} {self.split} (first: {first}). With float16 try bfloat16 "
                "or float32; check those images for constant or invalid pixels."
            )
        return torch.tensor(rows, dtype=torch.int64), out
