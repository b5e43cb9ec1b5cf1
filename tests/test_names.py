"""The encoder-name grammar (encoderzoo.names) and the two controls it names: pixels[@SIZE] and random:NAME."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.cli import app
from encoderzoo.controls import PixelEncoder
from encoderzoo.data import open_dataset
from encoderzoo.engine import _provenance, cache_key, embed_dataset, weights_fingerprint
from encoderzoo.errors import UnknownEncoderError, WeightsError
from encoderzoo.names import EncoderNameError, EncoderRef, parse_encoder_name

from .datasets_fixtures import write_npz


@pytest.mark.parametrize(
    "name, expected",
    [
        ("dinov2-base", EncoderRef("registry", "dinov2-base", target="dinov2-base")),
        ("hf-hub:org/repo", EncoderRef("hf-hub", "hf-hub:org/repo", target="org/repo", revision="main")),
        ("hf-hub:org/repo@abc", EncoderRef("hf-hub", "hf-hub:org/repo@abc", target="org/repo", revision="abc")),
        ("local-dir:/tmp/x", EncoderRef("local-dir", "local-dir:/tmp/x", target="/tmp/x")),
        ("random:efficientnet-lite0", EncoderRef("random", "random:efficientnet-lite0", "efficientnet-lite0", seed=0)),
        ("pixels", EncoderRef("pixels", "pixels", size=28)),
        ("pixels@64", EncoderRef("pixels", "pixels@64", size=64)),
    ],
)
def test_grammar(name, expected):
    assert parse_encoder_name(name) == expected


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "non-empty"),
        (" dinov2-base", "spaces"),
        ("hf-hub:repo-without-org", "ORG/REPO"),
        ("hf-hub:org/", "ORG/REPO"),
        ("local-dir:", "PATH"),
        ("random:", "registry name"),
        ("random:hf-hub:org/repo", "registry name"),
        ("pixels@", "positive integer"),
        ("pixels@0", "positive integer"),
        ("pixels@x", "positive integer"),
        ("hf_hub:org/repo", "unknown encoder name prefix 'hf_hub:'"),
    ],
)
def test_malformed_names_are_refused(name, message):
    with pytest.raises(EncoderNameError, match=message):
        parse_encoder_name(name)


def test_load_refuses_a_malformed_name_before_anything_else():
    with pytest.raises(ValueError, match="unknown encoder name prefix"):
        encoderzoo.load("timm:dinov2-base")


def test_pixels_embeds_the_resized_image_channels_kept(tmp_path):
    gray = write_npz(tmp_path / "g.npz", sizes=(5, 2, 2), shape=(32, 32))
    rgb = write_npz(tmp_path / "c.npz", sizes=(5, 2, 2), shape=(32, 32, 3))
    encoder = encoderzoo.load("pixels@16")
    assert isinstance(encoder, PixelEncoder) and encoder.spec.name == "pixels@16"
    for path, channels in ((gray, 1), (rgb, 3)):
        data = open_dataset(f"npz:{path}")
        result = embed_dataset(encoder, data, "train", use_cache=False)
        images = torch.from_numpy(data.read("train", 0, 5)).float() / 255  # reference: one interpolate call
        images = images[:, None] if channels == 1 else images.permute(0, 3, 1, 2)
        expected = F.interpolate(images, size=(16, 16), mode="bilinear", antialias=True).flatten(1)
        assert result.features.shape == (5, channels * 16 * 16)
        assert torch.allclose(result.features, expected, atol=1e-6)
        assert 0 <= result.features.min() and result.features.max() <= 1


def test_pixels_at_its_own_size_is_the_image_itself(tmp_path):
    path = write_npz(tmp_path / "g.npz", sizes=(4, 2, 2), shape=(28, 28))
    data = open_dataset(f"npz:{path}")
    features = embed_dataset(encoderzoo.load("pixels"), data, "train", use_cache=False).features
    assert torch.equal(features, torch.from_numpy(data.read("train", 0, 4)).float().div(255).flatten(1))


def test_random_control_is_seeded_and_named(monkeypatch):
    first, second = encoderzoo.load("random:efficientnet-lite0"), encoderzoo.load("random:efficientnet-lite0")
    state = first.state_dict()
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in state.items())
    pretrained = encoderzoo.load("efficientnet-lite0")
    assert weights_fingerprint(first) != weights_fingerprint(pretrained)
    assert first.spec.name == "random:efficientnet-lite0" and first.spec.source.package is None
    assert first.spec.source.revision == "seed 0"
    # same preprocessing as the entry it copies, and the global RNG is not consumed
    assert first.transform.extra_repr() == pretrained.transform.extra_repr()
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    encoderzoo.load("random:efficientnet-lite0")
    assert torch.equal(torch.rand(1), expected)


def test_random_of_an_unknown_entry_is_an_unknown_encoder():
    with pytest.raises(UnknownEncoderError, match="efficientnet-lite0"):
        encoderzoo.load("random:efficientnet-lite")


def test_a_failed_load_never_falls_back_to_random(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError):
        encoderzoo.load("efficientnet-lite0", weights=bad)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("pixels", {"weights": "x.pth"}),
        ("pixels", {"image_size": 32}),
        ("random:efficientnet-lite0", {"pretrained": False}),
        ("random:biomedclip", {"text": True}),
    ],
)
def test_controls_refuse_options_that_do_not_apply(name, kwargs):
    with pytest.raises(ValueError, match="control"):
        encoderzoo.load(name, **kwargs)


def test_cache_keys_tell_the_controls_apart(tmp_path):
    data = open_dataset(f"npz:{write_npz(tmp_path / 'd.npz', sizes=(4, 2, 2))}")
    keys = set()
    for name in ("efficientnet-lite0", "random:efficientnet-lite0", "pixels", "pixels@32"):
        encoder = encoderzoo.load(name)
        keys.add(cache_key(_provenance(encoder, data, "train", "resize", weights_fingerprint(encoder))))
    assert len(keys) == 4
    same = [encoderzoo.load(n) for n in ("pixels", "pixels@28")]
    assert len({cache_key(_provenance(e, data, "train", "resize", weights_fingerprint(e))) for e in same}) == 1


def test_probe_names_the_controls_in_results(tmp_path):
    data = write_npz(tmp_path / "d.npz", sizes=(30, 12, 12), shape=(28, 28, 3))
    for name, recorded in (("pixels", "pixels@28"), ("random:efficientnet-lite0", "random:efficientnet-lite0")):
        out = tmp_path / f"{recorded.replace(':', '_')}.json"
        result = CliRunner().invoke(
            app, ["probe", "-e", name, "-d", f"npz:{data}", "-p", "knn", "--device", "cpu", "-o", str(out)]
        )
        assert result.exit_code == 0, result.output
        saved = json.loads(out.read_text())
        assert saved["encoder"] == recorded and saved["weights"] is None
        assert np.isfinite(saved["probes"]["knn"]["accuracy"]["mean"])
