"""Zero-shot classification: the probe against plain loops, the prompt files, run_probes and the CLI offline."""

from __future__ import annotations

import json
from importlib import resources

import medmnist
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, roc_auc_score
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.cli import app
from encoderzoo.data import open_dataset
from encoderzoo.data.table import CHEXPERT_LABELS, NIH_LABELS
from encoderzoo.engine import embed_dataset
from encoderzoo.probe_job import results_table, run_probes
from encoderzoo.probes import ZeroShotProbe, ensemble
from encoderzoo.probes.calibration import calibration_metrics
from encoderzoo.text import load_prompts
from encoderzoo.text.prompts import PromptError

from .datasets_fixtures import write_npz
from .text_helpers import sentencepiece_tokenizer

runner = CliRunner()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _class_vector(prompts: np.ndarray) -> np.ndarray:
    """Plain numpy prompt ensembling: mean of unit vectors, made unit again."""
    return _unit(np.mean([_unit(p) for p in prompts], axis=0))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("bias", [None, -3.0])
def test_classes_mode_matches_a_plain_loop(bias):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(9, 6)).astype(np.float32) * 3
    prompts = [rng.normal(size=(n, 6)).astype(np.float32) for n in (2, 3, 1)]
    scale = np.log(40.0)
    probe = ZeroShotProbe(ensemble([torch.from_numpy(p) for p in prompts]), scale, bias, device="cpu")
    expected = np.zeros((9, 3))
    for i, image in enumerate(images):
        for k, group in enumerate(prompts):
            expected[i, k] = np.exp(scale) * _unit(image) @ _class_vector(group) + (bias or 0.0)
    np.testing.assert_allclose(probe.logits(images).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(probe.predict_proba(images), _softmax(expected), atol=1e-5)
    assert (probe.predict(images) == expected.argmax(1)).all()


def test_pairs_mode_matches_chexzero():
    """CheXzero: P(label) = exp(l_pos) / (exp(l_pos) + exp(l_neg)) per label."""
    rng = np.random.default_rng(1)
    images = rng.normal(size=(8, 5)).astype(np.float32)
    pos = [rng.normal(size=(2, 5)).astype(np.float32) for _ in range(3)]
    neg = [rng.normal(size=(2, 5)).astype(np.float32) for _ in range(3)]
    text = torch.stack([ensemble([torch.from_numpy(p) for p in pos]), ensemble([torch.from_numpy(n) for n in neg])], 1)
    scale, bias = np.log(20.0), -2.0
    probe = ZeroShotProbe(text, scale, bias, mode="pairs", device="cpu")
    expected = np.zeros((8, 3))
    for i, image in enumerate(images):
        for j in range(3):
            lp = np.exp(scale) * _unit(image) @ _class_vector(pos[j]) + bias
            ln = np.exp(scale) * _unit(image) @ _class_vector(neg[j]) + bias
            expected[i, j] = np.exp(lp) / (np.exp(lp) + np.exp(ln))
    np.testing.assert_allclose(probe.predict_proba(images), expected, atol=1e-5)
    binary = ZeroShotProbe(text[:1], scale, bias, mode="pairs", binary=True, device="cpu")
    np.testing.assert_allclose(
        binary.predict_proba(images), np.stack([1 - expected[:, 0], expected[:, 0]], 1), atol=1e-5
    )
    with pytest.raises(ValueError, match="one label"):
        ZeroShotProbe(text, scale, bias, mode="pairs", binary=True)


def test_templates_from_text_and_file(tmp_path):
    prompts = load_prompts(["normal", "pneumonia"], "binary", "an x-ray of {}|{}")
    assert prompts.mode == "classes" and prompts.prompts == (
        ("an x-ray of normal", "normal"),
        ("an x-ray of pneumonia", "pneumonia"),
    )
    pairs = load_prompts(["Effusion", "Pleural_Thickening"], "multi-label", "an x-ray of {}")
    assert pairs.prompts == (("an x-ray of effusion",), ("an x-ray of pleural thickening",))
    assert pairs.negative == (("an x-ray of no effusion",), ("an x-ray of no pleural thickening",))
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {
                "templates": ["a scan of {}."],
                "names": {"0": "a cat"},
                "prompts": {"1": ["a dog.", "a puppy."]},
            }
        )
    )
    from_file = load_prompts(["0", "1"], "binary", str(path))
    assert from_file.prompts == (("a scan of a cat.",), ("a dog.", "a puppy.")) and from_file.source == str(path)
    path.write_text(json.dumps({"mode": "pairs", "positive": ["{}"], "negative": ["no {}"]}))
    binary_pairs = load_prompts(["normal", "pneumonia"], "binary", str(path))
    assert binary_pairs.prompts == (("pneumonia",),) and binary_pairs.negative == (("no pneumonia",),)


@pytest.mark.parametrize(
    "content, labels, task, match",
    [
        ({"templates": ["no placeholder"]}, ["a", "b"], "binary", "needs a"),
        ({"templates": ["{}"], "names": {"pneumonia ": "x"}}, ["normal", "pneumonia"], "binary", "does not have"),
        ({"templates": ["{}"], "colour": 1}, ["a", "b"], "binary", "unknown key"),
        ({"templates": ["{}"]}, ["0", "1"], "binary", "bare numbers"),
        ({"mode": "classes", "templates": ["{}"]}, ["a", "b"], "multi-label", "needs mode 'pairs'"),
        ({"mode": "pairs", "positive": ["{}"], "negative": ["no {}"]}, ["a", "b", "c"], "multi-class", "multi-class"),
        ({"mode": "pairs", "positive": ["{}"]}, ["a", "b"], "multi-label", "'negative'"),
    ],
)
def test_bad_prompt_files_say_what_is_wrong(tmp_path, content, labels, task, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PromptError, match=match):
        load_prompts(labels, task, str(path))


def test_missing_prompt_file_is_an_error(tmp_path):
    with pytest.raises(PromptError, match="does not exist"):
        load_prompts(["a", "b"], "binary", str(tmp_path / "nope.json"))


def _medmnist_labels(name: str) -> tuple[list[str], str]:
    info = medmnist.INFO[name]
    names = [info["label"][str(i)] for i in range(len(info["label"]))]
    task = "multi-label" if info["task"].startswith("multi-label") else "binary" if len(names) == 2 else "multi-class"
    return names, task


@pytest.mark.parametrize("name", [n for n in medmnist.INFO if not n.endswith("3d")])
def test_shipped_prompts_fit_every_medmnist_dataset(name):
    labels, task = _medmnist_labels(name)
    prompts = load_prompts(labels, task, None, f"medmnist:{name}@64")
    assert prompts.source == f"builtin:{name}.json"
    assert len(prompts.prompts) == len(labels)
    assert all(group and all(p.strip() and "{}" not in p for p in group) for group in prompts.prompts)
    assert (prompts.mode == "pairs") == (task == "multi-label")


def test_shipped_prompts_for_the_sample_and_chest_xray_sets():
    sample = load_prompts(["normal", "pneumonia"], "binary", None, "sample:pneumoniamnist")
    assert sample.source == "builtin:pneumoniamnist.json" and "pneumonia" in sample.prompts[1][0]
    nih = load_prompts(list(NIH_LABELS), "multi-label", None, "nih:/data/nih")
    assert nih.source == "builtin:nih.json" and nih.negative[NIH_LABELS.index("Effusion")][0] == "no pleural effusion."
    chexpert = load_prompts(list(CHEXPERT_LABELS), "multi-label", None, "chexpert:/data/x?uncertain=zeros")
    assert chexpert.source == "builtin:chexpert.json"
    assert chexpert.prompts[CHEXPERT_LABELS.index("No Finding")][0] == "a normal chest x-ray."
    assert load_prompts(["cat", "dog"], "binary", None, "folder:/x").source == "builtin:default.json"


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random MedSigLIP (28 px) with its text tower and a local SentencePiece tokenizer, saved."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-clip")
    spec = encoderzoo.get_spec("medsiglip-448").tiny_variant()
    encoder = encoderzoo.load(spec, pretrained=False, text=True, tokenizer=sentencepiece_tokenizer(root / "spm"))
    with torch.no_grad():
        encoder.text.logit_scale.fill_(np.log(10.0))
    return encoderzoo.save_pretrained(encoder, root / "encoder")


def test_run_probes_zeroshot_matches_a_manual_computation(tiny_clip_dir):
    results = run_probes(
        f"local-dir:{tiny_clip_dir}", "sample:pneumoniamnist", probes=["zeroshot"], device="cpu", progress=False
    )
    out = results["probes"]["zeroshot"]
    assert results["splits"] == {"test": 200}, "zero-shot alone embeds only the test split"
    assert "ignored" in out["train_split"] and "train" in results["protocol"]["zeroshot"]["training_data"]
    assert (
        set(out["accuracy"]) == {"mean", "std", "values", "ci95"}
        and out["prompts"]["source"] == "builtin:pneumoniamnist.json"
    )
    # independent computation: numpy scores from the encoder's own text embeddings, sklearn metrics
    encoder = encoderzoo.load(f"local-dir:{tiny_clip_dir}")
    data = open_dataset("sample:pneumoniamnist")
    test = embed_dataset(encoder, data, "test", progress=False)
    prompts = json.loads((resources.files("encoderzoo") / "prompts" / "pneumoniamnist.json").read_text())
    names = {"normal": "normal lungs", "pneumonia": "pneumonia"}
    scale, bias = float(encoder.text.logit_scale.detach()), float(encoder.text.logit_bias.detach())
    with torch.no_grad():
        classes = [
            _class_vector(encoder.encode_text([t.replace("{}", names[c]) for t in prompts["templates"]]).numpy())
            for c in ("normal", "pneumonia")
        ]
    logits = np.exp(scale) * _unit(test.features.numpy()) @ np.stack(classes).T + bias
    proba = _softmax(logits)
    assert out["accuracy"]["mean"] == pytest.approx(accuracy_score(test.labels, proba.argmax(1)), abs=1e-9)
    assert out["auroc"]["mean"] == pytest.approx(roc_auc_score(test.labels, proba[:, 1]), abs=1e-6)
    assert "zero-shot" in results_table(results)
    # calibration of the same probabilities; alone, zero-shot has no val split to fit a temperature or sets on
    ece = calibration_metrics(test.labels, proba)["ece"]
    assert out["calibration"]["ece"]["mean"] == pytest.approx(ece, abs=1e-6)  # float32 vs float64 scores
    assert "skipped" in out["calibration"]["temperature_scaled"] and "skipped" in out["conformal"]


def test_zeroshot_reads_no_training_split(tiny_clip_dir, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "testonly.npz"
    np.savez(path, test_images=rng.integers(0, 255, (12, 28, 28), np.uint8), test_labels=np.arange(12) % 2)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"templates": ["{}"], "names": {"0": "normal", "1": "pneumonia"}}))
    results = run_probes(
        f"local-dir:{tiny_clip_dir}",
        f"npz:{path}",
        probes=["zeroshot"],
        templates=str(prompts),
        device="cpu",
        progress=False,
    )
    assert results["splits"] == {"test": 12}
    assert results["probes"]["zeroshot"]["prompts"]["prompts"] == {"0": ["normal"], "1": ["pneumonia"]}
    with pytest.raises(ValueError, match=r"lacks split\(s\) \['train', 'val'\]"):
        run_probes(f"local-dir:{tiny_clip_dir}", f"npz:{path}", probes=["knn", "zeroshot"], device="cpu")


def test_multilabel_zeroshot_uses_pairs(tiny_clip_dir, tmp_path):
    data = write_npz(tmp_path / "chest.npz", sizes=(4, 4, 16), multilabel=3, seed=2)
    prompts = tmp_path / "findings.json"
    prompts.write_text(
        json.dumps({"names": {"0": "effusion", "1": "edema", "2": "mass"}, "positive": ["{}"], "negative": ["no {}"]})
    )
    results = run_probes(
        f"local-dir:{tiny_clip_dir}",
        f"npz:{data}",
        probes=["zeroshot", "knn"],
        templates=str(prompts),
        device="cpu",
        progress=False,
    )
    out = results["probes"]["zeroshot"]
    assert out["prompts"]["mode"] == "pairs" and out["prompts"]["negative"]["1"] == ["no edema"]
    assert set(out["auroc_per_label"]) == {"0", "1", "2"} and "knn" in results["probes"]
    assert set(out["calibration"]["per_label"]) == set(out["conformal"]["per_label"]) == {"0", "1", "2"}


def test_cli_probe_zeroshot_offline(tiny_clip_dir, tmp_path):
    result = runner.invoke(
        app,
        [
            "probe",
            "-e",
            f"local-dir:{tiny_clip_dir}",
            "--probes",
            "zeroshot",
            "--templates",
            "a chest x-ray of {}|{}",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "results.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "zero-shot" in result.stdout and "no training data" in result.stdout
    saved = json.loads((tmp_path / "results.json").read_text())
    zs = saved["probes"]["zeroshot"]
    assert zs["prompts"]["source"] == "a chest x-ray of {}|{}"
    assert zs["prompts"]["prompts"]["pneumonia"] == ["a chest x-ray of pneumonia", "pneumonia"]
    assert {"encoder", "revision", "dataset", "protocol", "seeds", "versions", "device", "timings_s"} <= set(saved)


def test_templates_without_the_zeroshot_probe_are_refused():
    result = runner.invoke(app, ["probe", "--probes", "knn", "--templates", "{}", "--device", "cpu"])
    assert result.exit_code == 2 and "zeroshot probe only" in result.output


def test_cli_zeroshot_on_an_image_only_encoder_is_a_clear_error():
    result = runner.invoke(app, ["probe", "-e", "efficientnet-lite0", "--probes", "zeroshot", "--device", "cpu"])
    assert result.exit_code == 2 and "image-only" in result.output
