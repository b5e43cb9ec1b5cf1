"""The text half of ``Encoder``: tokenize, encode texts, image-text logits. ``Encoder`` methods call these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .errors import NoTextTowerError
from .tokenizer import TextTokenizer, TokenizerSource
from .towers import image_text_logits

if TYPE_CHECKING:
    from ..encoder import Encoder


def text_tower(encoder: Encoder) -> nn.Module:
    """``encoder.text``, or a ``NoTextTowerError`` saying why there is none."""
    if encoder.text is not None:
        return encoder.text
    name = encoder.spec.name
    if encoder.spec.text is None:
        raise NoTextTowerError.image_only(name, " (zero-shot classification and text embeddings need one)")
    raise NoTextTowerError(
        f"{name} was loaded without its text tower: load it with encoderzoo.load({name!r}, text=True)"
    )


def tokenizer_of(encoder: Encoder) -> TextTokenizer:
    """The encoder's tokenizer, read on first use from ``encoder.tokenizer_source``."""
    tower = text_tower(encoder)
    if encoder._tokenizer is None:
        source: TokenizerSource | None = encoder.tokenizer_source
        if source is None:
            source = TokenizerSource.for_spec(encoder.spec)
        encoder._tokenizer = TextTokenizer(source.folder(), tower.spec)
    return encoder._tokenizer


def encode_text(encoder: Encoder, texts: str | Sequence[str] | torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Text embeddings ``(N, embed_dim)`` from strings (tokenized here) or token ids ``(N, L)``.

    Unnormalized by default, like open_clip ``encode_text`` and transformers ``get_text_features``.
    """
    tower = text_tower(encoder)
    ids = texts if isinstance(texts, torch.Tensor) else tokenizer_of(encoder)(texts)
    if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"token ids must be an integer (N, L) tensor, got {tuple(ids.shape)} {ids.dtype}")
    if ids.shape[1] > tower.spec.max_positions:
        raise ValueError(f"{ids.shape[1]} tokens exceed the tower's {tower.spec.max_positions} positions")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= tower.spec.vocab_size):
        raise ValueError(f"token ids must lie in 0..{tower.spec.vocab_size - 1}: were they made by another tokenizer?")
    device = tower.logit_scale.device
    out = tower(ids.to(device=device, dtype=torch.int64))
    return F.normalize(out, dim=-1) if normalize else out


def similarity(encoder: Encoder, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """``(N_images, N_texts)`` logits with the model's own scale (and bias): upstream's ``logits_per_image``.

    Both inputs are L2-normalized here. BiomedCLIP: ``exp(logit_scale) * cos`` (softmax over texts);
    MedSigLIP: ``exp(logit_scale) * cos + logit_bias`` (sigmoid per pair).
    """
    tower = text_tower(encoder)
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(
            "expected (N, D) image and (M, D) text embeddings, "
            f"got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )
    return image_text_logits(image_emb, text_emb, tower.spec, tower.logit_scale, tower.logit_bias)
