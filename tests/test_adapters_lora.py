"""LoRA through peft on every registry entry (tiny random variants)."""

from __future__ import annotations

import json

import peft
import pytest
import torch
from peft.tuners.lora import LoraLayer

import encoderzoo
from encoderzoo.adapters.lora import (
    LoraSettings,
    add_lora,
    has_lora,
    load_lora,
    merge_lora,
    save_lora,
    unload_lora,
)
from encoderzoo.errors import EncoderZooError, UnsupportedAdapterError
from tests.helpers import pixels, reorder_atol, sequential_layers, tiny_encoder

NAMES = encoderzoo.list_encoders()


pytestmark = pytest.mark.usefixtures("one_thread")


def plain_embed(trunk: torch.nn.Module, proj: torch.nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """Embedding straight from a (possibly peft-wrapped) timm trunk, as the contract defines it."""
    pooled = trunk.forward_head(trunk.forward_features(x), pre_logits=True)
    return proj(pooled) if proj is not None else pooled


def set_lora_b_(encoder: encoderzoo.Encoder, std: float = 0.5) -> int:
    """Non-zero LoRA update (peft initialises lora_B to zero). Returns how many lora_B tensors were set."""
    count = 0
    with torch.no_grad():
        for name, param in encoder.trunk.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, std)
                count += 1
    return count


@torch.no_grad()
def assert_changes(before: torch.Tensor, after: torch.Tensor) -> None:
    assert before.shape == after.shape
    assert (after - before).abs().max() > 1e-3 * before.abs().max()


@pytest.mark.parametrize("name", NAMES)
def test_lora_update_changes_merges_and_unloads(name):
    encoder = tiny_encoder(name)
    x = pixels(encoder)
    with torch.no_grad():
        base = encoder.embed(x)
    add_lora(encoder, LoraSettings(r=4, alpha=8))
    assert has_lora(encoder) and isinstance(encoder.trunk, peft.PeftModel)
    with torch.no_grad():
        assert torch.equal(encoder.embed(x), base)  # peft's zero lora_B: an exact no-op at start
    assert set_lora_b_(encoder) > 0
    with torch.no_grad():
        unmerged = encoder.embed(x)
    assert_changes(base, unmerged)

    merged = tiny_encoder(name)
    merged.load_state_dict(_base_state(encoder))  # same base weights, then the same adapter
    add_lora(merged, LoraSettings(r=4, alpha=8))
    merged.trunk.load_state_dict(encoder.trunk.state_dict())
    merge_lora(merged)
    assert not has_lora(merged) and not any(isinstance(m, LoraLayer) for m in merged.trunk.modules())
    with torch.no_grad():
        merged_out = merged.embed(x)  # W + BA rounded once per layer: float32 reordering, no more
        torch.testing.assert_close(merged_out, unmerged, atol=reorder_atol(unmerged, sequential_layers(merged)), rtol=0)

    unload_lora(encoder)
    assert not has_lora(encoder) and not any(isinstance(m, LoraLayer) for m in encoder.trunk.modules())
    with torch.no_grad():
        assert torch.equal(encoder.embed(x), base)


def _base_state(encoder: encoderzoo.Encoder) -> dict[str, torch.Tensor]:
    """The plain Encoder state dict of a LoRA-wrapped encoder (its base weights, LoRA dropped)."""
    state = {}
    for key, value in encoder.state_dict().items():
        if "lora_" in key:
            continue
        key = key.replace("trunk.base_model.model.", "trunk.").replace(".base_layer.", ".")
        state[key] = value
    return state


@pytest.mark.parametrize("name", NAMES)
def test_every_target_reaches_the_embedding(name):
    """LoRA on each target alone changes the output: no forward bypasses a wrapped module (reads .weight)."""
    encoder = tiny_encoder(name)
    x = pixels(encoder)
    with torch.no_grad():
        base = encoder.embed(x)
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    for target in encoder.spec.lora_targets:
        encoder.load_state_dict(state)
        add_lora(encoder, LoraSettings(targets=(target,)))
        set_lora_b_(encoder)
        with torch.no_grad():
            out = encoder.embed(x)
        assert (out - base).abs().max() > 1e-3 * base.abs().max(), f"LoRA on {target!r} does not reach the output"
        unload_lora(encoder)


@pytest.mark.parametrize("name", NAMES)
def test_only_lora_parameters_train(name):
    encoder = tiny_encoder(name)
    add_lora(encoder, LoraSettings(r=2, alpha=4, dropout=0.1))
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable and all(("lora_A" in n or "lora_B" in n) for n in trainable)
    set_lora_b_(encoder)
    encoder.train()
    encoder.embed(pixels(encoder)).square().mean().backward()
    for n, p in encoder.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n
    config = encoder.trunk.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (2, 4, 0.1)
    expected_r = {m.r["default"] for m in encoder.trunk.modules() if isinstance(m, LoraLayer)}
    assert expected_r == {2}


@pytest.mark.parametrize("name", NAMES)
def test_saved_adapter_loads_in_plain_peft(name, tmp_path):
    encoder = tiny_encoder(name)
    base_state = {k: v.clone() for k, v in encoder.state_dict().items()}
    x = pixels(encoder)
    add_lora(encoder)
    set_lora_b_(encoder)
    with torch.no_grad():
        adapted = encoder.embed(x)
    save_lora(encoder, tmp_path)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and sorted(config["target_modules"]) == sorted(encoder.spec.lora_targets)
    spec = encoder.spec
    assert config["base_model_name_or_path"] == (spec.source.repo_id or spec.name)

    # a fresh module can lay its weights out differently (oneDNN then picks other convolution kernels): equal up to
    # float32 reordering, not bit for bit
    atol = reorder_atol(adapted, sequential_layers(encoder))
    fresh = encoderzoo.load(spec, pretrained=False)
    fresh.load_state_dict(base_state)
    trunk = peft.PeftModel.from_pretrained(fresh.trunk, str(tmp_path))  # plain peft, no encoderzoo code
    with torch.no_grad():
        torch.testing.assert_close(plain_embed(trunk.eval(), fresh.proj, x), adapted, atol=atol, rtol=0)

    again = encoderzoo.load(spec, pretrained=False)
    again.load_state_dict(base_state)
    load_lora(again, tmp_path)
    assert not any(p.requires_grad for p in again.parameters())
    with torch.no_grad():
        torch.testing.assert_close(again.embed(x), adapted, atol=atol, rtol=0)


def test_custom_settings_and_targets():
    encoder = tiny_encoder("dinov2-small")
    add_lora(encoder, LoraSettings(r=3, alpha=6, targets=("attn.qkv",)))
    wrapped = sorted(n for n, m in encoder.trunk.named_modules() if isinstance(m, LoraLayer))
    assert wrapped == ["base_model.model.blocks.0.attn.qkv", "base_model.model.blocks.1.attn.qkv"]


def test_unknown_target_is_a_clear_error():
    encoder = tiny_encoder("dinov2-small")
    with pytest.raises(EncoderZooError, match=r"'attn\.qkvv' matches no module.*attn\.qkv"):
        add_lora(encoder, LoraSettings(targets=("attn.qkv", "attn.qkvv")))
    assert not has_lora(encoder)
    with pytest.raises(EncoderZooError, match="Linear and nn.Conv2d"):
        add_lora(encoder, LoraSettings(targets=("norm1",)))


def test_settings_validation_and_misuse():
    with pytest.raises(ValueError, match="rank"):
        LoraSettings(r=0)
    with pytest.raises(ValueError, match="tuple of module names"):
        LoraSettings(targets="attn.qkv")  # type: ignore[arg-type]
    encoder = tiny_encoder("dinov2-small")
    with pytest.raises(EncoderZooError, match="add_lora first"):
        merge_lora(encoder)
    add_lora(encoder)
    with pytest.raises(EncoderZooError, match="already carries"):
        add_lora(encoder)


def test_encoder_without_targets_is_unsupported():
    import dataclasses

    spec = dataclasses.replace(encoderzoo.get_spec("efficientnet-lite0").tiny_variant(), lora_targets=())
    encoder = encoderzoo.load(spec, pretrained=False)
    with pytest.raises(UnsupportedAdapterError, match="lora_targets"):
        add_lora(encoder)
