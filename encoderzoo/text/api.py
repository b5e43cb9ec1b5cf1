"""Deprecated: the text half of ``Encoder`` now lives on its ``TextTower`` (``encoder.text``, see
``encoderzoo.text.tower``); ``Encoder.tokenize``, ``encode_text`` and ``similarity`` delegate to it. These free
functions forward to the same code and warn; they will be removed in a later release."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .tokenizer import TextTokenizer
from .tower import TextTower, image_text_logits  # noqa: F401  (image_text_logits: its old import path)

if TYPE_CHECKING:
    from ..encoder import Encoder

warnings.warn(
    "encoderzoo.text.api is deprecated: use the Encoder methods (encode_text, tokenize, similarity) or encoder.text",
    DeprecationWarning,
    stacklevel=2,
)


def text_tower(encoder: Encoder) -> TextTower:
    """``encoder.require_text_tower()``."""
    return encoder.require_text_tower()


def tokenizer_of(encoder: Encoder) -> TextTokenizer:
    """``encoder.require_text_tower().tokenizer``."""
    return encoder.require_text_tower().tokenizer


def encode_text(encoder: Encoder, texts: str | Sequence[str] | torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """``encoder.encode_text(texts, normalize)``."""
    return encoder.encode_text(texts, normalize)


def similarity(encoder: Encoder, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """``encoder.similarity(image_emb, text_emb)``."""
    return encoder.similarity(image_emb, text_emb)
