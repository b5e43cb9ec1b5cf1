"""sdpa, math (and xformers on a GPU) compute the same attention for every ViT family in the zoo."""

from __future__ import annotations

import pytest
import torch

import encoderzoo
from encoderzoo import AttentionBackendError
from encoderzoo.attention import ZooAttention, ZooAttentionPoolLatent, ZooEvaAttention, attend, xformers_available

VIT_NAMES = [n for n in encoderzoo.list_encoders() if encoderzoo.get_spec(n).patch_size]


def _tiny(name, attention="sdpa", device="cpu"):
    return encoderzoo.load(
        encoderzoo.get_spec(name).tiny_variant(), pretrained=False, attention=attention, device=device
    )


@pytest.mark.parametrize("name", VIT_NAMES)
def test_sdpa_and_math_agree(name):
    encoder = _tiny(name)
    x = torch.randn(2, 3, encoder.spec.input_size, encoder.spec.input_size)
    with torch.no_grad():
        sdpa = encoder.embed(x)
        encoder.set_attention("math")
        math = encoder.embed(x)
    assert (sdpa - math).abs().max().item() < 1e-5


def test_every_attention_module_is_routed():
    expected = {"dinov2-small": ZooAttention, "dinov3-small": ZooEvaAttention, "medsiglip-448": ZooAttentionPoolLatent}
    for name, cls in expected.items():
        encoder = _tiny(name, attention="math")
        routed = [m for m in encoder.modules() if isinstance(m, cls)]
        assert routed and all(m.backend == "math" for m in routed)


def test_attend_kernels_agree_with_gradients():
    q, k, v = (torch.randn(2, 3, 17, 8, requires_grad=True) for _ in range(3))
    a = attend(q, k, v, "sdpa")
    b = attend(q, k, v, "math")
    assert torch.allclose(a, b, atol=1e-6)
    a.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_unknown_backend():
    with pytest.raises(AttentionBackendError, match="must be one of"):
        encoderzoo.load("dinov2-small", attention="flash9", pretrained=False)


@pytest.mark.skipif(xformers_available(), reason="xformers is installed here")
def test_xformers_missing_is_a_clear_error():
    with pytest.raises(AttentionBackendError, match=r"pip install 'encoderzoo\[xformers\]'"):
        encoderzoo.load("dinov2-small", attention="xformers", pretrained=False)


@pytest.mark.skipif(not xformers_available(), reason="xformers is not installed")
def test_xformers_on_cpu_is_a_clear_error():
    with pytest.raises(AttentionBackendError, match="CUDA only"):
        encoderzoo.load("dinov2-small", attention="xformers", pretrained=False)


@pytest.mark.gpu
@pytest.mark.skipif(not xformers_available(), reason="xformers is not installed")
@pytest.mark.parametrize("name", VIT_NAMES)
def test_xformers_matches_sdpa_on_gpu(name):
    encoder = _tiny(name, device="cuda")
    x = torch.randn(2, 3, encoder.spec.input_size, encoder.spec.input_size, device="cuda")
    with torch.no_grad():
        sdpa = encoder.embed(x)
        encoder.set_attention("xformers")
        xf = encoder.embed(x)
    assert (sdpa - xf).abs().max().item() < 1e-4
