"""timm weights on the Hugging Face Hub (``timm/<arch>.<tag>``): already in timm layout."""

from __future__ import annotations

import torch

from ..spec import EncoderSpec

CLASSIFIER_PREFIXES = ("head.", "fc.", "classifier.")


def convert(state: dict[str, torch.Tensor], spec: EncoderSpec) -> dict[str, torch.Tensor]:
    """Prefix with ``trunk.``; drop a classifier head if the checkpoint has one (encoders are headless)."""
    return {f"trunk.{k}": v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}
