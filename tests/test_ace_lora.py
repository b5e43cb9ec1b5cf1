"""ACE-LoRA building blocks: fused-qkv LoRA against peft on split projections, both towers adapted, the
trainable-parameter count of the real BiomedCLIP architecture, one contrastive training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

import encoderzoo
from encoderzoo.adapters.ace_lora import AceLora, AceLoraSettings, LoraLinear, trainable_counts
from encoderzoo.adapters.losses import label_guided_info_nce
from encoderzoo.encoder import Encoder

from .helpers import randomize_
from .text_helpers import sentencepiece_tokenizer, small_biomedclip_spec, wordpiece_tokenizer


def test_fused_qkv_lora_equals_peft_on_separate_q_k_v():
    """Three low-rank updates on the slices of a fused qkv = peft LoRA on three separate projections."""
    torch.manual_seed(0)
    dim, r, alpha = 12, 2, 3.0
    fused = nn.Linear(dim, 3 * dim)
    lora = LoraLinear(fused, ("q", "k", "v"), ("q", "k", "v"), r, alpha, 0.0)
    with torch.no_grad():
        for name in "qkv":
            lora.lora_B[name].normal_()

    class Split(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))

        def forward(self, x):
            return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)

    split = Split()
    with torch.no_grad():
        for i, name in enumerate("qkv"):
            getattr(split, name).weight.copy_(fused.weight[i * dim : (i + 1) * dim])
            getattr(split, name).bias.copy_(fused.bias[i * dim : (i + 1) * dim])
    reference = get_peft_model(split, LoraConfig(r=r, lora_alpha=alpha, target_modules=["q", "k", "v"]))
    with torch.no_grad():
        for name in "qkv":
            layer = reference.base_model.model.get_submodule(name)
            layer.lora_A["default"].weight.copy_(lora.lora_A[name])
            layer.lora_B["default"].weight.copy_(lora.lora_B[name])
    x = torch.randn(4, 5, dim)
    torch.testing.assert_close(lora(x), reference(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(lora(x), fused(x), atol=1e-3), "the update must matter"
    only_v = LoraLinear(nn.Linear(dim, 3 * dim), ("q", "k", "v"), ("v",), r, alpha, 0.0)
    assert set(only_v.lora_A) == {"v"}


@pytest.fixture(params=["bert", "siglip"])
def clip(request, tmp_path):
    torch.manual_seed(0)
    if request.param == "bert":
        spec, tokenizer = small_biomedclip_spec(), wordpiece_tokenizer(tmp_path / "wp")
    else:
        spec, tokenizer = encoderzoo.get_spec("medsiglip-448").tiny_variant(), sentencepiece_tokenizer(tmp_path / "sp")
    return randomize_(encoderzoo.load(spec, pretrained=False, text=True, tokenizer=tokenizer)).eval()


def test_ace_lora_starts_at_the_base_and_trains_lora_in_both_towers_and_ace(clip):
    pixels = torch.randn(4, 3, clip.spec.input_size, clip.spec.input_size, generator=torch.Generator().manual_seed(1))
    texts = ["a chest x-ray showing pneumonia.", "normal", "no pleural effusion.", "a dermatoscopic image of melanoma."]
    ids = clip.tokenize(texts)
    with torch.no_grad():
        image_before, text_before = clip.embed(pixels), clip.encode_text(ids)
    model = AceLora(clip, AceLoraSettings(dropout=0.0))
    model.eval()
    with torch.no_grad():  # B = 0: the towers are unchanged
        torch.testing.assert_close(clip.embed(pixels), image_before, rtol=0, atol=1e-6)
        torch.testing.assert_close(clip.encode_text(ids), text_before, rtol=0, atol=1e-6)
    depth_image, depth_text = len(clip.trunk.blocks), clip.text.spec.depth
    assert len(model.image_lora) == depth_image and len(model.text_lora) == 3 * depth_text
    trainable = [n for n, p in list(clip.named_parameters()) + list(model.named_parameters()) if p.requires_grad]
    assert all("lora_" in n or n.startswith("ace.") or n == "logit_scale" for n in trainable)
    loss = model.loss(pixels, ids, torch.tensor([0, 1, 1, 2]))
    reference = label_guided_info_nce(
        model.image_features(pixels), model.text_features(ids), model.logit_scale, torch.tensor([0, 1, 1, 2])
    )
    torch.testing.assert_close(loss, reference)
    loss.backward()
    grads = {n: p.grad for n, p in clip.named_parameters() if "lora_A" in n or "lora_B" in n}
    text_b = [g for n, g in grads.items() if n.startswith("text.") and "lora_B" in n]
    image_b = [g for n, g in grads.items() if n.startswith("trunk.") and "lora_B" in n]
    assert text_b and image_b and all(g is not None and float(g.abs().sum()) > 0 for g in text_b + image_b)
    assert model.logit_scale.grad is not None and model.ace.edge_mlp.down.weight.grad is not None


def test_trainable_parameters_on_the_real_biomedclip_architecture():
    """BiomedCLIP ViT-B/16 + PubMedBERT-base (width 768, 12 blocks each), projected width 512, defaults r=4."""
    with torch.device("meta"):
        encoder = Encoder(encoderzoo.get_spec("biomedclip"), text=True)  # the real architecture, no weights
        model = AceLora(encoder)
    counts = trainable_counts(model)
    lora_per_tower = 12 * 3 * 4 * (768 + 768)  # blocks x (q, k, v) x r x (A: in + B: out)
    ace = 2 * (512 * 128 + 128 + 128 * 512 + 512)  # edge and node bottleneck MLPs on the 512-d projected tokens
    assert counts == {"image_lora": lora_per_tower, "text_lora": lora_per_tower, "ace": ace, "logit_scale": 1}
    assert sum(counts.values()) == 705_793  # paper: 0.95M (upstream also runs a second ACE-HGNN on the text tokens)
    assert np.isclose(sum(counts.values()) + ace, 969_217)
