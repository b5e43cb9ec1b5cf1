"""Every converter against its reference implementation, on identical random weights (fp32).

Tolerance: max abs difference <= 1e-4 on pooled embeddings and on all final tokens. The measured
figures are printed with ``pytest -s`` and recorded in the README.
"""

from __future__ import annotations

import pytest
import torch

import encoderzoo
from encoderzoo import get_spec

from .helpers import dinov2_hf_reference, open_clip_reference, siglip_hf_reference, timm_reference

ATOL = 1e-4
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
