"""CoOp learnable text prompts: zero-shot equivalence at a template init, what trains, save/reload, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.adapters import AdaptedEncoder, TrainConfig, fit
from encoderzoo.adapters.coop import CoopError
from encoderzoo.adapters.folder import describe, save_adapted
from encoderzoo.adapters.training import probabilities
from encoderzoo.cli import app
from encoderzoo.data import open_dataset
from encoderzoo.engine import weights_fingerprint
from encoderzoo.probes import ZeroShotProbe, ensemble
from encoderzoo.text import load_prompts

from .datasets_fixtures import write_npz
from .helpers import randomize_
from .text_helpers import sentencepiece_tokenizer, small_biomedclip_spec, wordpiece_tokenizer

NAMES = ["normal lungs", "pleural effusion", "mass"]
INIT = "a chest x-ray of"
runner = CliRunner()


def _image_text(kind: str, folder):
    """A tiny random image-text encoder with a local tokenizer: BiomedCLIP (BERT) or MedSigLIP (SigLIP)."""
    torch.manual_seed(0)
    if kind == "bert":
        spec, tokenizer = small_biomedclip_spec(), wordpiece_tokenizer(folder / "wp")
    else:
        spec, tokenizer = encoderzoo.get_spec("medsiglip-448").tiny_variant(), sentencepiece_tokenizer(folder / "sp")
    encoder = randomize_(encoderzoo.load(spec, pretrained=False, text=True, tokenizer=tokenizer))
    with torch.no_grad():
        encoder.text.logit_scale.fill_(np.log(100.0))
    return encoder.eval()


@pytest.fixture(scope="module", params=["bert", "siglip"])
def tower(request, tmp_path_factory):
    return request.param, _image_text(request.param, tmp_path_factory.mktemp(request.param))


def _pixels(encoder, n=6, seed=1):
    size = encoder.spec.input_size
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _coop(encoder, task, names=NAMES, **config):
    outputs = 1 if task == "binary" else len(names)
    return AdaptedEncoder(encoder, "coop", {"class_names": list(names), "task": task, **config}, outputs).eval()


@pytest.mark.parametrize("task", ["multi-class", "binary", "multi-label"])
def test_context_from_a_template_gives_the_zero_shot_probabilities(tower, task):
    """Untrained context initialized from the words of a template = the zero-shot probe with that template:
    the prompts' text embeddings come from plain ``encode_text`` on the strings, scored by ``ZeroShotProbe``."""
    _, encoder = tower
    names = NAMES[:2] if task == "binary" else NAMES
    model = _coop(encoder, task, names, init=INIT, class_specific=task == "multi-class")
    pixels = _pixels(encoder)
    with torch.no_grad():
        image = encoder.embed(pixels)
        prompts = load_prompts(names, task, f"{INIT} {{}}.")
        encode = lambda groups: ensemble([encoder.encode_text(list(g)) for g in groups])  # noqa: E731
        if prompts.mode == "classes":
            text = encode(prompts.prompts)
        else:
            text = torch.stack([encode(prompts.prompts), encode(prompts.negative)], dim=1)
        scale, bias = encoder.text.logit_scale, encoder.text.logit_bias
        probe = ZeroShotProbe(
            text,
            float(scale),
            None if bias is None else float(bias),
            mode=prompts.mode,
            binary=task == "binary" and prompts.mode == "pairs",
            device="cpu",
        )
        expected = probe.predict_proba(image.numpy())
        got = probabilities(task, model.classify(pixels)).numpy()
    assert model.coop.length == len(encoder.text.tokenizer.hf(INIT, add_special_tokens=False)["input_ids"])
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert expected.std() > 1e-3, "the reference must discriminate, or the comparison says nothing"


def test_context_vectors_change_the_logits_and_only_they_train(tower):
    _, encoder = tower
    model = _coop(encoder, "multi-class", context_length=3, class_specific=True)
    width = encoder.text.spec.width
    trainable = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"coop.context": torch.Size([3, 3, width])}
    pixels = _pixels(encoder)
    loss = torch.nn.functional.cross_entropy(model.classify(pixels), torch.tensor([0, 1, 2, 0, 1, 2]))
    loss.backward()
    grad = model.coop.context.grad
    assert grad is not None and all(float(grad[c].abs().sum()) > 0 for c in range(3)), "each class's context learns"
    before = model.classify(pixels).detach()
    with torch.no_grad():
        model.coop.context[1] += torch.randn(3, width)
    after = model.classify(pixels).detach()
    assert not torch.allclose(before[:, 1], after[:, 1]), "class 1's context moves class 1's logit"
    torch.testing.assert_close(before[:, [0, 2]], after[:, [0, 2]], rtol=0, atol=0)
    unified = _coop(encoder, "multi-class", context_length=2)
    assert unified.coop.context.shape == (2, width) and unified.parameter_counts()[0] == 2 * width


def test_training_moves_the_context_and_nothing_else(tmp_path):
    encoder = _image_text("siglip", tmp_path)
    data = open_dataset(f"npz:{write_npz(tmp_path / 'd.npz', sizes=(12, 6, 6), classes=3)}")
    model = _coop(encoder, "multi-class", context_length=2)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k != "coop.context"}
    context = model.coop.context.detach().clone()
    fit(model, data, TrainConfig(epochs=2, lr=0.1, batch_size=6, patience=5), tmp_path / "ck", progress=False)
    assert not torch.equal(model.coop.context.detach(), context)
    for key, value in model.state_dict().items():
        if key != "coop.context":
            torch.testing.assert_close(value, frozen[key], rtol=0, atol=0, msg=key)


def test_saved_coop_reloads_to_identical_logits(tmp_path):
    encoder = _image_text("bert", tmp_path)
    base = f"local-dir:{encoderzoo.save_pretrained(encoder, tmp_path / 'base')}"
    encoder = encoderzoo.load(base)
    model = _coop(encoder, "binary", NAMES[:2], context_length=3, class_specific=True)
    with torch.no_grad():
        model.coop.context.normal_(0, 1)
    meta = describe(
        model,
        base_name=base,
        base_fingerprint=weights_fingerprint(encoder),
        task="binary",
        label_names=["normal", "effusion"],
        dataset="npz:x",
    )
    save_adapted(model, tmp_path / "out", meta)
    assert set(load_file(tmp_path / "out" / "adapter.safetensors")) == {"coop.context"}
    reloaded = encoderzoo.load(f"local-dir:{tmp_path / 'out'}")
    pixels = _pixels(encoder)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.classify(pixels), model.classify(pixels), rtol=0, atol=0)
    assert reloaded.method_config["class_names"] == NAMES[:2] and reloaded.coop.settings.class_specific


def test_bad_coop_settings_are_clear_errors(tower):
    _, encoder = tower
    with pytest.raises(CoopError, match="needs .* tokens"):
        _coop(encoder, "multi-class", context_length=200)
    with pytest.raises(CoopError, match="bare numbers"):
        from encoderzoo.adapters.coop import dataset_settings

        dataset_settings({}, ["0", "1"], "binary")
    with pytest.raises(CoopError, match="two classes"):
        _coop(encoder, "binary", NAMES)


def test_cli_adapt_coop_end_to_end(tmp_path):
    encoder = _image_text("siglip", tmp_path)
    base = f"local-dir:{encoderzoo.save_pretrained(encoder, tmp_path / 'base')}"
    npz = write_npz(tmp_path / "d.npz", sizes=(12, 6, 8), classes=3)
    out = tmp_path / "adapted"
    args = ["adapt", "-e", base, "-d", f"npz:{npz}", "--method", "coop", "--out", str(out), "--device", "cpu"]
    args += ["--context-length", "4", "--class-specific", "--epochs", "2", "--batch-size", "6", "--lr", "0.05"]
    refused = runner.invoke(app, [*args[:-4], "-o", str(tmp_path / "x"), "--epochs", "1"])
    assert refused.exit_code != 0 and "bare numbers" in refused.output
    result = runner.invoke(app, [*args, "--class-names", "normal lungs|pleural effusion|mass", "-f", "json"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    width = encoder.text.spec.width
    assert saved["training"]["trainable_params"] == 3 * 4 * width and saved["protocol"]["method"] == "coop"
    meta = json.loads((out / "encoderzoo.json").read_text())
    assert meta["method_config"]["class_names"] == NAMES and meta["method_config"]["task"] == "multi-class"
    assert load_file(out / "adapter.safetensors")["coop.context"].shape == (3, 4, width)
    reloaded = encoderzoo.load(f"local-dir:{out}")
    data = open_dataset(f"npz:{npz}")
    pixels = reloaded.transform(torch.from_numpy(data.read("test", 0, 8)))
    from encoderzoo.probes import evaluate

    with torch.no_grad():
        proba = probabilities("multi-class", reloaded.classify(pixels)).numpy()
    metrics = evaluate(data.labels("test"), proba, data.label_names)
    assert saved["probes"]["adapted"]["accuracy"]["mean"] == pytest.approx(metrics["accuracy"], abs=1e-9)
    assert saved["probes"]["adapted"]["auroc"]["mean"] == pytest.approx(metrics["auroc"], abs=1e-6)
