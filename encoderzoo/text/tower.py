"""``TextTower``: what every text tower is to the rest of encoderzoo, whatever its architecture.

A tower maps token ids ``(N, L)`` to text embeddings ``(N, embed_dim)`` (``forward``, per architecture in
``bert.py`` and ``siglip.py``), holds the model's ``logit_scale`` (and SigLIP's ``logit_bias``), and knows where its
tokenizer files are (``tokenizer_source``; the tokenizer is built from them on first use). ``Encoder.tokenize``,
``encode_text`` and ``similarity`` delegate to ``tokenize``, ``encode`` and ``logits`` here.

The architectures subclass ``TextTower`` rather than being wrapped by it, so parameter names (and so the
``text.*`` state-dict keys of an ``Encoder``) are those of the upstream checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import TextSpec
from .errors import TokenizerError
from .tokenizer import TextTokenizer, TokenizerSource


def image_text_logits(
    image_emb: torch.Tensor, text_emb: torch.Tensor, text: TextSpec, scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``(N_images, N_texts)`` logits: cosine similarity of L2-normalized embeddings times ``exp(scale)``,
    plus ``bias`` for SigLIP (sigmoid models); upstream's ``logits_per_image``."""
    image = F.normalize(image_emb.float(), dim=-1)
    texts = F.normalize(text_emb.float().to(image.device), dim=-1)
    logits = image @ texts.T * scale.float().exp().to(image.device)
    if text.logits == "sigmoid":
        if bias is None:
            raise ValueError("a sigmoid (SigLIP) text tower needs logit_bias")
        logits = logits + bias.float().to(image.device)
    return logits


class TextTower(nn.Module):
    """Token ids -> text embeddings, with the model's logit scale (and bias) and its tokenizer.

    Subclasses set ``spec``, ``logit_scale`` and ``logit_bias`` (``None`` for softmax models) and define
    ``forward(ids)``. ``tokenizer_source`` is set by whoever builds the tower (``build_text_tower``, ``load``).
    """

    spec: TextSpec
    logit_scale: nn.Parameter
    logit_bias: nn.Parameter | None

    def __init__(self) -> None:
        super().__init__()
        self._tokenizer_source: TokenizerSource | None = None
        self._tokenizer: TextTokenizer | None = None

    @property
    def tokenizer_source(self) -> TokenizerSource | None:
        """Where ``tokenize`` reads its tokenizer files (not part of the state dict)."""
        return self._tokenizer_source

    @tokenizer_source.setter
    def tokenizer_source(self, source: TokenizerSource | None) -> None:
        self._tokenizer_source = source
        self._tokenizer = None  # a tokenizer built from the previous source no longer applies

    @property
    def tokenizer(self) -> TextTokenizer:
        """The tokenizer, read from ``tokenizer_source`` on first use and kept."""
        if self._tokenizer is None:
            if self._tokenizer_source is None:
                raise TokenizerError("this text tower has no tokenizer source: set tower.tokenizer_source")
            self._tokenizer = TextTokenizer(self._tokenizer_source.folder(), self.spec)
        return self._tokenizer

    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Token ids ``(N, context_length)`` the way the tower was trained (padded to the full length)."""
        return self.tokenizer(texts)

    def encode(self, texts: str | Sequence[str] | torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Text embeddings ``(N, embed_dim)`` from strings (tokenized here) or token ids ``(N, L)``.

        Unnormalized by default, like open_clip ``encode_text`` and transformers ``get_text_features``.
        """
        ids = texts if isinstance(texts, torch.Tensor) else self.tokenize(texts)
        if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"token ids must be an integer (N, L) tensor, got {tuple(ids.shape)} {ids.dtype}")
        if ids.shape[1] > self.spec.max_positions:
            raise ValueError(f"{ids.shape[1]} tokens exceed the tower's {self.spec.max_positions} positions")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.spec.vocab_size):
            raise ValueError(
                f"token ids must lie in 0..{self.spec.vocab_size - 1}: were they made by another tokenizer?"
            )
        out = self(ids.to(device=self.logit_scale.device, dtype=torch.int64))
        return F.normalize(out, dim=-1) if normalize else out

    def logits(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """``(N_images, N_texts)`` logits with the model's own scale (and bias): upstream's ``logits_per_image``.

        Both inputs are L2-normalized here. BiomedCLIP: ``exp(logit_scale) * cos`` (softmax over texts);
        MedSigLIP: ``exp(logit_scale) * cos + logit_bias`` (sigmoid per pair).
        """
        if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
            raise ValueError(
                "expected (N, D) image and (M, D) text embeddings, "
                f"got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
            )
        return image_text_logits(image_emb, text_emb, self.spec, self.logit_scale, self.logit_bias)
