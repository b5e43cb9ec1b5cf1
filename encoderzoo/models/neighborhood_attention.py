"""2D neighborhood attention (NA) with relative position bias and dilation, in plain PyTorch.

Semantics follow NATTEN 0.17 (``natten.NeighborhoodAttention2D``), so its checkpoints load unchanged:
- each query attends to a ``k x k`` window of keys taken in its dilation group; near a border the window
  shifts inward (it is never cropped), so every query sees exactly ``k * k`` keys;
- the relative position bias ``rpb`` has shape ``(heads, 2k - 1, 2k - 1)`` and is indexed by
  ``(key - query) // dilation + k - 1`` per axis;
- parameters ``qkv``, ``rpb`` and ``proj`` carry NATTEN's names and shapes.

The kernel loops over the ``k * k`` window offsets and gathers one shifted key map per offset, so memory
stays ``O(B * heads * H * W * (head_dim + k * k))`` instead of the ``(H W)^2`` of a masked full attention.
``naive_neighborhood_attention`` is that masked full attention, kept as the test oracle.
"""

from __future__ import annotations

import torch
from torch import nn

SMALL_MAP_TOKENS = 256
"""At or below this many tokens the masked full attention beats the window gather (measured on CPU)."""


def window_starts(length: int, kernel_size: int, dilation: int, device=None) -> torch.Tensor:
    """First key position of each query's window along one axis (NATTEN's ``get_window_start``)."""
    if length < kernel_size * dilation:
        raise ValueError(
            f"neighborhood attention needs at least kernel_size * dilation = {kernel_size * dilation} positions "
            f"per axis, got {length}; use a larger input"
        )
    index = torch.arange(length, device=device)
    group = index % dilation
    index_in_group = index // dilation
    group_length = (length - group + dilation - 1) // dilation
    half = kernel_size // 2
    start = (index_in_group - half).clamp_min(0)
    overflow = index_in_group + half >= group_length
    start = torch.where(overflow, group_length - kernel_size, start)
    return start * dilation + group


def neighbourhood(length: int, kernel_size: int, dilation: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Key positions ``(length, k)`` and bias indices ``(length, k)`` for one axis."""
    starts = window_starts(length, kernel_size, dilation, device)
    keys = starts[:, None] + dilation * torch.arange(kernel_size, device=device)[None, :]
    bias = torch.div(keys - torch.arange(length, device=device)[:, None], dilation, rounding_mode="floor")
    return keys, bias + kernel_size - 1


def neighborhood_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
    rpb: torch.Tensor | None = None,
) -> torch.Tensor:
    """``q, k, v``: ``(B, heads, H, W, D)``, ``q`` already scaled. Returns ``(B, heads, H, W, D)``."""
    _, _, H, W, _ = q.shape
    keys_h, bias_h = neighbourhood(H, kernel_size, dilation, q.device)
    keys_w, bias_w = neighbourhood(W, kernel_size, dilation, q.device)
    logits = []
    for a in range(kernel_size):
        rows = k.index_select(2, keys_h[:, a])
        for c in range(kernel_size):
            shifted = rows.index_select(3, keys_w[:, c])
            logit = (q * shifted).sum(-1)
            if rpb is not None:
                logit = logit + rpb[:, bias_h[:, a]][:, :, bias_w[:, c]].unsqueeze(0)
            logits.append(logit)
    weights = torch.stack(logits, -1).softmax(-1)
    out = torch.zeros_like(q)
    for a in range(kernel_size):
        rows = v.index_select(2, keys_h[:, a])
        for c in range(kernel_size):
            out = out + weights[..., a * kernel_size + c, None] * rows.index_select(3, keys_w[:, c])
    return out


def naive_neighborhood_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
    rpb: torch.Tensor | None = None,
) -> torch.Tensor:
    """The oracle: full attention over all ``H * W`` keys with a -inf mask outside each window."""
    B, heads, H, W, D = q.shape
    keys_h, bias_h = neighbourhood(H, kernel_size, dilation, q.device)
    keys_w, bias_w = neighbourhood(W, kernel_size, dilation, q.device)
    allowed_h = torch.zeros(H, H, dtype=torch.bool, device=q.device).scatter_(1, keys_h, True)
    allowed_w = torch.zeros(W, W, dtype=torch.bool, device=q.device).scatter_(1, keys_w, True)
    mask = allowed_h[:, None, :, None] & allowed_w[None, :, None, :]  # (qh, qw, kh, kw)
    logits = torch.einsum("bnijd,bnkld->bnijkl", q, k)
    if rpb is not None:
        rel_h = torch.full((H, H), -1, dtype=torch.long, device=q.device).scatter_(1, keys_h, bias_h)
        rel_w = torch.full((W, W), -1, dtype=torch.long, device=q.device).scatter_(1, keys_w, bias_w)
        bias = rpb[:, rel_h.clamp_min(0)][:, :, :, rel_w.clamp_min(0)]  # (heads, qh, kh, qw, kw)
        logits = logits + bias.permute(0, 1, 3, 2, 4).unsqueeze(0)
    logits = logits.masked_fill(~mask, float("-inf"))
    weights = logits.reshape(B, heads, H, W, H * W).softmax(-1).reshape(B, heads, H, W, H, W)
    return torch.einsum("bnijkl,bnkld->bnijd", weights, v)


def natten_compatible() -> bool:
    """True when NATTEN >= 0.17 with the ``na2d`` functional API is importable (used on CUDA only)."""
    try:
        from natten.functional import na2d  # noqa: F401
    except Exception:  # absent, or built for another torch
        return False
    return True


class NeighborhoodAttention2D(nn.Module):
    """Drop-in for ``natten.NeighborhoodAttention2D(dim, num_heads, kernel_size, dilation, rel_pos_bias=True)``.

    Input and output ``(B, H, W, C)``. ``use_natten`` selects NATTEN's fused kernel when it is importable and
    the tensors are on CUDA; otherwise the plain-PyTorch kernel above runs.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel_size: int = 7,
        dilation: int = 1,
        rel_pos_bias: bool = True,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim**-0.5
        self.kernel_size = kernel_size
        self.dilation = dilation or 1
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if rel_pos_bias:
            self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
            nn.init.trunc_normal_(self.rpb, std=0.02, a=-2.0, b=2.0)
        else:
            self.register_parameter("rpb", None)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.use_natten = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        qkv = self.qkv(x).reshape(B, H, W, 3, self.num_heads, self.head_dim)
        if self.use_natten and x.is_cuda and natten_compatible():
            from natten.functional import na2d

            q, k, v = qkv.permute(3, 0, 1, 2, 4, 5).unbind(0)  # (B, H, W, heads, D)
            out = na2d(q, k, v, kernel_size=self.kernel_size, dilation=self.dilation, rpb=self.rpb, scale=self.scale)
            return self.proj_drop(self.proj(out.reshape(B, H, W, C)))
        q, k, v = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)  # (B, heads, H, W, D)
        # both kernels are exact; on small maps the masked full attention is faster (benchmarks/: 14x14 2.6x)
        kernel = naive_neighborhood_attention if H * W <= SMALL_MAP_TOKENS else neighborhood_attention
        out = kernel(q * self.scale, k, v, self.kernel_size, self.dilation, self.rpb)
        out = out.permute(0, 2, 3, 1, 4).reshape(B, H, W, C)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, kernel_size={self.kernel_size}, dilation={self.dilation}"
