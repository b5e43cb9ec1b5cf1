"""Masked multi-head attention for the text towers: PyTorch SDPA or explicit math."""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEXT_BACKENDS = ("sdpa", "math")


def text_backend(image_backend: str) -> str:
    """The kernel a text tower runs for an encoder whose image tower uses ``image_backend``.

    The text towers need padding masks and run SDPA or math; ``xformers`` (image tower) maps to SDPA here.
    """
    return "math" if image_backend == "math" else "sdpa"


def attend_masked(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None, backend: str
) -> torch.Tensor:
    """Attention on ``(B, heads, N, head_dim)`` tensors, scale ``head_dim ** -0.5``.

    ``keep``: boolean ``(B, 1, 1, N)``, True for keys that may be attended to (``None``: all).
    """
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    if backend != "math":
        raise ValueError(f"text attention backend must be one of {TEXT_BACKENDS}, got {backend!r}")
    weights = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if keep is not None:
        weights = weights.masked_fill(~keep, torch.finfo(weights.dtype).min)
    return weights.softmax(dim=-1) @ v
