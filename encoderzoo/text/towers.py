"""Building a text tower from its ``TextSpec``, and routing its attention."""

from __future__ import annotations

from ..spec import EncoderSpec
from .attention import text_backend
from .bert import BertTextTower
from .errors import NoTextTowerError
from .siglip import SiglipTextTower
from .tokenizer import TokenizerSource
from .tower import TextTower, image_text_logits  # noqa: F401  (image_text_logits: its old import path)

TOWERS: dict[str, type[TextTower]] = {"bert": BertTextTower, "siglip": SiglipTextTower}


def build_text_tower(spec: EncoderSpec) -> TextTower:
    """The text tower of ``spec`` with random weights, reading the spec's pinned tokenizer; ``NoTextTowerError``
    for image-only entries."""
    if spec.text is None:
        raise NoTextTowerError.for_encoder(spec)
    if spec.text.embed_dim != spec.output_dim:
        raise ValueError(
            f"{spec.name}: text embed_dim {spec.text.embed_dim} differs from the image embedding's {spec.output_dim}"
        )
    tower = TOWERS[spec.text.architecture](spec.text)
    tower.tokenizer_source = TokenizerSource.for_spec(spec)
    return tower


def set_text_attention(tower: TextTower, image_backend: str) -> None:
    """Route the tower's attention through SDPA or math (see ``text_backend``)."""
    backend = text_backend(image_backend)
    for module in tower.modules():
        if hasattr(module, "backend"):
            module.backend = backend
