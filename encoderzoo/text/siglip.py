"""MedSigLIP's text tower: SigLIP's text transformer, pooled on the last position, then a linear head.

Module and parameter names follow transformers' ``SiglipTextTransformer`` (``embeddings.token_embedding``,
``encoder.layers.N.self_attn.q_proj``, ``final_layer_norm``, ``head``), so the ``text_model.`` half of a
``SiglipModel`` checkpoint loads by name. Pre-norm blocks; no padding mask and no causal mask: SigLIP was
trained on texts padded to the full length with its end-of-text token, and reads the last position.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..spec import TextSpec
from .attention import attend_masked
from .tower import TextTower


class _Embeddings(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(spec.vocab_size, spec.width)
        self.position_embedding = nn.Embedding(spec.max_positions, spec.width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(ids) + self.position_embedding(torch.arange(ids.shape[1], device=ids.device))


class _SelfAttention(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.heads = spec.heads
        self.q_proj = nn.Linear(spec.width, spec.width)
        self.k_proj = nn.Linear(spec.width, spec.width)
        self.v_proj = nn.Linear(spec.width, spec.width)
        self.out_proj = nn.Linear(spec.width, spec.width)
        self.backend = "sdpa"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = (p(x).reshape(B, N, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(attend_masked(q, k, v, None, self.backend).transpose(1, 2).reshape(B, N, C))


class _MLP(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.fc1 = nn.Linear(spec.width, spec.mlp_dim)
        self.act = nn.GELU(approximate="tanh" if spec.act == "gelu_tanh" else "none")
        self.fc2 = nn.Linear(spec.mlp_dim, spec.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Layer(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(spec.width, eps=spec.norm_eps)
        self.self_attn = _SelfAttention(spec)
        self.layer_norm2 = nn.LayerNorm(spec.width, eps=spec.norm_eps)
        self.mlp = _MLP(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class _Encoder(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Layer(spec) for _ in range(spec.depth))


class SiglipTextTower(TextTower):
    """Token ids ``(N, L)`` -> text embeddings ``(N, embed_dim)``; holds SigLIP's ``logit_scale`` and ``logit_bias``."""

    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        if spec.pad_token_id is not None:
            raise ValueError("SigLIP text towers attend to padding (pad_token_id must be None)")
        self.spec = spec
        self.embeddings = _Embeddings(spec)
        self.encoder = _Encoder(spec)
        self.final_layer_norm = nn.LayerNorm(spec.width, eps=spec.norm_eps)
        self.head = nn.Linear(spec.width, spec.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor([math.log(10.0)]))
        self.logit_bias = nn.Parameter(torch.tensor([-10.0]))

    def forward_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Last hidden states ``(N, L, width)`` after the final norm."""
        x = self.embeddings(ids)
        for layer in self.encoder.layers:
            x = layer(x)
        return self.final_layer_norm(x)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_tokens(ids)[:, -1])
