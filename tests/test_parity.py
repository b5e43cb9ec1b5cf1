"""Every converter against its reference implementation, on identical random weights (fp32).

Tolerance: max abs difference <= 5e-6 on pooled embeddings and on all final tokens (weights ~N(0, 0.2)).
Measured: <= 1.0e-6 over every comparison (rounding: the reference and we order float32 sums differently).
A real bug is larger: building MedSigLIP with exact GELU instead of tanh-GELU moves tokens by 1.8e-5.
The measured figures are printed with ``pytest -s`` and recorded in the README.
"""

from __future__ import annotations

import pytest
import torch

import encoderzoo
from encoderzoo import get_spec

from .helpers import dinov2_hf_reference, dinov2_sizes, open_clip_reference, siglip_hf_reference, timm_reference

ATOL = 5e-6
TIMM_FAMILIES = [n for n in encoderzoo.list_encoders() if get_spec(n).source.format == "timm-hub"]


def _pixels(spec, n=3):
    return torch.randn(n, 3, spec.input_size, spec.input_size)


def _report(name, what, diff):
    print(f"parity {name:28s} {what:8s} max|diff| = {diff:.2e}")
    assert diff <= ATOL, f"{name} {what}: max abs diff {diff:.2e} > {ATOL}"


@pytest.mark.parametrize("attention", ["sdpa", "math"])
@pytest.mark.parametrize("name", TIMM_FAMILIES)
def test_timm_families_match_timm(name, attention, tmp_path):
    spec = get_spec(name).tiny_variant()
    ref, path = timm_reference(spec, tmp_path)
    enc = encoderzoo.load(spec, weights=path, attention=attention)
    x = _pixels(spec)
    with torch.no_grad():
        ref_tokens = ref.forward_features(x)
        tokens = enc.forward_tokens(x)
        emb = enc.embed(x)
    # DINOv2 and DINOv3 are pooled on the class token, whatever timm's default head does
    _report(spec.name, "cls", (emb - ref_tokens[:, 0]).abs().max().item())
    _report(spec.name, "tokens", (torch.cat(tokens, 1) - ref_tokens).abs().max().item())
    assert tokens.prefix.shape[1] == spec.num_prefix_tokens


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_rad_dino_matches_transformers_dinov2(attention, tmp_path):
    spec = get_spec("rad-dino").tiny_variant()
    ref, path = dinov2_hf_reference(spec, tmp_path)
    enc = encoderzoo.load(spec, weights=path, attention=attention)
    x = _pixels(spec)
    with torch.no_grad():
        out = ref(pixel_values=x)
        emb, tokens = enc.embed(x), enc.forward_tokens(x)
    _report(spec.name, "pooled", (emb - out.pooler_output).abs().max().item())
    _report(spec.name, "tokens", (torch.cat(tokens, 1) - out.last_hidden_state).abs().max().item())


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_medsiglip_matches_transformers_siglip(attention, tmp_path):
    spec = get_spec("medsiglip-448").tiny_variant()
    ref, path = siglip_hf_reference(spec, tmp_path)
    enc = encoderzoo.load(spec, weights=path, attention=attention)
    x = _pixels(spec)
    with torch.no_grad():
        out = ref.vision_model(pixel_values=x)
        emb, tokens = enc.embed(x), enc.forward_tokens(x)
    assert tokens.prefix.shape[1] == 0
    _report(spec.name, "pooled", (emb - out.pooler_output).abs().max().item())
    _report(spec.name, "tokens", (tokens.patches - out.last_hidden_state).abs().max().item())


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_biomedclip_matches_open_clip(attention, tmp_path):
    spec = get_spec("biomedclip").tiny_variant()
    ref, path = open_clip_reference(spec, tmp_path)
    enc = encoderzoo.load(spec, weights=path, attention=attention)
    x = _pixels(spec, n=2)
    with torch.no_grad():
        expected = ref.encode_image(x)
        ref_tokens = ref.visual.trunk.forward_features(x)
        emb, tokens = enc.embed(x), enc.forward_tokens(x)
    assert emb.shape == (2, spec.proj_dim)
    _report(spec.name, "proj", (emb - expected).abs().max().item())
    _report(spec.name, "tokens", (torch.cat(tokens, 1) - ref_tokens).abs().max().item())


def _timm_dinov2_to_transformers(state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict:
    """timm's DINOv2 layout into transformers' ``Dinov2Model`` layout, written here from the two state dicts
    (encoderzoo's converter maps the other way, for RAD-DINO; it is not used). ``reference`` is the target
    model's own state dict: it decides the attention names (``q_proj`` in transformers 5, ``attention.query``
    before) and supplies ``mask_token``, which timm does not have and inference does not use."""
    fused = any(".attention.q_proj." in k for k in reference)
    if fused:
        q, k, v, o = "attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj"
    else:
        q, k, v = "attention.attention.query", "attention.attention.key", "attention.attention.value"
        o = "attention.output.dense"
    out = {
        "embeddings.cls_token": state["cls_token"],
        "embeddings.mask_token": reference["embeddings.mask_token"],
        "embeddings.position_embeddings": state["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        "layernorm.weight": state["norm.weight"],
        "layernorm.bias": state["norm.bias"],
    }
    depth = 1 + max(int(name.split(".")[1]) for name in state if name.startswith("blocks."))
    for i in range(depth):
        src, dst = f"blocks.{i}.", f"encoder.layer.{i}."
        for part in ("weight", "bias"):
            for proj, chunk in zip((q, k, v), state[f"{src}attn.qkv.{part}"].chunk(3, dim=0), strict=True):
                out[f"{dst}{proj}.{part}"] = chunk
            out[f"{dst}{o}.{part}"] = state[f"{src}attn.proj.{part}"]
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[f"{dst}{name}.{part}"] = state[f"{src}{name}.{part}"]
        out[f"{dst}layer_scale1.lambda1"] = state[f"{src}ls1.gamma"]
        out[f"{dst}layer_scale2.lambda1"] = state[f"{src}ls2.gamma"]
    return out


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_dinov2_matches_transformers_dinov2(attention, tmp_path):
    """DINOv2 from timm's published layout, against transformers' ``Dinov2Model`` on the same weights: what most
    users compare with (facebook/dinov2-* on the Hub)."""
    from transformers import Dinov2Config, Dinov2Model

    spec = get_spec("dinov2-small").tiny_variant()
    timm_model, path = timm_reference(spec, tmp_path)
    config = Dinov2Config(**dinov2_sizes(spec), mlp_ratio=4, layer_norm_eps=1e-6)
    hf = Dinov2Model(config).eval()
    hf.load_state_dict(_timm_dinov2_to_transformers(timm_model.state_dict(), hf.state_dict()), strict=True)
    enc = encoderzoo.load(spec, weights=path, attention=attention)
    x = _pixels(spec)
    with torch.no_grad():
        out = hf(pixel_values=x)
        emb, tokens = enc.embed(x), enc.forward_tokens(x)
    _report(f"{spec.name} vs hf", "pooled", (emb - out.pooler_output).abs().max().item())
    _report(f"{spec.name} vs hf", "tokens", (torch.cat(tokens, 1) - out.last_hidden_state).abs().max().item())
