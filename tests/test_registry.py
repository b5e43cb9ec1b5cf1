from __future__ import annotations

import dataclasses
import json

import pytest
import timm
import torch

import encoderzoo
from encoderzoo import EncoderSpec, get_spec, list_encoders, register, unregister

REQUIRED = [
    *(f"dinov2-{s}{r}" for s in ("small", "base", "large", "giant") for r in ("", "-reg4")),
    *(f"dinov3-{s}" for s in ("small", "small-plus", "base", "large")),
    "rad-dino",
    "medsiglip-448",
    "biomedclip",
    "efficientnet-lite0",
]


def test_every_required_entry_is_registered():
    assert set(REQUIRED) <= set(list_encoders())


def test_wildcards():
    assert list_encoders("dinov3-*") == ["dinov3-small", "dinov3-small-plus", "dinov3-base", "dinov3-large"]
    assert list_encoders("*reg4") == [f"dinov2-{s}-reg4" for s in ("small", "base", "large", "giant")]
    assert list_encoders("nothing*") == []


@pytest.mark.parametrize("name", [*(f"dinov3-{s}" for s in ("small", "small-plus", "base", "large")), "rad-dino"])
def test_dino_families_pool_on_the_class_token(name):
    assert get_spec(name).pooling == "cls"


def test_upstream_facts():
    assert get_spec("medsiglip-448").gated and get_spec("medsiglip-448").pooling == "pooler"
    assert get_spec("medsiglip-448").interpolation == "bilinear" and not get_spec("medsiglip-448").antialias
    assert get_spec("biomedclip").source.repo_id == "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    assert get_spec("biomedclip").output_dim == 512
    assert get_spec("rad-dino").source.pinned and "MIT" in get_spec("rad-dino").licence
    assert get_spec("dinov3-base").recommended_dtype == "bfloat16"
    assert get_spec("dinov2-base-reg4").num_prefix_tokens == 5


@pytest.mark.parametrize("name", REQUIRED)
def test_spec_matches_the_architecture_it_builds(name):
    """embed_dim, patch size and prefix tokens in the spec agree with the timm module (built on 'meta')."""
    spec = get_spec(name)
    with torch.device("meta"):
        trunk = timm.create_model(spec.architecture, num_classes=0, **spec.arch_kwargs)
    assert trunk.num_features == spec.embed_dim
    if spec.patch_size:
        assert trunk.patch_embed.patch_size == (spec.patch_size, spec.patch_size)
        assert trunk.patch_embed.img_size == (spec.input_size, spec.input_size)
        assert trunk.num_prefix_tokens == spec.num_prefix_tokens


@pytest.mark.parametrize("name", REQUIRED)
def test_every_entry_has_a_tiny_variant_that_runs(name):
    spec = get_spec(name).tiny_variant()
    encoder = encoderzoo.load(spec, pretrained=False)
    with torch.no_grad():
        out = encoder.embed(torch.randn(2, 3, spec.input_size, spec.input_size))
    assert out.shape == (2, spec.output_dim) and torch.isfinite(out).all()


def test_register_a_users_own_encoder_and_round_trip_the_spec():
    base = get_spec("dinov2-small")
    mine = dataclasses.replace(base, name="my-dino", domains=("dermatology",))
    register(mine)
    try:
        assert get_spec("my-dino") is mine
        with pytest.raises(ValueError, match="already registered"):
            register(mine)
        restored = EncoderSpec.from_dict(json.loads(json.dumps(mine.to_dict())))
        assert restored.to_dict() == mine.to_dict()
    finally:
        unregister("my-dino")
    assert "my-dino" not in list_encoders()


def test_register_rejects_reserved_names():
    with pytest.raises(ValueError, match="cannot contain ':'"):
        register(dataclasses.replace(get_spec("dinov2-small"), name="hf-hub:x/y"))


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_spec("dinov2-small").pooling = "mean"  # type: ignore[misc]
    with pytest.raises(TypeError):
        get_spec("dinov2-small").arch_kwargs["depth"] = 1  # type: ignore[index]
