"""``run_probes``: embed (through the cache), probe, and assemble ``results.json`` — the ``encoderzoo probe`` job.

Protocol (recorded in the results):
- every hyperparameter (k for kNN, C for the linear probe, in few-shot too) is chosen on the validation split;
- the test split is scored once per fitted probe;
- every random choice (few-shot episodes, random baselines for curation) is seeded and the seeds are listed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .data import open_dataset
from .devices import resolve_device
from .embeddings import EmbeddingSet
from .engine import embed_splits
from .environment import device_name, versions
from .loading import load
from .per_label import label_counts, per_label
from .predictions import Predictions
from .probe_settings import check_probe_settings
from .probes import KNNProbe, LinearProbe, evaluate, evaluate_curation, few_shot, near_duplicates, summarize
from .probes._base import selection_metric_for
from .probes.bootstrap import PROTOCOL as BOOTSTRAP_PROTOCOL
from .probes.bootstrap import add_intervals
from .probes.metrics import METRICS
from .trust import Trust

KNN_KS = (10, 20, 50, 100, 200)


def _single(metrics: dict) -> dict:
    """A deterministic probe reported like the seeded ones: {mean, std, values} with one value."""
    return {m: summarize([metrics[m]]) for m in METRICS}


def knn_probe(
    train: EmbeddingSet, val: EmbeddingSet, test: EmbeddingSet, names, device, trust=None, fitted=None
) -> dict:
    """DINOv2 kNN (cosine, T=0.07) with k chosen on val from ``KNN_KS``; plus the MedMNIST+ preset.

    ``trust`` (``encoderzoo.trust.Trust``) adds calibration and conformal entries; ``fitted`` receives the
    fitted probe (for scoring corrupted test sets)."""
    ks = [k for k in KNN_KS if k <= len(train)] or [len(train)]
    probe = KNNProbe(k=ks[0], device=device).fit(train.features.numpy(), train.labels)
    metric = selection_metric_for(probe.column_targets(train.labels, split="train"), probe.multilabel_)
    val_true = probe.column_targets(val.labels, split="val")
    val_proba = probe.predict_proba_many(val.features.numpy(), ks)
    val_scores = {k: evaluate(val_true, p, names)[metric] for k, p in val_proba.items()}
    best_k = max(ks, key=lambda k: (val_scores[k], -k))
    probe.set_params(k=best_k)
    test_true, test_proba = probe.column_targets(test.labels), probe.predict_proba(test.features.numpy())
    test_metrics = evaluate(test_true, test_proba, names)
    result = {
        "k": best_k,
        "selection_metric": metric,
        "val_scores": val_scores,
        **add_intervals(_single(test_metrics), test_true, test_proba),
        "auroc_skipped": test_metrics["auroc_skipped"],
        **per_label(test.labels, test_metrics),
    }
    if trust is not None:
        result |= trust.assess("knn", (val.ids, val_true, val_proba[best_k]), (test.ids, test_true, test_proba), names)
    if fitted is not None:
        fitted["knn"] = probe
    if len(train) >= 11:  # multi-label too: each label's majority of the 11 (odd, so never a tie), as the paper
        plus = KNNProbe.medmnist_plus(device=device).fit(train.features.numpy(), train.labels)
        truth, proba = plus.column_targets(test.labels), plus.predict_proba(test.features.numpy())
        plus_metrics = add_intervals(_single(evaluate(truth, proba, names)), truth, proba)
        result["medmnist_plus"] = {"k": 11, "metric": "euclidean", "vote": "majority", **plus_metrics}
    return result


def linear_probe(train, val, test, names, device, trust=None, fitted=None) -> dict:
    probe = LinearProbe(device=device).fit(train.features.numpy(), train.labels, val.features.numpy(), val.labels)
    test_true, test_proba = probe.column_targets(test.labels), probe.predict_proba(test.features.numpy())
    metrics = evaluate(test_true, test_proba, names)
    if fitted is not None:
        fitted["linear"] = probe
    trusted = {}
    if trust is not None:
        val_data = (val.ids, probe.column_targets(val.labels, split="val"), probe.predict_proba(val.features.numpy()))
        trusted = trust.assess("linear", val_data, (test.ids, test_true, test_proba), names)
    return {
        "C": probe.C_,
        "standardize": probe.standardize_,
        "selection_metric": probe.selection_metric_,
        "converged": probe.converged_,
        "val_scores": probe.val_scores_,
        "path": probe.path_,
        **add_intervals(_single(metrics), test_true, test_proba),
        "auroc_skipped": metrics["auroc_skipped"],
        **per_label(test.labels, metrics),
        **trusted,
    }


def run_probes(
    encoder: str = "efficientnet-lite0",
    dataset: str = "sample:pneumoniamnist",
    *,
    probes: Sequence[str] = ("knn", "linear"),
    shots: Sequence[int] = (1, 5, 10),
    seeds: int = 5,
    fractions: Sequence[float] = (0.1, 0.25, 0.5),
    device: str = "auto",
    dtype: torch.dtype = torch.float32,
    batch_size: int | None = None,
    fit: str = "resize",
    progress: bool = True,
    templates: str | None = None,
    image_size: int | None = None,
    revision: str | None = None,
    test_dataset: str | None = None,
    coverage: float = 0.9,
    conformal_scores: Sequence[str] = ("lac", "aps"),
    save_predictions: str | os.PathLike[str] | None = None,
    plots: str | os.PathLike[str] | None = None,
    corruptions: str | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    max_samples: Mapping[str, int] | None = None,
    loaded: torch.nn.Module | None = None,
) -> dict:
    """Embed train/val/test of ``dataset`` with ``encoder`` and run ``probes``; returns the results dict.

    ``loaded``: ``encoder`` already loaded as this function loads it (same device, dtype, ``image_size``, revision
    and text tower), so a benchmark loads and hashes a model once for many datasets; ``None`` loads it here.

    ``revision`` reads a registry entry's weights at another Hub revision (``load(..., revision=)``), recorded as
    ``results["revision"]``.

    ``test_dataset`` (external validation): fit on ``dataset``'s train and val, score ``test_dataset``'s test split
    over the labels both have (``encoderzoo.external``); results name both datasets and the labels scored.

    Every probe with probabilities also reports calibration (before and after temperature scaling on val) and
    split-conformal sets calibrated on val at ``coverage`` with ``conformal_scores`` (``encoderzoo.trust``).
    ``save_predictions``: write ``predictions.npz`` (every scored split: ids, labels, float32 probabilities) at
    this path. ``plots``: write reliability diagrams (and accuracy against corruption severity) as PNGs into
    this folder (``pip install 'encoderzoo[plots]'``); their paths are listed in ``results["plots"]``.

    ``robustness`` re-embeds the test split under the MedMNIST-C corruptions of the preset ``corruptions`` (read
    off ``medmnist:NAME`` specs) at ``severities`` and scores the kNN and linear probes fitted on clean data
    (``encoderzoo.robustness``). ``max_samples`` (``{"train": 3000, "test": 500}``) runs on a seeded,
    class-stratified subset of those splits (``encoderzoo.data.subset``), recorded in the results.

    ``image_size`` runs the encoder at that input size (``load(..., image_size=)``; ``None``: the spec's own);
    the size used is recorded as ``results["image_size"]``.

    ``zeroshot`` (image-text encoders) loads the text tower and scores the test split from prompts
    (``templates``: a JSON prompt file or ``|``-separated templates; ``None``: the shipped file for the dataset);
    run alone, it embeds only the test split: no training data is read.
    """
    check_probe_settings(probes, shots, seeds, batch_size)
    if "robustness" in probes and not {"knn", "linear"} & set(probes):
        raise ValueError("robustness scores the fitted knn and linear probes: add knn and/or linear to the probes")
    if templates is not None and "zeroshot" not in probes:
        raise ValueError("templates apply to the zeroshot probe only: add zeroshot to the probes")
    resolved = resolve_device(device)
    if plots is not None:
        from .plots import require_matplotlib

        require_matplotlib()  # before any work
    store = Predictions() if save_predictions or plots is not None else None
    trust = Trust(coverage, tuple(conformal_scores), predictions=store)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    text = True if "zeroshot" in probes else None
    if loaded is None:
        loaded = load(encoder, device=resolved, dtype=dtype, text=text, image_size=image_size, revision=revision)
    model = loaded
    data = open_dataset(dataset)
    if max_samples:
        from .data.subset import SubsetDataset

        data = SubsetDataset(data, max_samples)
    if "robustness" in probes:
        from .robustness import check_severities, preset_for

        preset = preset_for(data, corruptions)  # before any embedding
        check_severities(severities)
    needed = ("test",) if set(probes) == {"zeroshot"} else ("train", "val", "test")
    external = None
    if test_dataset is not None:
        from .external import open_aligned

        external = open_aligned(data, test_dataset)
        data, needed = external.train, tuple(s for s in needed if s != "test")
    missing = [s for s in needed if s not in data.splits]
    if missing:
        raise ValueError(f"{dataset} lacks split(s) {missing}: probes choose hyperparameters on val and score test")
    if "fewshot" in probes and data.task != "multi-label":
        check_shots(data.labels("train"), shots, data.label_names, dataset)
    timings["load"] = time.perf_counter() - start
    start = time.perf_counter()
    sets = embed_splits(model, data, needed, batch_size=batch_size, fit=fit, progress=progress)  # type: ignore[arg-type]
    if external is not None:
        tested = embed_splits(model, external.test, ["test"], batch_size=batch_size, fit=fit, progress=progress)  # type: ignore[arg-type]
        sets["test"] = tested["test"]
    timings["embed"] = time.perf_counter() - start
    train, val, test = sets.get("train"), sets.get("val"), sets["test"]
    names = data.label_names
    out: dict = {}
    fitted: dict = {}
    for name in [p for p in probes if p != "robustness"]:
        start = time.perf_counter()
        if name == "zeroshot":
            from .text.zeroshot import zeroshot_probe

            out["zeroshot"] = zeroshot_probe(model, test, names, data.task, templates, dataset, resolved, trust, val)
        elif name == "knn":
            out["knn"] = knn_probe(train, val, test, names, resolved, trust, fitted)
        elif name == "linear-medmnist+":
            from .probes.medmnist_plus import paper_linear_results

            xs = [s.features.numpy() for s in (train, val, test)]
            out[name] = paper_linear_results(
                xs[0], train.labels, xs[1], val.labels, xs[2], test.labels, names, device=resolved
            )
        elif name == "linear":
            out["linear"] = linear_probe(train, val, test, names, resolved, trust, fitted)
        elif name == "fewshot":
            if train.labels.ndim == 2:
                out["fewshot"] = {"skipped": "few-shot episodes need single-label tasks"}
            else:
                out["fewshot"] = few_shot(
                    train.features.numpy(),
                    train.labels,
                    test.features.numpy(),
                    test.labels,
                    shots=shots,
                    seeds=seeds,
                    X_val=val.features.numpy(),
                    y_val=val.labels,
                    label_names=names,
                    device=resolved,
                    trust={"coverage": coverage, "scores": tuple(conformal_scores), "n_bins": trust.n_bins},
                    record=lambda key, split, labels, proba: trust.record(
                        key, split, (val if split == "val" else test).ids, labels, proba
                    ),
                )
        else:
            out["curation"] = {
                "budgets": evaluate_curation(
                    train.features.numpy(),
                    train.labels,
                    test.features.numpy(),
                    test.labels,
                    lambda: LinearProbe(device=resolved),
                    fractions=fractions,
                    seeds=seeds,
                    X_val=val.features.numpy(),
                    y_val=val.labels,
                    label_names=names,
                    device=resolved,
                ),
                "near_duplicates": near_duplicates(train.features.numpy(), train.ids, device=resolved),
                **({"test_label_counts": label_counts(test.labels, names)} if test.labels.ndim == 2 else {}),
            }
        timings[name] = time.perf_counter() - start
    if "robustness" in probes:
        from .robustness import robustness_probe

        start = time.perf_counter()
        per_probe, out["robustness"] = robustness_probe(
            lambda d: embed_splits(model, d, ["test"], batch_size=batch_size, fit=fit, progress=progress)["test"],
            data,
            fitted,
            names,
            preset=preset,
            severities=severities,
            device=next(model.parameters()).device,  # corrupt where the encoder runs (its own GPU under torchrun)
            trust=trust,
        )
        for probe_name, entry in per_probe.items():
            out[probe_name]["robustness"] = entry
        timings["robustness"] = time.perf_counter() - start
    if save_predictions:
        store.save(save_predictions)  # type: ignore[union-attr]
    results = {
        "encoder": model.spec.name,
        "revision": model.spec.source.revision,
        "weights": model.spec.source.repo_id or model.spec.source.package,
        "pooling": model.spec.pooling,
        "image_size": model.spec.input_size,
        "native_image_size": model.spec.native_input_size or model.spec.input_size,
        "dataset": dataset,
        "dataset_info": data.describe(),
        **({} if external is None else {"test_dataset": test_dataset, "external_validation": external.info}),
        "task": data.task,
        "splits": {s: len(e) for s, e in sets.items()},
        "protocol": {
            "hyperparameters": "chosen on val only (kNN k, linear C); test scored once per fitted probe",
            "knn": {"metric": "cosine", "vote": "temperature", "temperature": 0.07, "k_grid": list(KNN_KS)},
            "linear": {
                "loss": "logistic, L2",
                "C_grid": [float(c) for c in LinearProbe().C],
                "standardize": "chosen on val with C (z-scored or raw features)",
                "selection_metric": "accuracy; AUROC if multi-label or imbalanced (smallest class < half the largest)",
            },
            "fewshot": {"shots": list(shots), "classifiers": ["knn", "linear", "prototype"]},
            "curation": {"fractions": list(fractions), "method": "k-means prototypes, distance quantiles, FPS"},
            "zeroshot": _zeroshot_protocol(),
            **({"linear-medmnist+": _medmnist_plus_protocol()} if "linear-medmnist+" in probes else {}),
            "preprocessing": test.metadata.get("preprocessing"),
            **trust.protocol(),
            "confidence_intervals": dict(BOOTSTRAP_PROTOCOL),
        },
        "seeds": list(range(seeds)),
        "probes": out,
        "versions": versions(),
        "device": device_name(resolved),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        **({"predictions": str(save_predictions)} if save_predictions else {}),
    }
    if plots is not None:
        from .plots import write_plots

        results["plots"] = [str(p) for p in write_plots(results, store, plots)]
    return results


def check_shots(labels, shots: Sequence[int], names: Sequence[str], dataset: str) -> None:
    """An n-shot episode needs n training images of every class: refuse larger n rather than report a smaller one."""
    counts = np.bincount(labels, minlength=len(names))
    present = np.flatnonzero(counts)
    smallest = int(present[np.argmin(counts[present])])
    too_many = [n for n in shots if n > counts[smallest]]
    if too_many:
        raise ValueError(
            f"{dataset}: the smallest class {names[smallest]!r} has {counts[smallest]} training images, so "
            f"{too_many}-shot episodes cannot be drawn; choose shots <= {counts[smallest]}"
        )


def _zeroshot_protocol() -> dict:
    from .text.zeroshot import PROTOCOL

    return dict(PROTOCOL)


def _medmnist_plus_protocol() -> dict:
    from .probes.medmnist_plus import PROTOCOL

    return dict(PROTOCOL)


def results_table(results: dict) -> str:
    """Probe x metric table (mean ± std over seeds) for stdout."""
    rows = [("probe", "accuracy", "balanced_acc", "auroc", "detail")]
    fmt = lambda m: f"{m['mean']:.3f}" + (f" ± {m['std']:.3f}" if len(m["values"]) > 1 else "")  # noqa: E731
    probes = results["probes"]
    if "knn" in probes:
        rows.append(("knn", *(fmt(probes["knn"][m]) for m in METRICS), f"k={probes['knn']['k']} (val)"))
        if "medmnist_plus" in probes["knn"]:
            p = probes["knn"]["medmnist_plus"]
            rows.append(("knn medmnist+", *(fmt(p[m]) for m in METRICS), "k=11 euclidean majority"))
    if "adapted" in probes:
        training = results["training"]
        detail = (
            f"{results['protocol']['method']}, best epoch {training['best_epoch']}/{training['epochs_run']}, "
            f"{training['trainable_params']:,} trainable ({training['trainable_fraction']:.2%})"
        )
        rows.append(("adapted", *(fmt(probes["adapted"][m]) for m in METRICS), detail))
    if "zeroshot" in probes:
        p = probes["zeroshot"]
        rows.append(("zero-shot", *(fmt(p[m]) for m in METRICS), f"{p['prompts']['mode']}, no training data"))
    if "linear" in probes:
        lin = probes["linear"]
        features = {True: "z-scored, ", False: "raw, "}.get(lin.get("standardize"), "")
        detail = f"C={lin['C']:.3g}, {features}{lin.get('selection_metric', 'accuracy')} (val)"
        rows.append(("linear", *(fmt(lin[m]) for m in METRICS), detail))
    if "linear-medmnist+" in probes:
        p = probes["linear-medmnist+"]
        detail = f"AdamW head (MedMNIST+ paper), {len(p['seeds'])} seeds, epochs {p['epochs_run']}"
        rows.append(("linear medmnist+", *(fmt(p[m]) for m in METRICS), detail))
    for clf, by_shot in probes.get("fewshot", {}).get("results", {}).items():
        for n, metrics in by_shot.items():
            rows.append((f"{n}-shot {clf}", *(fmt(metrics[m]) for m in METRICS), f"{len(results['seeds'])} seeds"))
    for fraction, budget in probes.get("curation", {}).get("budgets", {}).items():
        for kind in ("curated", "random"):
            rows.append(
                (f"{float(fraction):.0%} {kind}", *(fmt(budget[kind][m]) for m in METRICS), f"n={budget['size']}")
            )
    if "curation" in probes:
        dup = probes["curation"]["near_duplicates"]
        rows.append(("near-duplicates", "", "", "", f"{dup['pairs']} pairs at cosine >= {dup['threshold']}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    external = f", scored on {results['test_dataset']} test" if "test_dataset" in results else ""
    header = (
        f"{results['encoder']} on {results['dataset']}{external} ({results['task']}; "
        + ", ".join(f"{s} {n}" for s, n in results["splits"].items())
        + ")"
    )
    return "\n".join([header, *lines])
