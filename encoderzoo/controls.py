"""The two controls a benchmark needs to say whether pretraining helped (``encoderzoo.names`` has their grammar).

- ``pixels[@SIZE]``: ``PixelEncoder``, no network at all; the "embedding" is the image resized to SIZE x SIZE
  (bilinear, antialiased; default 28), channels kept (1 for grayscale, 3 for colour), scaled to [0, 1] and
  flattened, so its width is ``channels * SIZE * SIZE``. A dataset that mixes grayscale and colour images cannot
  be embedded this way (its rows would differ in width): the engine refuses it with an ``InputError``.
- ``random:NAME``: the architecture and preprocessing of registry entry NAME, initialised from
  ``torch.manual_seed(RANDOM_SEED)`` (the global RNG is left untouched), named ``random:NAME`` in its spec, so
  results, caches and cards never take it for the pretrained entry. It is only ever built on request: a failed
  load of NAME never falls back to it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .encoder import Encoder
from .errors import InputError
from .names import EncoderRef
from .registry import get_spec
from .resolution import at_image_size
from .spec import EncoderSpec, WeightSource
from .transforms import Preprocess, as_nchw


def pixels_spec(size: int) -> EncoderSpec:
    """The spec recorded for ``pixels@SIZE`` (results, cache keys): not a registry entry, never built by timm."""
    return EncoderSpec(
        name=f"pixels@{size}",
        family="control",
        architecture="pixels",
        source=WeightSource(format="control", revision="no weights"),
        input_size=size,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        interpolation="bilinear",
        antialias=True,
        pooling="flatten",
        embed_dim=3 * size * size,
        licence="n/a",
        licence_url="",
        paper="",
        citation="",
        notes=(
            f"Control: images resized to {size} x {size} (bilinear, antialiased), channels kept, in [0, 1], "
            "flattened; output_dim counts 3 channels, grayscale data gives a third of it.",
        ),
    )


class PixelTransform(nn.Module):
    """uint8/uint16/float -> float32 in [0, 1] -> resized to ``size`` (``resize=True``); channels kept."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # carries the device

    def extra_repr(self) -> str:
        return f"size={self.size}, interpolation=bilinear, antialias=True, channels=kept, range=[0, 1]"

    def forward(self, images: torch.Tensor | np.ndarray, resize: bool = True) -> torch.Tensor:
        x = Preprocess._to_unit_float(as_nchw(images).to(self._anchor.device))
        if resize and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return x


class PixelEncoder(nn.Module):
    """The ``pixels`` control: ``transform`` resizes, ``embed`` flattens. It has no parameters."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.spec = pixels_spec(size)
        self.transform = PixelTransform(size)
        self.text = None

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.spec.input_size
        if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4 or tuple(pixels.shape[-2:]) != (size, size):
            raise InputError(f"pixels@{size} expects (N, C, {size}, {size}) input; call encoder.transform(images)")
        return pixels.float().flatten(1)

    forward = embed

    def extra_repr(self) -> str:
        return f"name={self.spec.name}"


def random_spec(ref: EncoderRef) -> EncoderSpec:
    """The registry entry ``ref.target`` renamed ``random:NAME`` and stripped of its weight location.

    The weight source's format stays (preprocessing reads it: Hugging Face checkpoints crop differently).
    """
    spec = get_spec(ref.target or "")
    source = dataclasses.replace(
        spec.source, repo_id=None, package=None, filename=None, url=None, sha256=None, revision=f"seed {ref.seed}"
    )
    note = f"Control: the {spec.name} architecture with random initialisation (torch seed {ref.seed}), no weights."
    return dataclasses.replace(spec, name=ref.name, source=source, notes=(note, *spec.notes), gated=False)


def load_control(
    ref: EncoderRef,
    *,
    device: str | torch.device,
    dtype: torch.dtype,
    attention: str,
    weights: object,
    pretrained: bool,
    image_size: int | None,
    text: bool | None,
    tokenizer: object,
) -> Encoder | PixelEncoder:
    """``load()`` for ``pixels`` and ``random:`` names (arguments as for ``load``; ``attention`` already resolved)."""
    if weights is not None or not pretrained:
        raise ValueError(f"{ref.name!r} is a control without weights: weights= and pretrained=False do not apply")
    if text or tokenizer is not None:
        raise ValueError(f"{ref.name!r} is an image-only control: text towers do not apply")
    if ref.kind == "pixels":
        if image_size is not None:
            raise ValueError(f"{ref.name!r}: the size of the pixels control is written in its name (pixels@SIZE)")
        return PixelEncoder(ref.size or 0).to(device=device).eval()
    spec = at_image_size(random_spec(ref), image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ref.seed or 0)
        encoder = Encoder(spec, attention=attention)
    return encoder.to(device=device, dtype=dtype).eval()
