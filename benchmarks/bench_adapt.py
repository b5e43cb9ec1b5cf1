"""Adaptation methods on real data, same encoder, same training subset, same run: accuracy, balanced accuracy,
AUROC, trainable parameters, seconds per epoch, peak memory.

efficientnet-lite0 (real ImageNet weights) on
- pbcblood_28 (8 blood-cell classes, ../shared/data/medmnist-format) at 112 px, the data's reference protocol;
- Kermany chest X-rays (NORMAL / PNEUMONIA, ../shared/data/cxr-pneumonia-kermany) at 224 px (7x7 token map).
Methods: ``head`` (frozen encoder, linear head), ``lora`` (peft LoRA on every 1x1 convolution), ``full``
(every weight), ``ace-hgnn`` (hypergraph context on the frozen token map + head), and the reference a user would
otherwise run: ``LinearProbe`` (L-BFGS, C chosen on val) on the frozen embeddings of the same training subset.
Training uses a class-stratified subset (``--max-train``) to fit CPU time; val and test are always whole.
Each run is a subprocess, so its peak RSS is its own.

    python benchmarks/bench_adapt.py --out benchmarks/results/adapt_cpu.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import write_results

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {
    "pbcblood_28": {"spec": f"npz:{SHARED / 'medmnist-format' / 'pbcblood_28.npz'}", "image_size": 112},
    "kermany": {"spec": f"folder:{SHARED / 'cxr-pneumonia-kermany'}", "image_size": 224},
}
METHODS = {  # learning rates: the usual ones per method (linear head high, full fine-tuning low)
    "head": {"lr": 3e-3, "settings": {}},
    "lora": {"lr": 1e-3, "settings": {"r": 4, "alpha": 8.0}},  # r=4: 2.7% of efficientnet-lite0 (r=8: 5.4%)
    "full": {"lr": 3e-4, "settings": {}},
    "ace-hgnn": {"lr": 1e-3, "settings": {"top_k": 5}},
}


def run_one(dataset: str, method: str, args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    if method == "linear-probe":
        return linear_probe(dataset, args)
    from encoderzoo.adapters import TrainConfig, adapt

    cfg = METHODS[method]
    config = TrainConfig(epochs=args.epochs, lr=cfg["lr"], batch_size=args.batch_size, patience=args.patience)
    with tempfile.TemporaryDirectory() as out:
        results = adapt(
            "efficientnet-lite0",
            DATASETS[dataset]["spec"],
            method,
            Path(out) / "adapted",
            method_config=cfg["settings"],
            config=config,
            device="cpu",
            max_train=args.max_train,
            image_size=DATASETS[dataset]["image_size"],
            progress=False,
        )
    training = results["training"]
    return {
        **{m: results["probes"]["adapted"][m]["mean"] for m in ("accuracy", "balanced_accuracy", "auroc")},
        "trainable_params": training["trainable_params"],
        "trainable_fraction": training["trainable_fraction"],
        "epochs_run": training["epochs_run"],
        "best_epoch": training["best_epoch"],
        "seconds_per_epoch": training["seconds_per_epoch"],
        "train_seconds": results["timings_s"]["train"],
        "frozen_features_cached": training["frozen_features_cached"],
        "lr": cfg["lr"],
        "settings": cfg["settings"],
        "splits": results["splits"],
    }


def linear_probe(dataset: str, args: argparse.Namespace) -> dict:
    """The frozen embeddings of the same subset, LinearProbe's C grid chosen on val, test scored once."""

    import numpy as np

    import encoderzoo
    from encoderzoo.adapters import AdaptedEncoder
    from encoderzoo.adapters.training import FeatureReader, SplitReader, stratified_subset
    from encoderzoo.data import open_dataset
    from encoderzoo.probes import LinearProbe, evaluate

    data = open_dataset(DATASETS[dataset]["spec"])
    base = encoderzoo.load("efficientnet-lite0", image_size=DATASETS[dataset]["image_size"])
    frozen = AdaptedEncoder(base, "head", {}, 1)
    rows = stratified_subset(data.labels("train"), args.max_train, 0)
    start = time.perf_counter()
    feats = {}
    for split, idx in (("train", rows), ("val", None), ("test", None)):
        idx = np.arange(data.num_samples(split)) if idx is None else idx
        reader = FeatureReader(SplitReader(data, split, frozen, idx), 64)
        feats[split] = (reader.features[0].numpy(), reader.labels)
    embed_seconds = time.perf_counter() - start
    start = time.perf_counter()
    probe = LinearProbe(device="cpu").fit(*feats["train"], *feats["val"])
    fit_seconds = time.perf_counter() - start
    metrics = evaluate(probe.column_targets(feats["test"][1]), probe.predict_proba(feats["test"][0]), data.label_names)
    return {
        **{m: metrics[m] for m in ("accuracy", "balanced_accuracy", "auroc")},
        "trainable_params": int(np.asarray(probe.coef_).size + np.asarray(probe.intercept_).size),
        "C": probe.C_,
        "embed_seconds": embed_seconds,
        "fit_seconds": fit_seconds,
        "splits": {"train": len(rows), "val": len(feats["val"][1]), "test": len(feats["test"][1])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default="linear-probe," + ",".join(METHODS))
    parser.add_argument("--max-train", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--one", nargs=2, metavar=("DATASET", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        record = run_one(*args.one, args)
        record["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(record))
        return
    if not SHARED.is_dir():
        sys.exit(f"real data not found at {SHARED}")
    rows = []
    for dataset in args.datasets.split(","):
        for method in args.methods.split(","):
            cmd = [
                sys.executable,
                __file__,
                "--one",
                dataset,
                method,
                "--max-train",
                str(args.max_train),
                "--epochs",
                str(args.epochs),
                "--patience",
                str(args.patience),
                "--batch-size",
                str(args.batch_size),
                "--threads",
                str(args.threads),
            ]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{dataset} {method} failed:\n{done.stderr[-3000:]}")
            record = {
                "dataset": dataset,
                "method": method,
                **json.loads(done.stdout.strip().splitlines()[-1]),
                "wall_seconds": time.perf_counter() - start,
            }
            rows.append(record)
            print(json.dumps(record), flush=True)
            write_results(args.out, {"benchmark": "adapt", "partial": True, "rows": rows})
    write_results(
        args.out,
        {
            "benchmark": "adapt",
            "encoder": "efficientnet-lite0",
            "device": "cpu",
            "max_train": args.max_train,
            "epochs": args.epochs,
            "patience": args.patience,
            "batch_size": args.batch_size,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
