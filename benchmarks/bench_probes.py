"""kNN and linear probes against scikit-learn on the same embeddings, same run: time ratio and accuracy gap.

- kNN: ``KNNProbe.medmnist_plus()`` vs ``KNeighborsClassifier(n_neighbors=11)`` (identical predictions expected).
- Linear: ``LinearProbe`` over the whole C grid (trained jointly, chosen on val) vs a sklearn sweep of
  ``StandardScaler + LogisticRegression(C)`` over the same grid, chosen on the same val split.

Data: synthetic Gaussian classes (``--n`` x 768, 10 classes) and real embeddings (efficientnet-lite0 on
../shared/data/medmnist-format/pbcblood_28.npz, computed through the engine's cache).

    python benchmarks/bench_probes.py --out benchmarks/results/probes_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _results import write_results
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from encoderzoo.probes import DEFAULT_C_GRID, KNNProbe, LinearProbe

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "medmnist-format" / "pbcblood_28.npz"


def synthetic(n: int, d: int = 768, k: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)).astype(np.float32) * 0.06  # overlapping classes: accuracy well below 1

    def draw(m):
        y = rng.integers(0, k, m)
        return (centers[y] + rng.normal(size=(m, d)).astype(np.float32)), y

    return draw(n), draw(max(1000, n // 10)), draw(max(2000, n // 10))


def real(train_limit: int | None):
    import encoderzoo
    from encoderzoo.engine import embed_dataset

    enc = encoderzoo.load("efficientnet-lite0")
    sets = [embed_dataset(enc, f"npz:{SHARED}", s, progress=False) for s in ("train", "val", "test")]
    out = [(s.features.numpy(), s.labels) for s in sets]
    if train_limit:
        out[0] = (out[0][0][:train_limit], out[0][1][:train_limit])
    return out


def timed(fn, repeats: int = 1):
    """Result and best wall time of ``repeats`` calls (kNN is cheap enough to repeat; a warm-up precedes)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return value, best


def bench(name: str, data, device: str, grid) -> dict:
    (X, y), (Xv, yv), (Xt, yt) = data
    row: dict = {"data": name, "train": len(X), "val": len(Xv), "test": len(Xt), "dim": X.shape[1]}
    KNNProbe.medmnist_plus(device=device).fit(X[:100], y[:100]).predict(Xt[:10])  # warm-up (threads, allocator)
    ours, t_ours = timed(lambda: KNNProbe.medmnist_plus(device=device).fit(X, y).predict(Xt), repeats=3)
    theirs, t_sk = timed(lambda: KNeighborsClassifier(n_neighbors=11).fit(X, y).predict(Xt), repeats=3)
    row["knn"] = {
        "ours_s": t_ours,
        "sklearn_s": t_sk,
        "speedup": t_sk / t_ours,
        "ours_acc": float((ours == yt).mean()),
        "sklearn_acc": float((theirs == yt).mean()),
        "same_predictions": float((ours == theirs).mean()),
    }
    probe, t_ours = timed(lambda: LinearProbe(C=grid, device=device).fit(X, y, Xv, yv))

    def sweep():
        scaler = StandardScaler().fit(X)
        fits = [LogisticRegression(C=c, max_iter=500).fit(scaler.transform(X), y) for c in grid]
        scores = [m.score(scaler.transform(Xv), yv) for m in fits]
        best = int(np.argmax(scores))
        return fits[best], scaler, grid[best]

    (model, scaler, c_sk), t_sk = timed(sweep)
    row["linear"] = {
        "grid": len(grid),
        "ours_s": t_ours,
        "sklearn_s": t_sk,
        "speedup": t_sk / t_ours,
        "ours_C": probe.C_,
        "sklearn_C": float(c_sk),
        "ours_acc": float(probe.score(Xt, yt)),
        "sklearn_acc": float(model.score(scaler.transform(Xt), yt)),
    }
    row["linear"]["acc_diff_points"] = 100 * (row["linear"]["ours_acc"] - row["linear"]["sklearn_acc"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=100_000, help="synthetic training size")
    parser.add_argument("--grid", type=int, default=len(DEFAULT_C_GRID), help="C values (log-spaced 1e-4..1e2)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    grid = tuple(float(c) for c in np.logspace(-4, 2, args.grid))
    rows = []
    if SHARED.is_file():
        rows.append(bench("pbcblood_28 efficientnet-lite0 embeddings", real(None), args.device, grid))
        print(json.dumps(rows[-1], indent=2), file=sys.stderr)
    rows.append(bench(f"synthetic {args.n} x 768, 10 classes", synthetic(args.n), args.device, grid))
    print(json.dumps(rows, indent=2))
    write_results(args.out, {"results": rows}, device=args.device)


if __name__ == "__main__":
    main()
