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
import warnings
from pathlib import Path
from typing import Any

from .adapted_folder import CARD_FILE, AdaptedFolder, public_dataset, read_adapted_folder
from .adapted_methods import MethodFacts, method_facts, registered_method_facts
from .cards import template_environment
from .licences import BaseTerms, base_terms

HUB_METRIC_TYPES = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "auroc": "roc_auc"}
"""Our metric names -> the Hub's metric types in model-index results."""
"""results.json metric -> Hub metric id."""
METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "auroc": "macro AUROC"}
TASK_NAMES = {
    "binary": "Binary image classification",
    "multi-class": "Image classification",
    "multiclass": "Image classification",
    "multi-label": "Multi-label image classification",
    "multilabel": "Multi-label image classification",
}


def __getattr__(name: str) -> Any:
    """``METHOD_TEXT``, ``METHOD_CITATION``, ``METHOD_TAGS`` (deprecated): read from the registered methods."""
    fields = {"METHOD_TEXT": "card_text", "METHOD_CITATION": "citation", "METHOD_TAGS": "tags"}
    if name not in fields:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{name} is deprecated; use encoderzoo.adapted_methods.method_facts", DeprecationWarning, 2)
    return {m: getattr(facts, fields[name]) for m, facts in registered_method_facts().items()}


def _facts(folder: AdaptedFolder) -> MethodFacts:
    facts = method_facts(folder.method)  # read_adapted_folder refused an unknown method
    assert facts is not None
    return facts


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
                rows.append(
                    {
                        "probe": probe,
                        "metric": metric,
                        "mean": float(entry["mean"]),
                        "std": float(entry.get("std") or 0.0),
                        "n": len(values),
                    }
                )
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
        tags=["encoderzoo", "medical-imaging", folder.method, spec.family, *_facts(folder).tags],
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
    trainable, total = (
        int(training.get("trainable_params", meta.get("trainable_params", 0))),
        int(training.get("total_params", meta.get("total_params", 0)) or 0),
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
        method_text=_facts(adapted).card_text.format(
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
            {
                "name": f"{METRIC_NAMES[r['metric']]} ({r['probe']})",
                "value": f"{r['mean']:.4f}" + (f" ± {r['std']:.4f} over {r['n']} runs" if r["n"] > 1 else ""),
            }
            for r in rows
        ],
        resize=_resize(spec),
        normalization=f"mean {[round(m, 4) for m in spec.mean]}, std {[round(s, 4) for s in spec.std]}",
        pooling=spec.pooling,
        limitations=_limitations(adapted),
        method_citation=_facts(adapted).citation,
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
        lines.append(
            f"Training subset: {subset.get('size')} of {subset.get('of')} training images, class-stratified "
            f"(seed {subset.get('seed')})."
        )
    if "epochs_run" in training:
        lines.append(
            f"Epochs run: {training['epochs_run']}"
            + (f", best epoch {training['best_epoch']}" if "best_epoch" in training else "")
            + "."
        )
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
