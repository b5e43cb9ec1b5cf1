"""MedViTV2 checkpoints (upstream ``MedViT_<size>.pth`` and per-dataset fine-tuned ``{"model": ...}`` files).

Upstream key names are ours (``encoderzoo.models.medvit`` mirrors them), so conversion only drops the
classification head ``proj_head.*`` (encoders are headless) and prefixes ``trunk.``. The optimizer and
scheduler states of training checkpoints are unwrapped away by ``weights.read_state_dict``.
"""

from __future__ import annotations

import torch

from ..spec import EncoderSpec


def convert(state: dict[str, torch.Tensor], spec: EncoderSpec) -> dict[str, torch.Tensor]:
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel checkpoints
    return {f"trunk.{k}": v for k, v in state.items() if not k.startswith("proj_head.")}
