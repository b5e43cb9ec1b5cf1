"""``load(..., image_size=S)``: every ViT family against its upstream reference at a non-native size.

References (tiny random configs of the real architectures, identical weights, fp32, max abs diff <= 1e-4):
- DINOv2 and RAD-DINO: transformers ``Dinov2Model`` (always interpolates its position encoding);
- DINOv2 with registers: transformers ``Dinov2WithRegistersModel``;
- MedSigLIP: transformers ``SiglipModel.vision_model(..., interpolate_pos_encoding=True)``;
- BiomedCLIP: open_clip ``CLIP`` whose timm tower was moved to the size by ``visual.set_input_size``;
- DINOv3: timm's Eva at its native size, fed the other size (RoPE is computed per grid).
Both a smaller grid (downsampling, where antialiasing matters) and a larger one are checked.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from safetensors.torch import save_file

import encoderzoo
from encoderzoo import get_spec
from encoderzoo.convert import dinov2_hf
from encoderzoo.engine import embed_dataset
from encoderzoo.errors import StateDictMismatchError
from encoderzoo.resolution import ImageSizeError, at_image_size, pos_embed_resampling

from .helpers import (
    dinov2_hf_reference,
    dinov2_sizes,
    open_clip_reference,
    randomize_,
    siglip_hf_reference,
    timm_reference,
)

ATOL = 1e-4
NATIVE = 56  # a 4x4 grid of 14-px patches: small, but a real bicubic resampling in both directions
SIZES = [42, 98]  # 3x3 (down) and 7x7 (up)


def _at(name: str, size: int = NATIVE) -> encoderzoo.EncoderSpec:
    spec = get_spec(name).tiny_variant()
    return dataclasses.replace(spec, input_size=size, arch_kwargs={**spec.arch_kwargs, "img_size": size})


def _close(what: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape, f"{what}: {tuple(ours.shape)} vs {tuple(ref.shape)}"
    diff = (ours - ref).abs().max().item()
    print(f"resolution parity {what:40s} max|diff| = {diff:.2e}")
    assert diff <= ATOL, f"{what}: max abs diff {diff:.2e} > {ATOL}"


def _timm_file_from_hf_dinov2(model, spec, folder):
    """The transformers model's weights in timm layout, as timm/ publishes DINOv2 on the Hub."""
    state = dinov2_hf.convert(model.state_dict(), spec)
    path = folder / "model.safetensors"
    save_file({k.removeprefix("trunk."): v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.parametrize("size", SIZES)
def test_rad_dino_matches_transformers_interpolation(size, tmp_path):
    spec = _at("rad-dino")
    ref, path = dinov2_hf_reference(spec, tmp_path)
    enc = encoderzoo.load(spec, weights=path, image_size=size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = ref(pixel_values=x)
        tokens = enc.forward_tokens(x)
        _close(f"rad-dino {NATIVE}->{size} pooled", enc.embed(x), out.pooler_output)
    _close(f"rad-dino {NATIVE}->{size} tokens", torch.cat(tokens, 1), out.last_hidden_state)
    assert enc.spec.input_size == size and enc.spec.native_input_size == NATIVE


@pytest.mark.parametrize("size", SIZES)
def test_dinov2_timm_weights_match_transformers_interpolation(size, tmp_path):
    spec = _at("dinov2-small")
    ref, _ = dinov2_hf_reference(spec, tmp_path)
    path = _timm_file_from_hf_dinov2(ref, spec, tmp_path)
    enc = encoderzoo.load(spec, weights=path, image_size=size, attention="math")
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = ref(pixel_values=x)
        _close(f"dinov2 {NATIVE}->{size} tokens", torch.cat(enc.forward_tokens(x), 1), out.last_hidden_state)


def _dinov2_registers_reference(spec, folder):
    """transformers Dinov2WithRegistersModel and the same weights in timm's reg4 layout.

    timm folds the class token's position into ``cls_token`` and keeps only patch positions in ``pos_embed``
    (``no_embed_class``); registers carry no position, as upstream.
    """
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    config = Dinov2WithRegistersConfig(
        **dinov2_sizes(spec), intermediate_size=4 * spec.arch_kwargs["embed_dim"], num_register_tokens=4
    )
    model = randomize_(Dinov2WithRegistersModel(config))
    state = dict(model.state_dict())
    pos = state.pop("embeddings.position_embeddings")
    cls = state.pop("embeddings.cls_token")
    registers = state.pop("embeddings.register_tokens")
    timm_state = {k.removeprefix("trunk."): v for k, v in dinov2_hf.convert(state, spec).items()}
    timm_state.update(cls_token=cls + pos[:, :1], reg_token=registers, pos_embed=pos[:, 1:])
    path = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in timm_state.items()}, str(path))
    return model, path


@pytest.mark.parametrize("size", SIZES)
def test_dinov2_registers_match_transformers_interpolation(size, tmp_path):
    spec = _at("dinov2-small-reg4")
    ref, path = _dinov2_registers_reference(spec, tmp_path)
    enc = encoderzoo.load(spec, weights=path, image_size=size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = ref(pixel_values=x)
        tokens = enc.forward_tokens(x)
    assert tokens.prefix.shape[1] == 5
    _close(f"dinov2-reg4 {NATIVE}->{size} tokens", torch.cat(tokens, 1), out.last_hidden_state)


@pytest.mark.parametrize("size", SIZES)
def test_medsiglip_matches_transformers_interpolate_pos_encoding(size, tmp_path):
    spec = _at("medsiglip-448")
    ref, path = siglip_hf_reference(spec, tmp_path)
    enc = encoderzoo.load(spec, weights=path, image_size=size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = ref.vision_model(pixel_values=x, interpolate_pos_encoding=True)
        tokens = enc.forward_tokens(x)
        _close(f"medsiglip {NATIVE}->{size} pooled", enc.embed(x), out.pooler_output)
    _close(f"medsiglip {NATIVE}->{size} tokens", tokens.patches, out.last_hidden_state)


def test_biomedclip_matches_open_clip_set_input_size(tmp_path):
    spec = get_spec("biomedclip").tiny_variant()  # ViT-Ti/16 at 224: a 14x14 grid
    ref, path = open_clip_reference(spec, tmp_path)
    for size in (128, 256):  # 8x8 and 16x16
        enc = encoderzoo.load(spec, weights=path, image_size=size)
        moved = copy.deepcopy(ref)
        moved.visual.set_input_size(size)  # open_clip's force_image_size path: timm's resample_abs_pos_embed
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            _close(f"biomedclip 224->{size} proj", enc.embed(x), moved.encode_image(x))
            ref_tokens = moved.visual.trunk.forward_features(x)
            _close(f"biomedclip 224->{size} tokens", torch.cat(enc.forward_tokens(x), 1), ref_tokens)


@pytest.mark.parametrize("size", [48, 80])
def test_dinov3_rope_needs_no_resampling(size, tmp_path):
    spec = get_spec("dinov3-small").tiny_variant()  # native 32: a 2x2 grid of 16-px patches
    ref, path = timm_reference(spec, tmp_path)  # timm's DINOv3 computes RoPE for the grid it is given
    enc = encoderzoo.load(spec, weights=path, image_size=size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        _close(f"dinov3 32->{size} tokens", torch.cat(enc.forward_tokens(x), 1), ref.forward_features(x))


def test_family_rules_name_their_reference():
    assert not pos_embed_resampling(get_spec("dinov2-base")).antialias
    assert not pos_embed_resampling(get_spec("rad-dino")).antialias
    assert pos_embed_resampling(get_spec("dinov2-base-reg4")).antialias
    assert not pos_embed_resampling(get_spec("medsiglip-448")).antialias
    assert pos_embed_resampling(get_spec("biomedclip")).antialias


@pytest.mark.parametrize(
    ("name", "size", "fragment"),
    [
        ("dinov2-base", 225, "multiple of 14"),
        ("dinov2-base", 7, "multiple of 14"),
        ("dinov3-small", 250, "multiple of 16"),
        ("biomedclip", 100, "nearest that work: 96, 112"),
        ("medvit-v2-tiny", 120, "multiple of 16"),
        ("medvit-v2-tiny", 96, "at least 112"),
        ("efficientnet-lite0", 16, "at least 32"),
    ],
)
def test_sizes_the_network_cannot_take_are_clear_errors(name, size, fragment):
    with pytest.raises(ImageSizeError, match=fragment) as info:
        encoderzoo.load(name, pretrained=False, image_size=size)
    assert isinstance(info.value, encoderzoo.EncoderZooError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("size", ["224", 224.0, True])
def test_image_size_must_be_an_int(size):
    with pytest.raises(ImageSizeError, match="must be an int"):
        at_image_size(get_spec("dinov2-base"), size)


def test_cnns_take_any_size_their_strides_allow():
    lite = encoderzoo.load("efficientnet-lite0", image_size=112)  # real weights, shipped in the package
    pixels = lite.transform(torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8))
    assert pixels.shape == (2, 3, 112, 112) and lite.spec.input_size == 112
    assert lite.embed(pixels).shape == (2, 1280)
    medvit = encoderzoo.load(get_spec("medvit-v2-tiny").tiny_variant(), pretrained=False, image_size=144)
    assert medvit.embed(torch.randn(1, 3, 144, 144)).shape == (1, 128)


def test_size_is_in_the_embedding_cache_key(tmp_path):
    from encoderzoo.data import open_dataset

    data = open_dataset("sample:pneumoniamnist")
    spec = get_spec("dinov2-small").tiny_variant()
    ref, path = timm_reference(spec, tmp_path)
    native = encoderzoo.load(spec, weights=path)
    other = encoderzoo.load(spec, weights=path, image_size=42)
    first = embed_dataset(native, data, "val", cache_dir=tmp_path / "cache", progress=False)
    second = embed_dataset(other, data, "val", cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # two cache entries: the second run reused nothing
    assert second.metadata["encoder_spec"]["input_size"] == 42
    assert not torch.allclose(first.features, second.features)


def test_native_size_gives_back_the_native_spec():
    spec = get_spec("dinov2-base")
    assert at_image_size(spec, None) is spec and at_image_size(spec, 518) is spec
    there_and_back = at_image_size(at_image_size(spec, 224), 518)
    assert there_and_back.input_size == 518 and there_and_back.native_input_size is None
    assert there_and_back.arch_kwargs["img_size"] == 518  # timm's default for this architecture, now explicit


def test_save_pretrained_round_trips_the_size(tmp_path):
    spec = _at("rad-dino")
    ref, path = dinov2_hf_reference(spec, tmp_path)
    enc = encoderzoo.load(spec, weights=path, image_size=42)
    folder = encoderzoo.save_pretrained(enc, tmp_path / "saved")
    again = encoderzoo.load(f"local-dir:{folder}")
    assert again.spec.to_dict() == enc.spec.to_dict() and again.spec.input_size == 42
    x = torch.randn(2, 3, 42, 42)
    with torch.no_grad():
        assert torch.equal(again.embed(x), enc.embed(x))
        # a saved folder can be moved to another size in turn: resampled from the saved 3x3 grid
        bigger = encoderzoo.load(f"local-dir:{folder}", image_size=70)
        assert bigger.spec.input_size == 70 and bigger.spec.native_input_size == NATIVE
        assert bigger.embed(torch.randn(1, 3, 70, 70)).shape == (1, 32)


def test_a_resized_spec_loads_the_canonical_checkpoint_again(tmp_path):
    """``load(encoder.spec, weights=...)`` (as adapted folders do) resamples from the checkpoint's native grid."""
    spec = _at("rad-dino")
    _, path = dinov2_hf_reference(spec, tmp_path)
    first = encoderzoo.load(spec, weights=path, image_size=42)
    again = encoderzoo.load(first.spec, weights=path)
    x = torch.randn(1, 3, 42, 42)
    with torch.no_grad():
        assert torch.equal(again.embed(x), first.embed(x))


def test_a_checkpoint_of_another_size_is_reported_not_stretched(tmp_path):
    small = _at("dinov2-small", 42)
    _, path = timm_reference(small, tmp_path)  # a 3x3 grid, while the spec says 4x4
    with pytest.raises(StateDictMismatchError, match="pos_embed"):
        encoderzoo.load(_at("dinov2-small"), weights=path, image_size=70)


def test_cli_embed_and_probe_at_112_px_on_real_images(tmp_path):
    """Real chest X-rays (a stratified slice of the bundled PneumoniaMNIST sample) through efficientnet-lite0's real
    weights at 112 px, from the command line."""
    import json
    from importlib import resources

    import numpy as np
    from typer.testing import CliRunner

    from encoderzoo.cli import app
    from encoderzoo.embeddings import EmbeddingSet

    sample = np.load(resources.files("encoderzoo") / "assets" / "pneumoniamnist_sample.npz")
    arrays = {}
    for split, n in (("train", 60), ("val", 20), ("test", 40)):
        labels = sample[f"{split}_labels"][:, 0]
        keep = np.concatenate([np.flatnonzero(labels == c)[: n // 2] for c in (0, 1)])
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = sample[f"{split}_images"][keep], labels[keep, None]
    np.savez(tmp_path / "slice.npz", **arrays)

    runner = CliRunner()
    args = ["-e", "efficientnet-lite0", "-d", f"npz:{tmp_path / 'slice.npz'}", "--image-size", "112", "--device", "cpu"]
    embedded = runner.invoke(app, ["embed", *args, "--split", "val", "--format", "json", "--out", str(tmp_path)])
    assert embedded.exit_code == 0, embedded.output
    saved = EmbeddingSet.load(tmp_path / "val.safetensors")
    assert saved.metadata["encoder_spec"]["input_size"] == 112 and saved.features.shape == (20, 1280)
    probed = runner.invoke(app, ["probe", *args, "--probes", "knn", "--out", str(tmp_path / "results.json")])
    assert probed.exit_code == 0, probed.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["image_size"] == 112 and results["native_image_size"] == 224
    assert results["probes"]["knn"]["accuracy"]["mean"] >= 0.65  # real features: well above chance (0.5)

    bad = runner.invoke(app, ["embed", "-e", "dinov2-small", "-d", "sample:pneumoniamnist", "--image-size", "100"])
    assert bad.exit_code == 2 and "multiple of 14" in bad.output
