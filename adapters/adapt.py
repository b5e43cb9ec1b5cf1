"""``adapt()``: fine-tune a zoo encoder on a dataset and leave a reloadable folder; ``encoderzoo adapt`` calls it."""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..adapted_card import write_card
from ..atomic import atomic_write
from ..data import open_dataset
from ..devices import init_distributed_from_env, resolve_device
from ..engine import weights_fingerprint
from ..environment import device_name, versions
from ..loading import load
from ..paths import check_writable
from ..per_label import per_label
from ..probes import evaluate, summarize
from ..probes.bootstrap import PROTOCOL as BOOTSTRAP_PROTOCOL
from ..probes.bootstrap import add_intervals
from ..probes.metrics import METRICS
from ..trust import Trust
from .folder import CHECKPOINT_DIR, RESULTS_FILE, describe, save_adapted
from .methods import get_method
from .model import AdaptedEncoder, AdapterError, head_outputs
from .training import CHECKPOINT_NAME, SplitReader, TrainConfig, _world, fit, predict_proba, stratified_subset


def check_output_folder(out: Path, resume: bool) -> None:
    """Refuse a non-empty folder unless resuming, and an unwritable one, before any work starts."""
    check_writable(out, folder=True)
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise AdapterError(f"--out {out} exists and is not empty; choose a new folder, or pass --resume to continue")
    checkpoint = out / CHECKPOINT_DIR / CHECKPOINT_NAME
    if resume and not checkpoint.is_file():
        if (out / RESULTS_FILE).is_file():
            raise AdapterError(f"{out} holds a finished run (results.json) and no checkpoint: nothing to resume")
        warnings.warn(f"--resume: {out} holds no checkpoint ({checkpoint}); starting from scratch", stacklevel=3)


def check_trainable_labels(labels: np.ndarray, task: str, names: list[str], dataset: str) -> None:
    """A training split with a single class (or, multi-label, no label with both outcomes) teaches nothing and
    scores a meaningless accuracy of 1.0: refused before any training."""
    if task == "multi-label":
        if not ((labels == 1).any(axis=0) & (labels == 0).any(axis=0)).any():  # NaN (unknown) is neither
            raise AdapterError(f"{dataset} train: no label has both positive and negative images; nothing to learn")
        return
    present = np.unique(labels)
    if len(present) < 2:
        only = names[int(present[0])] if len(present) else "none"
        raise AdapterError(
            f"{dataset} train holds a single class ({only!r}, {len(labels)} images): a classifier cannot learn from "
            "one class; add images of the other class(es)"
        )


def adapt(
    encoder: str,
    dataset: str,
    method: str,
    out: str | os.PathLike[str],
    *,
    method_config: Mapping[str, Any] | None = None,
    config: TrainConfig | None = None,
    device: str = "auto",
    max_train: int | None = None,
    image_size: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    revision: str | None = None,
    test_dataset: str | None = None,
) -> dict[str, Any]:
    """Adapt ``encoder`` to ``dataset`` with ``method`` and write the adapted folder ``out``; returns results.json.

    Args:
        encoder: registry name, ``hf-hub:`` or ``local-dir:`` (a saved encoder) to start from.
        dataset: a dataset spec with train, val and test splits (``encoderzoo.data.open_dataset``).
        method: a registered method (``encoderzoo.adapters.METHODS``): ``head``, ``lora``, ``vpt``, ...
        method_config: the method's settings (the fields of its record's ``settings``: ``LoraSettings``, ...).
        config: optimizer, schedule, early stopping (``TrainConfig``).
        max_train: train on a class-stratified subset of this many training images (val and test stay whole).
        image_size: adapt at this input size instead of the spec's (``encoderzoo.load(image_size=...)``); the
            folder records it and reloads the base at the same size.
        weights: a local copy of the base's canonical weight file.
        resume: continue the run checkpointed in ``out/checkpoints``.
        revision: a registry base's weights at this Hub revision instead of its pin (recorded in the folder).
        test_dataset: external validation: train and early-stop on ``dataset``, score this dataset's test split
            over the labels both have (``encoderzoo.external``).
    """
    record = get_method(method)  # before any download or training
    config = config or TrainConfig()
    out = Path(out)
    check_output_folder(out, resume)
    resolved = resolve_device(device)
    resolved = init_distributed_from_env(resolved)
    rank, _ = _world()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = open_dataset(dataset)
    external = None
    if test_dataset is not None:
        from ..external import open_aligned

        external = open_aligned(data, test_dataset)
        data = external.train
    test_data = data if external is None else external.test
    missing = [s for s in ("train", "val", "test") if s not in (test_data if s == "test" else data).splits]
    if missing:
        raise AdapterError(f"{dataset} lacks split(s) {missing}: adaptation early-stops on val and scores test")
    check_trainable_labels(data.labels("train"), data.task, data.label_names, dataset)
    torch.manual_seed(config.seed)
    base = load(
        encoder,
        weights=weights,
        image_size=image_size,
        text=True if record.needs_text else None,
        revision=revision,
    )
    if record.prepare is not None:  # settings from the dataset (coop: class texts; ace-lora: prompts)
        method_config = record.prepare(dict(method_config or {}), data, dataset)
    fingerprint = weights_fingerprint(base)
    model = AdaptedEncoder(base, method, method_config or {}, head_outputs(data.task, len(data.label_names)))
    model.to(resolved)
    labels = data.labels("train")
    train_rows = stratified_subset(labels, max_train, config.seed) if max_train else np.arange(len(labels))
    text_source = record.before_training(model, data) if record.before_training is not None else None
    timings["load"] = time.perf_counter() - start

    start = time.perf_counter()
    record = fit(model, data, config, out / CHECKPOINT_DIR, train_indices=train_rows, resume=resume, progress=progress)
    timings["train"] = time.perf_counter() - start

    start = time.perf_counter()
    test = SplitReader(test_data, "test", model, np.arange(test_data.num_samples("test")))
    test_proba = predict_proba(model, test, data.task, config.eval_batch_size)
    metrics = evaluate(test.labels, test_proba, data.label_names)
    timings["test"] = time.perf_counter() - start
    val = SplitReader(data, "val", model, np.arange(data.num_samples("val")))  # calibration and conformal sets
    trusted = Trust().assess(
        "adapted",
        (data.sample_ids("val"), val.labels, predict_proba(model, val, data.task, config.eval_batch_size)),
        (data.sample_ids("test"), test.labels, test_proba),
        data.label_names,
    )

    trainable, total = model.parameter_counts()
    meta = describe(
        model,
        base_name=encoder,
        base_fingerprint=fingerprint,
        task=data.task,
        label_names=data.label_names,
        dataset=dataset,
    )
    results = {
        "encoder": model.spec.name,
        "base_encoder": model.encoder.spec.name,
        "revision": model.spec.source.revision,
        "weights": model.spec.source.repo_id or model.spec.source.package,
        "pooling": model.spec.pooling,
        "image_size": model.spec.input_size,
        "dataset": dataset,
        "dataset_info": data.describe(),
        **({} if external is None else {"test_dataset": test_dataset, "external_validation": external.info}),
        "task": data.task,
        "splits": {
            "train": int(len(train_rows)),
            "val": data.num_samples("val"),
            "test": test_data.num_samples("test"),
        },
        "protocol": {
            "method": method,
            "method_config": model.method_config,
            "selection": f"early stopping on val {record['monitor']}; best epoch restored; test scored once",
            "training_texts": text_source,
            "train_subset": None
            if not max_train
            else {"size": int(len(train_rows)), "stratified": True, "seed": config.seed, "of": int(len(labels))},
            "confidence_intervals": dict(BOOTSTRAP_PROTOCOL),
        },
        "seeds": [config.seed],
        "probes": {
            "adapted": {
                **add_intervals({m: summarize([metrics[m]]) for m in METRICS}, test.labels, test_proba),
                "auroc_skipped": metrics["auroc_skipped"],
                **per_label(test.labels, metrics),
                **trusted,
            }
        },
        "training": {
            **record,
            "trainable_params": trainable,
            "total_params": total,
            "trainable_fraction": trainable / total,
        },
        "versions": versions(),
        "device": device_name(resolved),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    if rank == 0:
        save_adapted(model, out, meta)
        text = json.dumps(results, indent=2, default=_json_default)
        atomic_write(out / RESULTS_FILE, lambda tmp: tmp.write_text(text + "\n"))
        write_card(out)
    return results


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
