"""The method registry (issue 20): a method is one record; registering a toy one makes it trainable, savable,
loadable and documented end to end, with no other module touched (the README's contributor walkthrough)."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.adapted_folder import ADAPTER_FILE
from encoderzoo.adapted_methods import MethodFacts
from encoderzoo.adapters import METHODS, AdapterError, Method, TrainConfig, adapt, get_method, register, unregister
from encoderzoo.adapters.methods import settings_from_cli, settings_from_pairs
from encoderzoo.cli import adapt_command, app
from encoderzoo.encoder import Encoder

from .datasets_fixtures import write_npz
from .helpers import randomize_

runner = CliRunner()


# -- the walkthrough's module: a learned scale and shift of the embedding, plus the linear head ------------------


@dataclass(frozen=True)
class ScaleShiftSettings:
    init_scale: float = 1.0


class ScaleShift(nn.Module):
    def __init__(self, dim: int, settings: ScaleShiftSettings) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), settings.init_scale))
        self.shift = nn.Parameter(torch.zeros(dim))


def build(encoder: Encoder, settings: ScaleShiftSettings, folder: Path | None) -> ScaleShift:
    return ScaleShift(encoder.spec.output_dim, settings)


def embed(model, pixels: torch.Tensor) -> torch.Tensor:
    return model.encoder.embed(pixels) * model.adapter.scale + model.adapter.shift


SCALE_SHIFT = Method(
    name="scale-shift",
    settings=ScaleShiftSettings,
    build=build,
    embed=embed,
    facts=MethodFacts(
        files=(ADAPTER_FILE,),
        card_text="a learned scale and shift of each embedding dimension, plus a linear head",
        citation="a toy method of the encoderzoo tests.",
        tags=("scale-shift",),
    ),
)


@pytest.fixture()
def scale_shift():
    register(SCALE_SHIFT)
    yield SCALE_SHIFT
    unregister(SCALE_SHIFT.name)


@pytest.fixture()
def vit_base(tmp_path):
    encoder = randomize_(encoderzoo.load(encoderzoo.get_spec("dinov2-small").tiny_variant(), pretrained=False))
    return f"local-dir:{encoderzoo.save_pretrained(encoder, tmp_path / 'base')}"


def test_a_registered_method_adapts_saves_reloads_and_has_a_card(scale_shift, vit_base, tmp_path):
    npz = write_npz(tmp_path / "d.npz", sizes=(12, 6, 6), classes=3)
    out = tmp_path / "out"
    config = TrainConfig(epochs=2, lr=0.05, batch_size=6)
    results = adapt(
        vit_base, f"npz:{npz}", "scale-shift", out, method_config={"init_scale": 2.0}, config=config, progress=False
    )
    assert results["protocol"]["method"] == "scale-shift" and "scale-shift" in encoderzoo.adapters.METHODS
    saved = load_file(out / "adapter.safetensors")
    assert set(saved) == {"adapter.scale", "adapter.shift"}  # the default slot
    assert not torch.equal(saved["adapter.scale"], torch.full((32,), 2.0)), "the scale trained"
    model = encoderzoo.load(f"local-dir:{out}")
    torch.testing.assert_close(model.adapter.scale.detach(), saved["adapter.scale"], rtol=0, atol=0)
    pixels = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.encoder.embed(pixels) * saved["adapter.scale"] + saved["adapter.shift"]
        torch.testing.assert_close(model.embed(pixels), expected, rtol=0, atol=0)
    card = (out / "README.md").read_text()
    assert SCALE_SHIFT.facts.card_text in card and SCALE_SHIFT.facts.citation in card
    assert "- scale-shift" in card.split("---")[1]  # the tags in the YAML header


def test_the_cli_trains_a_registered_method(scale_shift, vit_base, tmp_path):
    npz = write_npz(tmp_path / "d.npz", sizes=(12, 6, 6), classes=3)
    args = ["adapt", "-e", vit_base, "-d", f"npz:{npz}", "-m", "scale-shift", "-o", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--device", "cpu", "--epochs", "1", "--batch-size", "6", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "encoderzoo.json").read_text())["method"] == "scale-shift"


def test_unknown_and_duplicate_methods_are_refused(scale_shift):
    with pytest.raises(AdapterError, match=r"unknown adaptation method 'nope'; choose from head, .*scale-shift"):
        get_method("nope")
    with pytest.raises(AdapterError, match="already registered"):
        register(SCALE_SHIFT)


def test_encoderzoo_methods_lists_every_registered_method_with_its_settings(scale_shift):
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0, result.output
    for name in METHODS:
        assert f"\n{name}: " in f"\n{result.output}", name
    assert "scale-shift: a learned scale and shift" in result.output and "settings: init_scale=1.0" in result.output
    assert "lora: LoRA (peft) on the modules named by `targets`" in result.output
    assert "head: linear head on the frozen encoder\n    settings: (none)" in result.output
    assert "vpt-deep: " in result.output and "settings: num_prompts=10\n" in result.output  # deep is fixed


def test_set_gives_any_setting_of_the_method(scale_shift, vit_base, tmp_path):
    assert settings_from_pairs("lora", ["r=4", 'targets=["qkv"]', "dropout=0.1"]) == {
        "r": 4,
        "targets": ["qkv"],
        "dropout": 0.1,
    }
    assert settings_from_pairs("coop", ["init=a photo of a", "class_specific=true"]) == {
        "init": "a photo of a",
        "class_specific": True,
    }
    with pytest.raises(AdapterError, match="write KEY=VALUE"):
        settings_from_pairs("lora", ["r"])
    # each value takes its field's type: Python-style booleans, numbers like .1, none for optional fields
    assert settings_from_pairs("coop", ["class_specific=False", "context_length=8", "init=none"]) == {
        "class_specific": False,
        "context_length": 8,
        "init": None,
    }
    assert settings_from_pairs("ace-lora", ["learnable_logit_scale=False", "alpha=16.", "dropout=.1"]) == {
        "learnable_logit_scale": False,
        "alpha": 16.0,
        "dropout": 0.1,
    }
    assert settings_from_pairs("coop", ["init=1"]) == {"init": "1"}  # a str field keeps the text
    for bad, message in (
        ("class_specific=maybe", "write true or false"),
        ("context_length=8.5", "write a number \\(int\\)"),
        ("class_names=a|b", "write a JSON list"),
        ("task=binary", "no setting 'task'"),  # filled from the dataset, not a user setting
    ):
        with pytest.raises(AdapterError, match=message):
            settings_from_pairs("coop", [bad])
    with pytest.raises(AdapterError, match="method head has no setting 'r'; it takes no settings"):
        settings_from_pairs("head", ["r=4"])
    # vpt is shallow and vpt-deep deep whatever the settings say: a fixed field is refused, not overridden
    with pytest.raises(AdapterError, match="no setting 'deep'"):
        settings_from_pairs("vpt", ["deep=true"])
    for name, deep in (("vpt", True), ("vpt-deep", False)):
        with pytest.raises(AdapterError, match=f"method {name} fixes \\['deep'\\]"):
            get_method(name).settings_from({"num_prompts": 2, "deep": deep})
    assert get_method("vpt").settings_from({"num_prompts": 2}).deep is False
    assert get_method("vpt-deep").settings_from({"num_prompts": 2}).deep is True
    with pytest.raises(AdapterError, match="method lora cannot take the settings"):
        get_method("lora").settings_from({"rank": 4})
    with pytest.raises(AdapterError, match="method lora has no setting 'rank'; its settings: r, alpha, dropout"):
        settings_from_pairs("lora", ["rank=4"])
    npz = write_npz(tmp_path / "d.npz", sizes=(12, 6, 6), classes=3)
    args = ["adapt", "-e", vit_base, "-d", f"npz:{npz}", "-m", "scale-shift", "--device", "cpu", "--epochs", "1"]
    result = runner.invoke(app, [*args, "--batch-size", "6", "-o", str(tmp_path / "o"), "--set", "init_scale=3.0"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "encoderzoo.json").read_text())["method_config"] == {"init_scale": 3.0}
    bad = runner.invoke(app, [*args, "-o", str(tmp_path / "bad"), "--set", "scale=2"])
    assert bad.exit_code != 0 and "has no setting 'scale'; its settings: init_scale" in bad.output
    assert not (tmp_path / "bad").exists()


def test_cli_options_feed_the_registry():
    """Every option a record reads must be a parameter of ``encoderzoo adapt``."""
    parameters = set(inspect.signature(adapt_command).parameters)
    for name in METHODS:
        assert set(get_method(name).cli_options) <= parameters, name


def test_cli_options_give_the_settings_each_method_had():
    options = {
        "rank": 8,
        "alpha": 16.0,
        "lora_dropout": 0.0,
        "prompts": 10,
        "top_k": 5,
        "context_length": 16,
        "class_specific": False,
        "context_init": None,
        "class_names": ["a", "b"],
    }
    assert settings_from_cli("lora", options) == {"r": 8, "alpha": 16.0, "dropout": 0.0}
    assert settings_from_cli("vpt-deep", options) == {"num_prompts": 10}
    assert settings_from_cli("ace-lora", options) == {"top_k": 5}
    assert settings_from_cli("head", options) == {}
    assert settings_from_cli("coop", options) == {
        "context_length": 16,
        "class_specific": False,
        "init": None,
        "class_names": ["a", "b"],
    }


def test_the_deprecated_lora_folder_must_agree_with_folder(tmp_path):
    from encoderzoo.adapters import AdaptedEncoder

    base = encoderzoo.load(encoderzoo.get_spec("dinov2-small").tiny_variant(), pretrained=False)
    with pytest.warns(DeprecationWarning), pytest.raises(AdapterError, match="disagree"):
        AdaptedEncoder(base, "lora", {}, 2, folder=tmp_path / "a", lora_folder=tmp_path / "b")
