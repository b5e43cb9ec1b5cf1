"""transformers ``Dinov2Model`` checkpoints (RAD-DINO) -> timm ``vit_*_patch14_dinov2``.

Both the on-disk layout (``attention.attention.query``, ``attention.output.dense``) and the in-memory
transformers>=5 layout (``attention.q_proj``, ``attention.o_proj``) are accepted.
"""

from __future__ import annotations

import re

import torch

from ..spec import EncoderSpec
from ._qkv import QKVParts, fuse_qkv

_FIXED = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_IGNORED = ("embeddings.mask_token", "pooler.")
_BLOCK = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "attention.o_proj.weight": "attn.proj.weight",
    "attention.o_proj.bias": "attn.proj.bias",
}
_QKV = {
    "attention.attention.query": "q",
    "attention.attention.key": "k",
    "attention.attention.value": "v",
    "attention.q_proj": "q",
    "attention.k_proj": "k",
    "attention.v_proj": "v",
}
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")


def convert(state: dict[str, torch.Tensor], spec: EncoderSpec) -> dict[str, torch.Tensor]:
    """Rename keys and fuse separate q/k/v projections into timm's ``qkv``.

    Keys that match no rule are kept under an ``unconverted:`` name so the strict load reports them.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: QKVParts = {}
    for key, value in state.items():
        key = key.removeprefix("dinov2.")
        if key in _FIXED:
            out[_FIXED[key]] = value
        elif key.startswith(_IGNORED):
            continue
        elif (match := _LAYER.match(key)) and match[2] in _BLOCK:
            out[f"blocks.{match[1]}.{_BLOCK[match[2]]}"] = value
        elif match and (parts := match[2].rsplit(".", 1))[0] in _QKV:
            qkv.setdefault((int(match[1]), parts[1]), {})[_QKV[parts[0]]] = value
        else:
            out[f"unconverted:{key}"] = value
    fuse_qkv(qkv, out, "encoder.layer")
    return {f"trunk.{k}": v for k, v in out.items()}
