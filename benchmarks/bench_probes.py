"""kNN and linear probes against scikit-learn on the same embeddings, same run: time ratio and agreement.

- kNN: ``KNNProbe.medmnist_plus()`` vs ``KNeighborsClassifier(n_neighbors=11)`` (fit + predict the test split,
  best of at least 3 calls and 2 s; identical predictions expected, barring exact distance ties at the 11th place),
  and the DINOv2-style default ``KNNProbe(k=20)`` (cosine, exp(similarity / 0.07) vote) vs
  ``KNeighborsClassifier(n_neighbors=20, metric="cosine", weights=exp((1 - distance) / 0.07))``.
- Linear: ``LinearProbe()`` as ``encoderzoo probe`` runs it (13-value C grid x {raw, z-scored} features, chosen on
  val) vs a sklearn sweep over the same 26 fits (``LogisticRegression(C, max_iter=500)`` on the raw features and on
  ``StandardScaler`` features, sklearn's default ``tol=1e-4`` like ours), chosen on val with the same metric.
  Reported: both times, the largest difference between the two sides' validation scores over the 26 fits, the
  choices, test accuracy (and AUROC), whether every fit converged.

Data: synthetic float32 Gaussian classes (10 overlapping classes; every N x d of ``--sizes`` and ``--dims``) and real
embeddings (efficientnet-lite0 on ../shared/data: pbcblood_28 at 112 px, breastmnist at 224 px), through the
engine's cache.

    python benchmarks/bench_probes.py --out benchmarks/results/probes_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _results import write_results
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from encoderzoo.probes import DEFAULT_C_GRID, KNNProbe, LinearProbe, evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "medmnist-format"
REAL = (("pbcblood_28.npz", 112), ("breastmnist_resaved.npz", 224))


def synthetic(n: int, d: int, k: int = 10, seed: int = 0):
    """Overlapping Gaussian classes in float32, the dtype of the engine's embeddings (a numpy float64 scalar in
    the scale would silently promote them to float64, which changes what sklearn computes)."""
    rng = np.random.default_rng(seed)
    centers = (rng.normal(size=(k, d)) * (0.06 * np.sqrt(768 / d))).astype(np.float32)  # like-for-like overlap

    def draw(m):
        y = rng.integers(0, k, m)
        return centers[y] + rng.normal(size=(m, d)).astype(np.float32), y

    return draw(n), draw(max(250, n // 4)), draw(max(500, n // 4))


def real(file: str, size: int):
    import encoderzoo
    from encoderzoo.engine import embed_dataset

    enc = encoderzoo.load("efficientnet-lite0", image_size=size)
    sets = [
        embed_dataset(enc, f"npz:{SHARED / file}", s, batch_size=64, progress=False) for s in ("train", "val", "test")
    ]
    return [(s.features.numpy(), s.labels) for s in sets]


def timed(fn, repeats: int = 1, min_seconds: float = 0.0):
    """Result and best wall time of at least ``repeats`` calls, repeated until ``min_seconds`` have been spent
    (so millisecond-scale timings are the best of many)."""
    best, spent, calls = float("inf"), 0.0, 0
    while calls < repeats or spent < min_seconds:
        start = time.perf_counter()
        value = fn()
        elapsed = time.perf_counter() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return value, best


def temperature_weights(cosine_distances: np.ndarray) -> np.ndarray:
    """DINOv2's vote, exp(similarity / 0.07), as sklearn ``weights`` (it passes cosine distances, 1 - similarity)."""
    return np.exp((1.0 - cosine_distances) / 0.07)


def _knn_record(ours, theirs, t_ours: float, t_sk: float, yt) -> dict:
    return {
        "ours_s": t_ours,
        "sklearn_s": t_sk,
        "speedup": t_sk / t_ours,
        "ours_acc": float((ours == yt).mean()),
        "sklearn_acc": float((theirs == yt).mean()),
        "same_predictions": float((ours == theirs).mean()),
    }


def sklearn_sweep(X, y, Xv, yv, metric: str):
    """The same 26 fits as ``LinearProbe()``: sklearn on raw and on StandardScaler features, per C."""
    records, fits, unconverged = [], [], 0
    for standardize in (True, False):
        scaler = StandardScaler().fit(X) if standardize else None
        Xs, Xvs = (scaler.transform(X), scaler.transform(Xv)) if standardize else (X, Xv)
        for C in DEFAULT_C_GRID:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model = LogisticRegression(C=C, max_iter=500).fit(Xs, y)
            unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
            score = evaluate(np.searchsorted(model.classes_, yv), model.predict_proba(Xvs))[metric]
            records.append({"standardize": standardize, "C": C, "score": score})
            fits.append((model, scaler))
    best = int(np.argmax([r["score"] for r in records]))
    return records, fits[best], unconverged


def bench(name: str, data, device: str) -> dict:
    (X, y), (Xv, yv), (Xt, yt) = data
    y, yv, yt = (np.asarray(a).reshape(-1) for a in (y, yv, yt))
    row: dict = {"data": name, "train": len(X), "val": len(Xv), "test": len(Xt), "dim": X.shape[1]}
    row["classes"] = int(len(np.unique(y)))
    KNNProbe.medmnist_plus(device=device).fit(X[:100], y[:100]).predict(Xt[:10])  # warm-up (threads, allocator)
    ours, t_ours = timed(lambda: KNNProbe.medmnist_plus(device=device).fit(X, y).predict(Xt), 3, min_seconds=2.0)
    theirs, t_sk = timed(lambda: KNeighborsClassifier(n_neighbors=11).fit(X, y).predict(Xt), 3, min_seconds=2.0)
    row["knn"] = _knn_record(ours, theirs, t_ours, t_sk, yt)
    ours, t_ours = timed(lambda: KNNProbe(k=20, device=device).fit(X, y).predict(Xt), 3, min_seconds=2.0)
    peer = KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute", weights=temperature_weights)
    theirs, t_sk = timed(lambda: peer.fit(X, y).predict(Xt), 3, min_seconds=2.0)
    row["knn_cosine"] = _knn_record(ours, theirs, t_ours, t_sk, yt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # counted from path_ below
        probe, t_ours = timed(lambda: LinearProbe(device=device).fit(X, y, Xv, yv))
    metric = probe.selection_metric_
    (records, (model, scaler), sk_unconverged), t_sk = timed(lambda: sklearn_sweep(X, y, Xv, yv, metric))
    ours_test = evaluate(probe.column_targets(yt), probe.predict_proba(Xt))
    sk_test = evaluate(np.searchsorted(model.classes_, yt), model.predict_proba(scaler.transform(Xt) if scaler else Xt))
    row["linear"] = {
        "fits": len(probe.path_),
        "selection_metric": metric,
        "ours_s": t_ours,
        "sklearn_s": t_sk,
        "speedup": t_sk / t_ours,
        "ours_choice": {"C": probe.C_, "standardize": probe.standardize_},
        "sklearn_choice": {"C": float(model.C), "standardize": scaler is not None},
        "val_score_max_abs_diff": max(abs(a["score"] - b["score"]) for a, b in zip(probe.path_, records, strict=True)),
        "ours_unconverged": sum(not r["converged"] for r in probe.path_),
        "ours_iterations": sum(r["n_iter"] for r in probe.path_),
        "sklearn_unconverged": int(sk_unconverged),
        "ours_acc": ours_test["accuracy"],
        "sklearn_acc": sk_test["accuracy"],
        "ours_auroc": ours_test["auroc"],
        "sklearn_auroc": sk_test["auroc"],
    }
    row["linear"]["acc_diff_points"] = 100 * (row["linear"]["ours_acc"] - row["linear"]["sklearn_acc"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="500,2000,20000", help="synthetic training sizes")
    parser.add_argument("--dims", default="384,768,1536", help="synthetic feature dimensions")
    parser.add_argument("--real", default=",".join(f for f, _ in REAL), help="real embedding files ('' for none)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for file, size in REAL:
        if file in args.real.split(",") and (SHARED / file).is_file():
            rows.append(bench(f"{file[:-4]} efficientnet-lite0 @{size}px", real(file, size), args.device))
            print(json.dumps(rows[-1]), file=sys.stderr)
    for n in (int(s) for s in args.sizes.split(",")):
        for d in (int(s) for s in args.dims.split(",")):
            rows.append(bench(f"synthetic {n} x {d}, 10 classes", synthetic(n, d), args.device))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps(rows, indent=2))
    write_results(args.out, {"results": rows}, device=args.device, torch_threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
