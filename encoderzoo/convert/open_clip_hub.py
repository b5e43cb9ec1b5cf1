"""open_clip checkpoints with a timm vision tower (BiomedCLIP) -> timm trunk + linear projection.

open_clip's ``TimmModel`` stores the timm ViT as ``visual.trunk.*`` and the image-text projection as
``visual.head.proj.weight``; the text tower and ``logit_scale`` are dropped.
"""

from __future__ import annotations

import torch

from ..spec import EncoderSpec


def convert(state: dict[str, torch.Tensor], spec: EncoderSpec) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("visual.trunk."):
            out["trunk." + key.removeprefix("visual.trunk.")] = value
        elif key == "visual.head.proj.weight":
            out["proj.weight"] = value
        elif key.startswith("visual."):
            out[f"unconverted:{key}"] = value
    return out
