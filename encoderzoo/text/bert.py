"""BiomedCLIP's text tower: a BERT encoder (PubMedBERT), [CLS] of the last hidden state, open_clip's projection.

Module and parameter names follow transformers' ``BertModel`` inside open_clip's ``HFTextEncoder``
(``transformer.embeddings.word_embeddings``, ``transformer.encoder.layer.N.attention.self.query`` ...), so the
text half of BiomedCLIP's ``open_clip_pytorch_model.bin`` loads by name. Plain PyTorch: no transformers needed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..spec import TextSpec
from .attention import attend_masked
from .tower import TextTower


def _act(name: str) -> nn.Module:
    return nn.GELU(approximate="tanh" if name == "gelu_tanh" else "none")


class _Embeddings(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(spec.vocab_size, spec.width, padding_idx=spec.pad_token_id)
        self.position_embeddings = nn.Embedding(spec.max_positions, spec.width)
        self.token_type_embeddings = nn.Embedding(spec.type_vocab_size, spec.width)
        self.LayerNorm = nn.LayerNorm(spec.width, eps=spec.norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.heads = spec.heads
        self.query = nn.Linear(spec.width, spec.width)
        self.key = nn.Linear(spec.width, spec.width)
        self.value = nn.Linear(spec.width, spec.width)
        self.backend = "sdpa"

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = (proj(x).reshape(B, N, self.heads, -1).transpose(1, 2) for proj in (self.query, self.key, self.value))
        return attend_masked(q, k, v, keep, self.backend).transpose(1, 2).reshape(B, N, C)


class _AddNorm(nn.Module):
    """``LayerNorm(dense(h) + residual)``: BERT's post-norm residual (``BertSelfOutput`` / ``BertOutput``)."""

    def __init__(self, d_in: int, d_out: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class _Attention(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.self = _SelfAttention(spec)
        self.output = _AddNorm(spec.width, spec.width, spec.norm_eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, keep), x)


class _Intermediate(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.dense = nn.Linear(spec.width, spec.mlp_dim)
        self.act = _act(spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.attention = _Attention(spec)
        self.intermediate = _Intermediate(spec)
        self.output = _AddNorm(spec.mlp_dim, spec.width, spec.norm_eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        x = self.attention(x, keep)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(spec) for _ in range(spec.depth))


class _Bert(nn.Module):
    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.embeddings = _Embeddings(spec)
        self.encoder = _Encoder(spec)

    def forward(self, ids: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, keep)
        return x


class BertTextTower(TextTower):
    """Token ids ``(N, L)`` -> text embeddings ``(N, embed_dim)``; holds the CLIP ``logit_scale``."""

    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.spec = spec
        self.transformer = _Bert(spec)
        if spec.proj == "mlp":
            hidden = (spec.width + spec.embed_dim) // 2
            self.proj: nn.Module = nn.Sequential(
                nn.Linear(spec.width, hidden, bias=False), nn.GELU(), nn.Linear(hidden, spec.embed_dim, bias=False)
            )
        else:
            self.proj = nn.Linear(spec.width, spec.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.logit_bias = None

    def forward_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Last hidden states ``(N, L, width)``; padding tokens are masked out of attention as keys."""
        keep = None if self.spec.pad_token_id is None else (ids != self.spec.pad_token_id)[:, None, None, :]
        return self.transformer(ids, keep)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.forward_tokens(ids)[:, 0])
