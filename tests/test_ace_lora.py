"""ACE-LoRA building blocks: fused-qkv LoRA against peft on split projections, both towers adapted, the
trainable-parameter count of the real BiomedCLIP architecture, one contrastive training step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.adapters import AdaptedEncoder, TrainConfig, fit
from encoderzoo.adapters.ace_lora import (
    AceLora,
    AceLoraSettings,
    LoraLinear,
    dataset_config,
    label_texts,
    trainable_counts,
)
from encoderzoo.adapters.losses import label_guided_info_nce
from encoderzoo.adapters.training import probabilities
from encoderzoo.cli import app
from encoderzoo.data import open_dataset
from encoderzoo.encoder import Encoder
from encoderzoo.probes import evaluate
from encoderzoo.transforms import as_nchw

from .datasets_fixtures import write_png
from .helpers import randomize_
from .text_helpers import sentencepiece_tokenizer, small_biomedclip_spec, wordpiece_tokenizer

runner = CliRunner()


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


def test_label_texts_from_the_prompts():
    classes = {"mode": "classes", "positive": [["a normal x-ray."], ["pneumonia."]], "negative": []}
    assert label_texts(np.array([1, 0]), classes) == ["pneumonia.", "a normal x-ray."]
    pairs = {"mode": "pairs", "positive": [["effusion."], ["edema."]], "negative": [["no effusion."], ["no edema."]]}
    rows = np.array([[1, 1], [0, np.nan], [0, 1]], dtype=np.float32)
    assert label_texts(rows, pairs) == ["effusion. edema.", "no effusion. no edema.", "edema."]


REPORTS = ("lungs are clear, no acute findings", "right lower lobe consolidation, consistent with pneumonia")


def _folder(root, sizes=(12, 6, 8), size=32, reports=False):
    """A binary folder dataset; ``reports=True`` adds a free-text ``report`` column (a report per image)."""
    rng = np.random.default_rng(0)
    lines = ["path,split,label,label_name" + (",report" if reports else "")]
    for split, n in zip(("train", "val", "test"), sizes, strict=True):
        for i in range(n):
            write_png(root / split / f"{i}.png", rng.integers(0, 256, (size, size), np.uint8))
            report = f',"{REPORTS[i % 2]} ({split} {i})"' if reports else ""
            lines.append(f"{split}/{i}.png,{split},{i % 2},{('normal', 'pneumonia')[i % 2]}{report}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_folder_datasets_read_a_text_column_that_is_never_a_label(tmp_path):
    data = open_dataset(f"folder:{_folder(tmp_path / 'a', sizes=(4, 2, 2), reports=True)}")
    assert data.texts("train") == [f"{REPORTS[i % 2]} (train {i})" for i in range(4)]
    assert data.label_names == ["normal", "pneumonia"]
    assert open_dataset(f"folder:{_folder(tmp_path / 'b', sizes=(4, 2, 2))}").texts("train") is None
    multi = tmp_path / "m"
    write_png(multi / "0.png", np.zeros((8, 8), np.uint8))
    (multi / "labels.csv").write_text('path,split,Edema,Effusion,text\n0.png,train,1,0,"mild edema"\n')
    ml = open_dataset(f"folder:{multi}")
    assert ml.label_names == ["Edema", "Effusion"] and ml.texts("train") == ["mild edema"]


def test_cli_adapt_ace_lora_trains_saves_reloads_and_scores_zero_shot(tmp_path):
    torch.manual_seed(0)
    tokenizer = wordpiece_tokenizer(tmp_path / "wp")
    encoder = randomize_(encoderzoo.load(small_biomedclip_spec(), pretrained=False, text=True, tokenizer=tokenizer))
    base = f"local-dir:{encoderzoo.save_pretrained(encoder, tmp_path / 'base')}"
    data_root = _folder(tmp_path / "data", reports=True)
    out = tmp_path / "adapted"
    args = ["adapt", "-e", base, "-d", f"folder:{data_root}", "--method", "ace-lora", "--out", str(out)]
    result = runner.invoke(app, [*args, "--device", "cpu", "--epochs", "2", "--batch-size", "6", "-f", "json"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"]["training_texts"] == "the dataset's text column"
    tensors = load_file(out / "adapter.safetensors")
    lora = [k for k in tensors if "lora_" in k]
    assert any(k.startswith("encoder.trunk.") for k in lora) and any(k.startswith("encoder.text.") for k in lora)
    assert "ace_lora.ace_lora.logit_scale" in tensors and any(".ace." in k for k in tensors)
    assert any(float(tensors[k].abs().sum()) > 0 for k in lora if "lora_B" in k), "LoRA trained"
    assert saved["training"]["trainable_params"] == sum(t.numel() for t in tensors.values())
    meta = json.loads((out / "encoderzoo.json").read_text())
    assert meta["method_config"]["prompts"]["mode"] == "classes" and meta["method_config"]["r"] == 4
    reloaded = encoderzoo.load(f"local-dir:{out}")
    data = open_dataset(f"folder:{data_root}")
    images = data.read("test", 0, 8)
    pixels = torch.cat([reloaded.transform(as_nchw(im if im.ndim == 3 else im[None])) for im in images])
    with torch.no_grad():
        proba = probabilities("binary", reloaded.classify(pixels)).numpy()
    metrics = evaluate(data.labels("test"), proba, data.label_names)
    assert saved["probes"]["adapted"]["auroc"]["mean"] == pytest.approx(metrics["auroc"], abs=1e-6)


def test_the_loop_trains_the_label_guided_contrastive_loss(tmp_path):
    """One full-batch epoch: the loss the loop records is the label-guided InfoNCE of the untrained model, computed
    here from the two towers' features (dropout 0, so train and eval forwards agree)."""
    torch.manual_seed(0)
    tokenizer = wordpiece_tokenizer(tmp_path / "wp")
    encoder = randomize_(encoderzoo.load(small_biomedclip_spec(), pretrained=False, text=True, tokenizer=tokenizer))
    data = open_dataset(f"folder:{_folder(tmp_path / 'data', sizes=(8, 4, 4))}")
    config = dataset_config({"dropout": 0.0}, data.label_names, data.task, "folder:x")
    model = AdaptedEncoder(encoder, "ace-lora", config, 1)
    labels = data.labels("train")
    model.ace_lora.texts = label_texts(labels, config["prompts"])
    images = data.read("train", 0, 8)
    pixels = torch.cat([model.transform(as_nchw(im if im.ndim == 3 else im[None])) for im in images])
    core = model.ace_lora.ace_lora
    with torch.no_grad():
        expected = label_guided_info_nce(
            core.image_features(pixels),
            core.text_features(encoder.tokenize(model.ace_lora.texts)),
            core.logit_scale,
            torch.as_tensor(labels),
        )
    record = fit(model, data, TrainConfig(epochs=1, batch_size=8), tmp_path / "ck", progress=False)
    assert record["history"][0]["train_loss"] == pytest.approx(float(expected), rel=1e-5)
