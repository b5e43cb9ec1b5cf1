"""Fusing separate q/k/v projections (transformers layout) into timm's single ``qkv`` linear."""

from __future__ import annotations

import torch

QKVParts = dict[tuple[int, str], dict[str, torch.Tensor]]


def fuse_qkv(parts: QKVParts, out: dict[str, torch.Tensor], source_prefix: str) -> None:
    """Write ``blocks.{i}.attn.qkv.{weight,bias}`` into ``out`` from per-block ``{"q", "k", "v"}`` tensors.

    An incomplete triple is kept under ``unconverted:`` names so the strict load reports it.
    """
    for (index, leaf), tensors in parts.items():
        if set(tensors) == {"q", "k", "v"}:
            out[f"blocks.{index}.attn.qkv.{leaf}"] = torch.cat([tensors["q"], tensors["k"], tensors["v"]], dim=0)
        else:
            for name, value in tensors.items():
                out[f"unconverted:{source_prefix}.{index} {name}.{leaf} (needs all of q, k, v)"] = value
