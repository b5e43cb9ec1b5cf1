from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import encoderzoo
from encoderzoo import InputError
from encoderzoo.transforms import Preprocess

LITE0 = encoderzoo.get_spec("efficientnet-lite0")


def test_uint8_grayscale_batch_becomes_normalized_rgb():
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    out = Preprocess(LITE0)(images)
    assert out.shape == (4, 3, 224, 224) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_normalization_uses_the_spec_mean_and_std():
    white = torch.full((1, 3, 224, 224), 255, dtype=torch.uint8)
    out = Preprocess(LITE0)(white)
    expected = (1.0 - LITE0.mean[0]) / LITE0.std[0]
    assert torch.allclose(out, torch.full_like(out, expected))


def test_uint8_float_and_uint16_inputs_agree():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (2, 3, 224, 224), dtype=np.uint8)
    pre = Preprocess(LITE0)
    a = pre(u8)
    b = pre(torch.from_numpy(u8).float() / 255)
    c = pre(u8.astype(np.uint16) * 257)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-5)


def test_channels_last_numpy_is_accepted():
    hwc = np.random.default_rng(0).integers(0, 256, (2, 50, 60, 3), dtype=np.uint8)
    out = Preprocess(LITE0)(hwc)
    ref = Preprocess(LITE0)(torch.from_numpy(hwc).permute(0, 3, 1, 2))
    assert torch.equal(out, ref)


def test_resize_matches_torch_interpolate_with_the_spec_settings():
    x = torch.rand(2, 3, 64, 64)
    out = Preprocess(LITE0)(x)
    resized = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    mean = torch.tensor(LITE0.mean).view(1, 3, 1, 1)
    std = torch.tensor(LITE0.std).view(1, 3, 1, 1)
    assert torch.allclose(out, (resized - mean) / std, atol=1e-6)


def test_medsiglip_resizes_bilinear_without_antialias():
    spec = encoderzoo.get_spec("medsiglip-448")
    x = torch.rand(1, 3, 896, 896)
    out = Preprocess(spec)(x)
    expected = F.interpolate(x, size=(448, 448), mode="bilinear", align_corners=False, antialias=False)
    assert torch.allclose(out, (expected - 0.5) / 0.5, atol=1e-6)


def test_shortest_edge_then_centre_crop():
    spec = encoderzoo.get_spec("biomedclip")
    x = torch.zeros(1, 3, 224, 448)
    x[..., 112:336] = 1.0  # the central 224 columns are white
    out = Preprocess(spec)(x)
    assert out.shape == (1, 3, 224, 224)
    white = (1.0 - torch.tensor(spec.mean)) / torch.tensor(spec.std)
    assert torch.allclose(out[0, :, :, 5:-5].mean((1, 2)), white, atol=1e-3)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(2, 4, 32, 32), "1 .grayscale. or 3 .RGB. channels, got 4"),
        (torch.zeros(32, 32), "expected a batch"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.int64), "unsupported image dtype"),
        ("not an image", "torch.Tensor or numpy array"),
    ],
)
def test_bad_input_is_a_clear_error(bad, message):
    with pytest.raises(InputError, match=message):
        Preprocess(LITE0)(bad)


def test_embed_refuses_unpreprocessed_input():
    encoder = encoderzoo.load(encoderzoo.get_spec("dinov2-small").tiny_variant(), pretrained=False)
    with pytest.raises(InputError, match="call encoder.transform"):
        encoder.embed(torch.zeros(1, 3, 28, 28, dtype=torch.uint8))
    with pytest.raises(InputError, match=r"expects \(N, 3, 28, 28\)"):
        encoder.embed(torch.zeros(1, 3, 64, 64))
    assert encoder.embed(encoder.transform(torch.zeros(1, 64, 64, dtype=torch.uint8))).shape == (1, 32)
