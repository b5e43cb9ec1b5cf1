"""One attention kernel switch for every ViT family in the zoo.

timm's attention modules (plain ViT ``Attention``, DINOv3's RoPE ``EvaAttention`` and SigLIP's
``AttentionPoolLatent``) are re-classed in place to subclasses whose only difference is the kernel call:
parameters, state-dict keys and the surrounding arithmetic stay timm's. The kernel is chosen per module
by ``backend``:

- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` (Flash / cuDNN / memory-efficient / math,
  chosen by PyTorch for the device and dtype);
- ``xformers``: ``xformers.ops.memory_efficient_attention`` (CUDA only, optional extra);
- ``math``: explicit softmax(q k^T / sqrt(d)) v, the reference the others are tested against;
- ``auto``: ``sdpa``, measured faster than ``math`` on CPU (benchmarks/results/attention_cpu.json); no GPU
  measurement yet, and a committed one decides whether that changes on CUDA.

Every forward here calls its projection modules (``self.qkv(x)``, ``self.proj(x)`` ...), never their
``.weight`` through ``F.linear``: LoRA (peft) wraps those modules, and reading the weight directly would
silently bypass the adapter. timm's own ``EvaAttention`` does read ``qkv.weight`` when it has separate
q/v biases; ``ZooEvaAttention`` adds those biases after calling the module instead.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import Attention, AttentionPoolLatent, apply_rot_embed_cat
from timm.models.eva import EvaAttention
from torch import nn

from .errors import AttentionBackendError

Backend = Literal["auto", "sdpa", "xformers", "math"]
BACKENDS: tuple[str, ...] = ("auto", "sdpa", "xformers", "math")


def xformers_available() -> bool:
    return importlib.util.find_spec("xformers") is not None


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """Validate ``backend`` for ``device`` and turn ``auto`` into a concrete kernel."""
    if backend not in BACKENDS:
        raise AttentionBackendError(f"attention must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "sdpa"
    if backend == "xformers":
        if not xformers_available():
            raise AttentionBackendError(
                "attention='xformers' needs the xformers package: pip install 'encoderzoo[xformers]' "
                "(its wheels pin one exact torch version). attention='sdpa' needs nothing extra."
            )
        if torch.device(device).type != "cuda":
            raise AttentionBackendError(
                f"attention='xformers' runs on CUDA only, but the encoder is on {torch.device(device)}; "
                "use attention='sdpa' (or 'auto') on CPU."
            )
    return backend


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str, dropout_p: float = 0.0) -> torch.Tensor:
    """Multi-head attention on ``(B, heads, N, head_dim)`` tensors with scale ``head_dim ** -0.5``."""
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if backend == "math":
        weights = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
        weights = weights.softmax(dim=-1)
        if dropout_p:
            weights = F.dropout(weights, p=dropout_p)
        return weights @ v
    if backend == "xformers":
        import xformers.ops as xops

        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), p=dropout_p)
        return out.transpose(1, 2)
    raise AttentionBackendError(f"unresolved attention backend {backend!r}")


class _Kernel:
    backend: str = "sdpa"

    def _dropout_p(self) -> float:
        drop = getattr(self, "attn_drop", None)
        return drop.p if (drop is not None and self.training) else 0.0  # type: ignore[attr-defined]


class ZooAttention(_Kernel, Attention):
    """timm ``Attention`` (DINOv2, RAD-DINO, SigLIP, BiomedCLIP) with a selectable kernel."""

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise AttentionBackendError("encoderzoo attention takes no masks: encoders attend to every token")
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = attend(q, k, v, self.backend, self._dropout_p())
        x = x.transpose(1, 2).reshape(B, N, self.attn_dim)
        return self.proj_drop(self.proj(self.norm(x)))


class ZooEvaAttention(_Kernel, EvaAttention):
    """timm ``EvaAttention`` with RoPE (DINOv3) and a selectable kernel."""

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise AttentionBackendError("encoderzoo attention takes no masks: encoders attend to every token")
        B, N, C = x.shape
        if self.qkv is not None:
            # call the module (never F.linear on self.qkv.weight): a peft-wrapped qkv must see its input
            qkv = self.qkv(x)
            if self.q_bias is not None:
                qkv = qkv + torch.cat((self.q_bias, self.k_bias, self.v_bias))
            q, k, v = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q, k, v = (
                proj(x).reshape(B, N, self.num_heads, -1).transpose(1, 2)
                for proj in (self.q_proj, self.k_proj, self.v_proj)
            )
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            npt, half = self.num_prefix_tokens, getattr(self, "rotate_half", False)
            q = torch.cat([q[:, :, :npt], apply_rot_embed_cat(q[:, :, npt:], rope, half=half)], dim=2).type_as(v)
            k = torch.cat([k[:, :, :npt], apply_rot_embed_cat(k[:, :, npt:], rope, half=half)], dim=2).type_as(v)
        x = attend(q, k, v, self.backend, self._dropout_p())
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(self.norm(x)))


class ZooAttentionPoolLatent(_Kernel, AttentionPoolLatent):
    """timm ``AttentionPoolLatent`` (SigLIP's MAP head) with a selectable kernel."""

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attn_mask is not None:
            raise AttentionBackendError("encoderzoo attention takes no masks: encoders attend to every token")
        B, N, C = x.shape
        if self.pos_embed is not None:
            x = x + self.pos_embed.unsqueeze(0).to(x.dtype)
        q = self.q(self.latent.expand(B, -1, -1)).reshape(B, self.latent_len, self.num_heads, self.head_dim)
        q = q.transpose(1, 2)
        k, v = self.kv(x).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = attend(q, k, v, self.backend).transpose(1, 2).reshape(B, self.latent_len, C)
        x = self.proj_drop(self.proj(x))
        if self.mlp is not None:
            x = x + self.mlp(self.norm(x))
        if self.pool == "token":
            return x[:, 0]
        if self.pool == "avg":
            return x.mean(1)
        return x


_ZOO_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    Attention: ZooAttention,
    EvaAttention: ZooEvaAttention,
    AttentionPoolLatent: ZooAttentionPoolLatent,
}


def _check_supported(module: nn.Module) -> None:
    if getattr(module, "gate", None) is not None:
        raise AttentionBackendError(f"gated attention ({type(module).__name__}) is not supported by encoderzoo")
    if getattr(module, "qkv_bias_separate", False):
        raise AttentionBackendError("EvaAttention with qkv_bias_separate is not supported by encoderzoo")


def set_attention(model: nn.Module, backend: str) -> int:
    """Route every attention module of ``model`` through ``backend`` (already resolved). Returns the count.

    timm attention modules are re-classed to their Zoo subclass the first time; the parameters are untouched.
    """
    count = 0
    for module in model.modules():
        zoo_cls = _ZOO_CLASSES.get(type(module))
        if zoo_cls is not None:
            _check_supported(module)
            module.__class__ = zoo_cls
        if isinstance(module, _Kernel):
            module.backend = backend
            count += 1
    return count
