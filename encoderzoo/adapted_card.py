"""The model card of an adapted folder: huggingface_hub ``ModelCard`` metadata + our template.

``adapted_card(folder)`` reads only ``encoderzoo.json`` and ``results.json`` (checked by
``encoderzoo.adapted_folder.read_adapted_folder``), so the card always describes the files next to it. The YAML header
carries ``base_model`` (the base's canonical Hub repository; its revision in ``base_model_revision``),
``library_name: encoderzoo``, the licence inherited from the base (``encoderzoo.licences.base_terms``), tags,
datasets and ``eval_results`` from the test metrics; the prose states intended use, data, protocol, trainable
parameters, preprocessing, limitations, licence conditions and citations.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .adapted_folder import CARD_FILE, AdaptedFolder, public_dataset, read_adapted_folder
from .cards import template_environment
from .licences import BaseTerms, base_terms

HUB_METRIC_TYPES = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "auroc": "roc_auc"}
"""Our metric names -> the Hub's metric types in model-index results."""
"""results.json metric -> Hub metric id."""
METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "auroc": "macro AUROC"}
METHOD_TEXT = {
    "head": "linear head on the frozen encoder",
    "lora": "LoRA (peft) on the modules {targets}, frozen base, plus a linear head",
    "vpt": "visual prompt tuning (shallow): learned prompt tokens at the input, frozen base, plus a linear head",
    "vpt-deep": "visual prompt tuning (deep): learned prompt tokens at every block, frozen base, plus a linear head",
    "ace-hgnn": "ACE-HGNN: hypergraph context module (from ACE-LoRA) on the frozen final tokens, plus a linear head",
    "full": "full fine-tuning: every encoder weight trained, plus a linear head (`adapter.safetensors` is a "
    "complete fine-tuned copy of the encoder, a derivative of the base weights)",
    "coop": "CoOp: learned text context vectors before each class name in the frozen text tower; the logits are "
    "the model's own image-text similarities (the head file is unused, all zeros)",
    "ace-lora": "ACE-LoRA: LoRA on q/k/v of both towers and ACE-HGNN on the image tokens, trained with a "
    "label-guided image-text InfoNCE; scored zero-shot against class prompts (the head file is unused, all zeros)",
}
METHOD_CITATION = {
    "head": "linear probing of frozen features (no method paper).",
    "lora": "Hu EJ, et al. LoRA: Low-Rank Adaptation of Large Language Models. ICLR 2022. arXiv:2106.09685; "
    "implemented with Hugging Face PEFT (https://github.com/huggingface/peft).",
    "vpt": "Jia M, et al. Visual Prompt Tuning. ECCV 2022. arXiv:2203.12119",
    "vpt-deep": "Jia M, et al. Visual Prompt Tuning. ECCV 2022. arXiv:2203.12119",
    "ace-hgnn": "the hypergraph context enhancement of ACE-LoRA (https://github.com/icon-lab/ACE-LoRA).",
    "full": "full fine-tuning (no method paper).",
    "coop": "Zhou K, et al. Learning to Prompt for Vision-Language Models. IJCV 2022. arXiv:2109.01134",
    "ace-lora": "ACE-LoRA (https://github.com/icon-lab/ACE-LoRA).",
}
METHOD_TAGS = {"lora": ["lora", "peft"], "vpt": ["visual-prompt-tuning"], "vpt-deep": ["visual-prompt-tuning"],
               "coop": ["prompt-learning", "zero-shot-image-classification"]}
TASK_NAMES = {"binary": "Binary image classification", "multi-class": "Image classification",
              "multiclass": "Image classification", "multi-label": "Multi-label image classification",
              "multilabel": "Multi-label image classification"}


def model_name(folder: AdaptedFolder) -> str:
    """``<base>-<method>-<dataset>`` with Hub-safe characters."""
    raw = f"{folder.spec.name}-{folder.method}-{public_dataset(folder.meta['dataset']).split(':')[-1]}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.")


def metric_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Test metrics in results.json: one row per (probe, metric) with mean, std and the number of values."""
    rows = []
    for probe, block in (results.get("probes") or {}).items():
        if not isinstance(block, dict):
            continue
        for metric in HUB_METRIC_TYPES:
            entry = block.get(metric)
            if isinstance(entry, dict) and isinstance(entry.get("mean"), (int, float)):
                values = entry.get("values") or [entry["mean"]]
                rows.append({"probe": probe, "metric": metric, "mean": float(entry["mean"]),
                             "std": float(entry.get("std") or 0.0), "n": len(values)})
            elif isinstance(entry, (int, float)):
                rows.append({"probe": probe, "metric": metric, "mean": float(entry), "std": 0.0, "n": 1})
    return rows


def card_data(folder: AdaptedFolder, terms: BaseTerms | None = None):
    """The ``ModelCardData`` of an adapted folder (what the YAML header holds); ``terms``: the base's, if the
    caller has them already."""
    from huggingface_hub import EvalResult, ModelCardData

    spec, meta = folder.spec, folder.meta
    terms = terms or base_terms(meta)
    dataset = public_dataset(meta["dataset"])
    name = model_name(folder)
    task_type = "image-classification"
    evals = [
        EvalResult(
            task_type=task_type,
            task_name=TASK_NAMES[meta["task"]],
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split="test",
            metric_type=HUB_METRIC_TYPES[row["metric"]],
            metric_name=f"{METRIC_NAMES[row['metric']]} ({row['probe']})",
            metric_value=round(row["mean"], 6),
        )
        for row in metric_rows(folder.results)
    ]
    extra: dict[str, Any] = {}
    if spec.source.repo_id:
        extra["base_model"] = spec.source.repo_id
        extra["base_model_relation"] = "adapter"
        extra["base_model_revision"] = folder.base_revision
    if terms.gate_prompt:
        extra["extra_gated_prompt"] = terms.gate_prompt
    return ModelCardData(
        model_name=name,
        library_name="encoderzoo",
        pipeline_tag="image-classification",
        tags=["encoderzoo", "medical-imaging", folder.method, spec.family, *METHOD_TAGS.get(folder.method, [])],
        datasets=[dataset],
        eval_results=evals or None,
        **terms.card_metadata(),
        **extra,
    )


def adapted_card(
    folder: AdaptedFolder | str | os.PathLike[str], repo_id: str | None = None, terms: BaseTerms | None = None
):
    """The ``huggingface_hub.ModelCard`` of the adapted ``folder`` (``repo_id`` fills the loading example); an
    ``AdaptedFolder`` already read, and the base's ``terms`` already decided, are used as they are."""
    from huggingface_hub import ModelCard

    adapted = folder if isinstance(folder, AdaptedFolder) else read_adapted_folder(folder)
    spec, meta, results = adapted.spec, adapted.meta, adapted.results
    terms = terms or base_terms(meta)
    data = card_data(adapted, terms)
    source = spec.source
    if source.repo_id:
        upstream = f"[`{source.repo_id}`](https://huggingface.co/{source.repo_id})"
        revision = f"`{adapted.base_revision}`" + ("" if source.pinned else " (a branch, not a pinned commit)")
    elif source.package:
        upstream = f"PyPI package `{source.package}`"
        revision = f"package version {source.revision}"
    else:
        upstream = f"[{source.filename}]({source.url})" if source.url else "see encoderzoo.json"
        revision = source.revision
    training = results.get("training", {})
    trainable, total = int(training.get("trainable_params", meta.get("trainable_params", 0))), int(
        training.get("total_params", meta.get("total_params", 0)) or 0
    )
    num_outputs = int(meta.get("num_outputs") or (1 if meta["task"] == "binary" else len(meta["label_names"])))
    rows = metric_rows(results)
    template = template_environment().get_template("adapted_card.md")
    text = template.render(
        card_data=data.to_yaml(),
        model_name=data.model_name,
        summary=(
            f"`{spec.name}` adapted by **{adapted.method}** for {meta['task']} classification of "
            f"{len(meta['label_names'])} label(s) on `{public_dataset(meta['dataset'])}`, with "
            f"[encoderzoo](https://pypi.org/project/encoderzoo/)."
        ),
        load_name=f"hf-hub:{repo_id}" if repo_id else "hf-hub:ORG/NAME",
        embed_dim=spec.output_dim,
        num_outputs=num_outputs,
        task=meta["task"],
        label_names=[str(n) for n in meta["label_names"]],
        files=[f"`{f}`" for f in adapted.files],
        spec=spec,
        upstream=upstream,
        revision=revision,
        fingerprint=str(adapted.base.get("weights_fingerprint", "not recorded"))[:16],
        terms=terms,
        method_text=METHOD_TEXT[adapted.method].format(
            targets=", ".join(f"`{t}`" for t in (meta.get("method_config") or {}).get("targets") or spec.lora_targets)
        ),
        method_config=f"`{json.dumps(meta.get('method_config') or {}, sort_keys=True)}`",
        trainable=f"{trainable:,}",
        total=f"{total:,}" if total else "unknown",
        fraction=f"{trainable / total:.2%}" if total else "n/a",
        dataset=public_dataset(meta["dataset"]),
        splits=", ".join(f"{k} {v}" for k, v in (results.get("splits") or {}).items()) or "not recorded",
        protocol=_protocol_lines(results, training),
        metrics=[
            {"name": f"{METRIC_NAMES[r['metric']]} ({r['probe']})",
             "value": f"{r['mean']:.4f}" + (f" ± {r['std']:.4f} over {r['n']} runs" if r["n"] > 1 else "")}
            for r in rows
        ],
        resize=_resize(spec),
        normalization=f"mean {[round(m, 4) for m in spec.mean]}, std {[round(s, 4) for s in spec.std]}",
        pooling=spec.pooling,
        limitations=_limitations(adapted),
        method_citation=METHOD_CITATION[adapted.method],
    )
    return ModelCard(text)


def write_card(folder: AdaptedFolder | str | os.PathLike[str], repo_id: str | None = None) -> Path:
    """Write the card as ``README.md`` into ``folder`` (atomically) and return its path."""
    from .atomic import atomic_write

    path = (folder.path if isinstance(folder, AdaptedFolder) else Path(folder)) / CARD_FILE
    text = str(adapted_card(folder, repo_id))
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def _protocol_lines(results: dict[str, Any], training: dict[str, Any]) -> list[str]:
    protocol = results.get("protocol") or {}
    lines = []
    if protocol.get("selection"):
        lines.append(f"Model selection: {protocol['selection']}.")
    subset = protocol.get("train_subset")
    if isinstance(subset, dict):
        lines.append(f"Training subset: {subset.get('size')} of {subset.get('of')} training images, class-stratified "
                     f"(seed {subset.get('seed')}).")
    if "epochs_run" in training:
        lines.append(f"Epochs run: {training['epochs_run']}" + (
            f", best epoch {training['best_epoch']}" if "best_epoch" in training else "") + ".")
    config = training.get("config")
    if isinstance(config, dict) and config:
        lines.append("Training settings: `" + json.dumps(config, sort_keys=True) + "`.")
    if results.get("seeds") is not None:
        lines.append(f"Seeds: {results['seeds']}.")
    if results.get("device"):
        lines.append(f"Trained on: {results['device']}.")
    return lines


def _resize(spec) -> str:
    if spec.resize_mode == "shortest_crop":
        text = f"shortest edge to {spec.input_size}, centre crop {spec.input_size}"
    else:
        text = f"resized to {spec.input_size} x {spec.input_size}"
    return text + f" ({spec.interpolation}, antialias {'on' if spec.antialias else 'off'})"


def _limitations(folder: AdaptedFolder) -> list[str]:
    spec, meta = folder.spec, folder.meta
    lines = [
        f"Trained and tested on one dataset (`{public_dataset(meta['dataset'])}`); expect lower performance on "
        "images from other hospitals, scanners, populations or acquisition protocols. Validate on your own data.",
        "The metrics come from a single test split; they are estimates with sampling error, not guarantees. "
        "Probabilities are not calibrated.",
        f"The base model was pretrained on: {', '.join(spec.domains) or 'unstated data'}; its biases carry over.",
        "No clinical validation, subgroup analysis or fairness audit has been done.",
    ]
    lines += [f"Base model note: {note}" for note in spec.notes]
    return lines
