"""Building a text tower from its ``TextSpec``, and image-text logits the way each model family forms them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import EncoderSpec, TextSpec
from .attention import text_backend
from .bert import BertTextTower
from .errors import NoTextTowerError
from .siglip import SiglipTextTower

TOWERS: dict[str, type[nn.Module]] = {"bert": BertTextTower, "siglip": SiglipTextTower}


def build_text_tower(spec: EncoderSpec) -> nn.Module:
    """The text tower of ``spec`` with random weights; ``NoTextTowerError`` for image-only entries."""
    if spec.text is None:
        raise NoTextTowerError.image_only(spec.name, " (zero-shot classification and text embeddings need one)")
    if spec.text.embed_dim != spec.output_dim:
        raise ValueError(
            f"{spec.name}: text embed_dim {spec.text.embed_dim} differs from the image embedding's {spec.output_dim}"
        )
    return TOWERS[spec.text.architecture](spec.text)


def set_text_attention(tower: nn.Module, image_backend: str) -> None:
    """Route the tower's attention through SDPA or math (see ``text_backend``)."""
    backend = text_backend(image_backend)
    for module in tower.modules():
        if hasattr(module, "backend"):
            module.backend = backend


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
