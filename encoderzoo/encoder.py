"""``Encoder``: a timm trunk plus the spec's pooling, preprocessing and attention kernel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import timm
import torch
from torch import nn

from . import models  # noqa: F401  (registers encoderzoo's own architectures with timm before create_model)
from .attention import set_attention
from .errors import InputError, StateDictMismatchError
from .spec import EncoderSpec
from .text.errors import NoTextTowerError
from .text.tokenizer import TokenizerSource
from .text.tower import TextTower
from .text.towers import build_text_tower, set_text_attention
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

    Image-text entries built with ``text=True`` (``load(name, text=True)``) also have ``encode_text``,
    ``tokenize`` and ``similarity``, delegated to their ``TextTower`` ``self.text`` (state-dict keys ``text.*``).
    """

    def __init__(self, spec: EncoderSpec, attention: str = "sdpa", text: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.trunk = build_trunk(spec)
        self.proj = nn.Linear(spec.embed_dim, spec.proj_dim, bias=False) if spec.pooling == "proj" else None
        self.text: TextTower | None = build_text_tower(spec) if text else None
        self.transform = Preprocess(spec)
        self.attention = attention
        self.set_attention(attention)

    def set_attention(self, backend: str) -> None:
        """Switch the attention kernel (``sdpa``, ``xformers``, ``math``; already resolved).

        The text tower (masked attention) runs ``math`` for ``math`` and PyTorch SDPA otherwise.
        """
        set_attention(self.trunk, backend)
        if self.text is not None:
            set_text_attention(self.text, backend)
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

    @property
    def tokenizer_source(self) -> TokenizerSource | None:
        """Deprecated: where the text tower's tokenizer is read from now lives on the tower
        (``encoder.text.tokenizer_source``); this forwards to it (``None`` for an image-only encoder)."""
        return self.text.tokenizer_source if self.text is not None else None

    @tokenizer_source.setter
    def tokenizer_source(self, source: TokenizerSource | None) -> None:
        if self.text is not None:
            self.text.tokenizer_source = source
        elif source is not None:
            self.require_text_tower()  # the one "no text tower" error

    def require_text_tower(self) -> TextTower:
        """``self.text``, or a ``NoTextTowerError`` saying why there is none."""
        if self.text is None:
            raise NoTextTowerError.for_encoder(self.spec)
        return self.text

    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Token ids ``(N, context_length)`` the way the text tower was trained (padded to the full length)."""
        return self.require_text_tower().tokenize(texts)

    def encode_text(self, texts: str | Sequence[str] | torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Text embeddings ``(N, D)`` from strings or token ids; unnormalized unless ``normalize`` (as upstream)."""
        return self.require_text_tower().encode(texts, normalize)

    def similarity(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Image-text logits ``(N_images, N_texts)`` with the model's own logit scale (and SigLIP's bias)."""
        return self.require_text_tower().logits(image_emb, text_emb)

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
        text = f", text={self.spec.text.architecture}" if self.text is not None and self.spec.text else ""
        return f"name={self.spec.name}, pooling={self.spec.pooling}, attention={self.attention}{text}"


def _listing(title: str, items: list[str], limit: int = 8) -> str:
    if not items:
        return ""
    shown = "".join(f"\n    {item}" for item in items[:limit])
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"\n  {len(items)} {title}:{shown}{more}"
