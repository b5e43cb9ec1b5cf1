"""``Encoder``: a timm trunk plus the spec's pooling, preprocessing and attention kernel."""

from __future__ import annotations

from typing import NamedTuple

import timm
import torch
from torch import nn

from .attention import set_attention
from .errors import InputError, StateDictMismatchError
from .spec import EncoderSpec
from .transforms import Preprocess

_TIMM_POOL = {"cls": "token", "mean": "avg", "pooler": "map", "proj": "token"}


class Tokens(NamedTuple):
    """Final-layer tokens after the trunk's final norm."""

    prefix: torch.Tensor
    """``(N, num_prefix_tokens, D)``: class and register tokens (empty for CNNs and SigLIP)."""
    patches: torch.Tensor
    """``(N, num_patches, D)``: one token per patch (per feature-map cell for CNNs), row-major."""


def build_trunk(spec: EncoderSpec) -> nn.Module:
    """The timm module of ``spec`` with random weights, headless, pooling per spec."""
    pool = _TIMM_POOL[spec.pooling]
    if spec.patch_size is None and pool == "token":
        raise ValueError(f"{spec.name}: CNN encoders pool with 'mean', not {spec.pooling!r}")
    return timm.create_model(spec.architecture, pretrained=False, num_classes=0, global_pool=pool, **spec.arch_kwargs)


class Encoder(nn.Module):
    """An image encoder from the zoo.

    - ``transform(images)``: batched, device-side preprocessing per spec (uint8/float, gray/RGB, any size).
    - ``embed(pixels)`` / ``forward(pixels)``: ``(N, output_dim)`` pooled per spec.
    - ``forward_tokens(pixels)``: ``Tokens(prefix, patches)``.

    ``pixels`` is the output of ``transform``: float ``(N, 3, S, S)``, normalized, ``S = spec.input_size``.
    """

    def __init__(self, spec: EncoderSpec, attention: str = "sdpa") -> None:
        super().__init__()
        self.spec = spec
        self.trunk = build_trunk(spec)
        self.proj = nn.Linear(spec.embed_dim, spec.proj_dim, bias=False) if spec.pooling == "proj" else None
        self.transform = Preprocess(spec)
        self.attention = attention
        set_attention(self.trunk, attention)

    def set_attention(self, backend: str) -> None:
        """Switch the attention kernel (``sdpa``, ``xformers``, ``math``; already resolved)."""
        set_attention(self.trunk, backend)
        self.attention = backend

    def _check_pixels(self, pixels: torch.Tensor) -> None:
        size = self.spec.input_size
        if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4:
            raise InputError(f"expected a (N, 3, {size}, {size}) tensor; call encoder.transform(images) first")
        if not pixels.is_floating_point():
            raise InputError(f"got {pixels.dtype} pixels: call encoder.transform(images) to convert and normalize")
        if tuple(pixels.shape[1:]) != (3, size, size):
            raise InputError(
                f"{self.spec.name} expects (N, 3, {size}, {size}) input, got {tuple(pixels.shape)}; "
                "encoder.transform(images) resizes and expands grayscale for you"
            )

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        self._check_pixels(pixels)
        param = next(self.trunk.parameters())
        return self.trunk.forward_features(pixels.to(device=param.device, dtype=param.dtype))

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled embeddings ``(N, output_dim)`` per ``spec.pooling``."""
        pooled = self.trunk.forward_head(self._features(pixels), pre_logits=True)
        return self.proj(pooled) if self.proj is not None else pooled

    forward = embed

    def forward_tokens(self, pixels: torch.Tensor) -> Tokens:
        """Final-layer prefix and patch tokens (CNNs: an empty prefix and the flattened feature map)."""
        feats = self._features(pixels)
        if feats.ndim == 4:
            patches = feats.flatten(2).transpose(1, 2)
            return Tokens(patches[:, :0], patches)
        npt = self.spec.num_prefix_tokens
        return Tokens(feats[:, :npt], feats[:, npt:])

    def load_converted(self, state: dict[str, torch.Tensor], origin: str) -> None:
        """Strictly load an Encoder-layout state dict; any mismatch raises ``StateDictMismatchError``."""
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
            for k in set(state) & set(expected)
            if state[k].shape != expected[k].shape
        )
        if missing or unexpected or wrong:
            raise StateDictMismatchError(
                f"weights from {origin} do not fit {self.spec.name} ({self.spec.architecture}):"
                + _listing("missing keys", missing)
                + _listing("unexpected keys", unexpected)
                + _listing("wrong shapes", wrong)
                + "\nIs this the right checkpoint for this encoder? Nothing was loaded."
            )
        self.load_state_dict(state, strict=True)

    def extra_repr(self) -> str:
        return f"name={self.spec.name}, pooling={self.spec.pooling}, attention={self.attention}"


def _listing(title: str, items: list[str], limit: int = 8) -> str:
    if not items:
        return ""
    shown = "".join(f"\n    {item}" for item in items[:limit])
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"\n  {len(items)} {title}:{shown}{more}"
