"""``run_probes``: embed (through the cache), probe, and assemble ``results.json`` — the ``encoderzoo probe`` job.

Protocol (recorded in the results):
- every hyperparameter (k for kNN, C for the linear probe, in few-shot too) is chosen on the validation split;
- the test split is scored once per fitted probe;
- every random choice (few-shot episodes, random baselines for curation) is seeded and the seeds are listed.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from importlib import metadata

import torch

from . import __version__
from .data import open_dataset
from .embeddings import EmbeddingSet
from .engine import embed_splits
from .loading import load
from .probes import KNNProbe, LinearProbe, evaluate, evaluate_curation, few_shot, near_duplicates, summarize
from .probes._base import selection_metric_for
from .probes.bootstrap import PROTOCOL as BOOTSTRAP_PROTOCOL
from .probes.bootstrap import add_intervals

PROBES = ("knn", "linear", "fewshot", "curation", "zeroshot", "linear-medmnist+")
KNN_KS = (10, 20, 50, 100, 200)
METRICS = ("accuracy", "balanced_accuracy", "auroc")


def _single(metrics: dict) -> dict:
    """A deterministic probe reported like the seeded ones: {mean, std, values} with one value."""
    return {m: summarize([metrics[m]]) for m in METRICS}


def knn_probe(train: EmbeddingSet, val: EmbeddingSet, test: EmbeddingSet, names, device) -> dict:
    """DINOv2 kNN (cosine, T=0.07) with k chosen on val from ``KNN_KS``; plus the MedMNIST+ preset."""
    ks = [k for k in KNN_KS if k <= len(train)] or [len(train)]
    probe = KNNProbe(k=ks[0], device=device).fit(train.features.numpy(), train.labels)
    metric = selection_metric_for(probe.column_targets(train.labels, split="train"), probe.multilabel_)
    val_true = probe.column_targets(val.labels, split="val")
    val_scores = {
        k: evaluate(val_true, p, names)[metric] for k, p in probe.predict_proba_many(val.features.numpy(), ks).items()
    }
    best_k = max(ks, key=lambda k: (val_scores[k], -k))
    probe.set_params(k=best_k)
    truth, proba = probe.column_targets(test.labels), probe.predict_proba(test.features.numpy())
    test_metrics = evaluate(truth, proba, names)
    result = {
        "k": best_k,
        "selection_metric": metric,
        "val_scores": val_scores,
        **add_intervals(_single(test_metrics), truth, proba),
        "auroc_skipped": test_metrics["auroc_skipped"],
    }
    if train.labels.ndim == 1 and len(train) >= 11:
        plus = KNNProbe.medmnist_plus(device=device).fit(train.features.numpy(), train.labels)
        truth, proba = plus.column_targets(test.labels), plus.predict_proba(test.features.numpy())
        plus_metrics = add_intervals(_single(evaluate(truth, proba, names)), truth, proba)
        result["medmnist_plus"] = {"k": 11, "metric": "euclidean", "vote": "majority", **plus_metrics}
    return result


def linear_probe(train, val, test, names, device) -> dict:
    probe = LinearProbe(device=device).fit(train.features.numpy(), train.labels, val.features.numpy(), val.labels)
    truth, proba = probe.column_targets(test.labels), probe.predict_proba(test.features.numpy())
    metrics = evaluate(truth, proba, names)
    return {
        "C": probe.C_,
        "standardize": probe.standardize_,
        "selection_metric": probe.selection_metric_,
        "converged": probe.converged_,
        "val_scores": probe.val_scores_,
        "path": probe.path_,
        **add_intervals(_single(metrics), truth, proba),
        "auroc_skipped": metrics["auroc_skipped"],
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
    loaded: torch.nn.Module | None = None,
) -> dict:
    """Embed train/val/test of ``dataset`` with ``encoder`` and run ``probes``; returns the results dict.

    ``loaded``: ``encoder`` already loaded as this function loads it (same device, dtype, ``image_size`` and text
    tower), so a benchmark loads and hashes a model once for many datasets; ``None`` loads it here.

    ``image_size`` runs the encoder at that input size (``load(..., image_size=)``; ``None``: the spec's own);
    the size used is recorded as ``results["image_size"]``.

    ``zeroshot`` (image-text encoders) loads the text tower and scores the test split from prompts
    (``templates``: a JSON prompt file or ``|``-separated templates; ``None``: the shipped file for the dataset);
    run alone, it embeds only the test split: no training data is read.
    """
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; choose from {PROBES}")
    if templates is not None and "zeroshot" not in probes:
        raise ValueError("templates apply to the zeroshot probe only: add zeroshot to the probes")
    resolved = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    timings: dict[str, float] = {}
    start = time.perf_counter()
    text = True if "zeroshot" in probes else None
    if loaded is None:
        loaded = load(encoder, device=resolved, dtype=dtype, text=text, image_size=image_size)
    model = loaded
    data = open_dataset(dataset)
    needed = ("test",) if set(probes) == {"zeroshot"} else ("train", "val", "test")
    missing = [s for s in needed if s not in data.splits]
    if missing:
        raise ValueError(f"{dataset} lacks split(s) {missing}: probes choose hyperparameters on val and score test")
    timings["load"] = time.perf_counter() - start
    start = time.perf_counter()
    sets = embed_splits(model, data, needed, batch_size=batch_size, fit=fit, progress=progress)  # type: ignore[arg-type]
    timings["embed"] = time.perf_counter() - start
    train, val, test = sets.get("train"), sets.get("val"), sets["test"]
    names = data.label_names
    out: dict = {}
    for name in probes:
        start = time.perf_counter()
        if name == "zeroshot":
            from .text.zeroshot import zeroshot_probe

            out["zeroshot"] = zeroshot_probe(model, test, names, data.task, templates, dataset, resolved)
        elif name == "knn":
            out["knn"] = knn_probe(train, val, test, names, resolved)
        elif name == "linear-medmnist+":
            from .probes.medmnist_plus import paper_linear_results

            xs = [s.features.numpy() for s in (train, val, test)]
            out[name] = paper_linear_results(
                xs[0], train.labels, xs[1], val.labels, xs[2], test.labels, names, device=resolved
            )
        elif name == "linear":
            out["linear"] = linear_probe(train, val, test, names, resolved)
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
                    device=resolved,
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
            }
        timings[name] = time.perf_counter() - start
    return {
        "encoder": model.spec.name,
        "revision": model.spec.source.revision,
        "weights": model.spec.source.repo_id or model.spec.source.package,
        "pooling": model.spec.pooling,
        "image_size": model.spec.input_size,
        "native_image_size": model.spec.native_input_size or model.spec.input_size,
        "dataset": dataset,
        "dataset_info": data.describe(),
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
            "confidence_intervals": dict(BOOTSTRAP_PROTOCOL),
        },
        "seeds": list(range(seeds)),
        "probes": out,
        "versions": versions(),
        "device": device_name(resolved),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }


def _zeroshot_protocol() -> dict:
    from .text.zeroshot import PROTOCOL

    return dict(PROTOCOL)


def _medmnist_plus_protocol() -> dict:
    from .probes.medmnist_plus import PROTOCOL

    return dict(PROTOCOL)


def versions() -> dict[str, str]:
    """Versions of the libraries that decide a result, for results.json."""
    return {p: _version(p) for p in ("encoderzoo", "torch", "timm", "peft", "scikit-learn", "numpy")}


def device_name(device: str) -> str:
    """The GPU's name for ``cuda*`` devices, else the CPU's."""
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu"


def _version(package: str) -> str:
    if package == "encoderzoo":
        return __version__
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


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
    header = (
        f"{results['encoder']} on {results['dataset']} ({results['task']}; "
        + ", ".join(f"{s} {n}" for s, n in results["splits"].items())
        + ")"
    )
    return "\n".join([header, *lines])
