"""transformers SigLIP checkpoints (MedSigLIP) -> timm ``vit_so400m_patch14_siglip_*`` with its MAP head.

Reads the vision tower of a full ``SiglipModel`` (``vision_model.`` prefix; the text tower and the
logit scale/bias are dropped) or of a ``SiglipVisionModel``.
"""

from __future__ import annotations

import re

import torch

from ..spec import EncoderSpec
from ._qkv import QKVParts, fuse_qkv

_FIXED = {
    "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
    "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
    "post_layernorm.weight": "norm.weight",
    "post_layernorm.bias": "norm.bias",
    "head.probe": "attn_pool.latent",
    "head.attention.out_proj.weight": "attn_pool.proj.weight",
    "head.attention.out_proj.bias": "attn_pool.proj.bias",
    "head.layernorm.weight": "attn_pool.norm.weight",
    "head.layernorm.bias": "attn_pool.norm.bias",
    "head.mlp.fc1.weight": "attn_pool.mlp.fc1.weight",
    "head.mlp.fc1.bias": "attn_pool.mlp.fc1.bias",
    "head.mlp.fc2.weight": "attn_pool.mlp.fc2.weight",
    "head.mlp.fc2.bias": "attn_pool.mlp.fc2.bias",
}
_BLOCK = {
    "layer_norm1": "norm1",
    "layer_norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "self_attn.out_proj": "attn.proj",
}
_QKV = {"self_attn.q_proj": "q", "self_attn.k_proj": "k", "self_attn.v_proj": "v"}
_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_DROPPED = ("text_model.", "logit_scale", "logit_bias")


def convert(state: dict[str, torch.Tensor], spec: EncoderSpec) -> dict[str, torch.Tensor]:
    """Rename keys, fuse q/k/v, split the head's packed in-projection into timm's ``q`` and ``kv``."""
    out: dict[str, torch.Tensor] = {}
    qkv: QKVParts = {}
    for key, value in state.items():
        if key.startswith(_DROPPED):
            continue
        key = key.removeprefix("vision_model.")
        if key in _FIXED:
            out[_FIXED[key]] = value
        elif key == "embeddings.position_embedding.weight":
            out["pos_embed"] = value.unsqueeze(0)
        elif key in ("head.attention.in_proj_weight", "head.attention.in_proj_bias"):
            leaf = key.rsplit("_", 1)[1]
            dim = value.shape[0] // 3
            out[f"attn_pool.q.{leaf}"] = value[:dim]
            out[f"attn_pool.kv.{leaf}"] = value[dim:]
        elif (match := _LAYER.match(key)) and match[2] in _BLOCK:
            out[f"blocks.{match[1]}.{_BLOCK[match[2]]}.{match[3]}"] = value
        elif match and match[2] in _QKV:
            qkv.setdefault((int(match[1]), match[3]), {})[_QKV[match[2]]] = value
        else:
            out[f"unconverted:{key}"] = value
    fuse_qkv(qkv, out, "encoder.layers")
    return {f"trunk.{k}": v for k, v in out.items()}
