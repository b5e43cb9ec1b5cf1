from __future__ import annotations

import shutil

import pytest
import torch
from huggingface_hub import constants as hub_constants

import encoderzoo
from encoderzoo import WeightsNotFoundError


def _random_tiny(name="dinov3-small"):
    return encoderzoo.load(encoderzoo.get_spec(name).tiny_variant(), pretrained=False)


@pytest.mark.parametrize("name", ["dinov3-small", "biomedclip", "medsiglip-448"])
def test_local_dir_round_trip(tmp_path, name):
    encoder = _random_tiny(name)
    encoderzoo.save_pretrained(encoder, tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["encoderzoo.json", "model.safetensors"]
    again = encoderzoo.load(f"local-dir:{tmp_path / 'saved'}")
    assert again.spec.to_dict() == encoder.spec.to_dict()
    x = torch.randn(2, 3, encoder.spec.input_size, encoder.spec.input_size)
    with torch.no_grad():
        assert torch.equal(encoder.embed(x), again.embed(x))


def test_hf_hub_name_reads_the_cache_offline(tmp_path, monkeypatch):
    encoder = _random_tiny()
    saved = encoderzoo.save_pretrained(encoder, tmp_path / "saved")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    commit = "abcdef0123456789abcdef0123456789abcdef01"
    repo = tmp_path / "cache" / "models--me--my-encoder"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in saved.iterdir():
        shutil.copy(f, repo / "snapshots" / commit / f.name)
    again = encoderzoo.load("hf-hub:me/my-encoder")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(encoder.embed(x), again.embed(x))
    with pytest.raises(WeightsNotFoundError, match="not in the local Hugging Face cache"):
        encoderzoo.load("hf-hub:me/other-encoder")


def test_local_dir_without_spec_file(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="not saved by encoderzoo"):
        encoderzoo.load(f"local-dir:{tmp_path}")


def test_saved_weights_cannot_be_overridden(tmp_path):
    with pytest.raises(ValueError, match="carries its own weights"):
        encoderzoo.load(f"local-dir:{tmp_path}", weights=tmp_path / "x.safetensors")


def test_save_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves no partial model.safetensors behind."""
    encoder = _random_tiny()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("encoderzoo.loading.save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        encoderzoo.save_pretrained(encoder, tmp_path / "saved")
    assert list((tmp_path / "saved").iterdir()) == []


def test_dtype_and_device_are_applied():
    encoder = encoderzoo.load(
        encoderzoo.get_spec("dinov3-small").tiny_variant(), pretrained=False, dtype=torch.bfloat16
    )
    assert next(encoder.parameters()).dtype == torch.bfloat16
    assert not encoder.training
    out = encoder.embed(encoder.transform(torch.zeros(2, 32, 32, dtype=torch.uint8)))
    assert out.dtype == torch.bfloat16 and out.shape == (2, 32)
