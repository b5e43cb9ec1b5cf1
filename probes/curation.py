"""Prototype-based data curation (after CheXficient) and near-duplicate search, on embeddings.

``curate(X, fraction)``:
1. k-means (k-means++ init, cosine geometry) gives prototypes; each sample's distance to its prototype is
   ``1 - cosine similarity``.
2. Per cluster, distance quantiles split the members: beyond ``outlier_quantile`` = outliers (dropped),
   between ``dense_quantile`` and ``outlier_quantile`` = support (kept first, farthest first), below
   ``dense_quantile`` = the dense centre, redundant near the prototype (capped).
3. Each cluster gets its share of the budget; support fills it first and the rest comes from the dense centre
   by farthest-point sampling, so the kept centre points are spread out rather than piled on the prototype.

``evaluate_curation`` trains a probe on the curated subset and on random subsets of the same size (several
seeds) for each budget and reports both on the test split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._base import as_features, as_labels, pick_device
from .bootstrap import add_intervals
from .fewshot import summarize
from .linear import LinearProbe
from .metrics import METRICS, evaluate


def kmeans(x: torch.Tensor, k: int, *, iters: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical k-means on L2-normalized rows; returns (centroids, assignment).

    Seeded by greedy k-means++ (as scikit-learn): each new centre is the best of ``2 + log(k)`` candidates
    sampled proportionally to the squared distance, the one that lowers the total squared distance most, so a
    large cluster rarely takes two seeds while a small one gets none.
    """
    n = len(x)
    k = min(k, n)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    centroids = x[torch.randint(n, (1,), generator=gen)]
    closest = 1 - (x @ centroids.T).squeeze(1)
    tries = 2 + int(np.log(k))
    for _ in range(1, k):
        weights = closest.clamp_min(0).square().cpu()
        if not weights.sum() > 0:  # every point coincides with a centroid
            weights = torch.ones(n)
        picks = torch.multinomial(weights, tries, replacement=True, generator=gen).to(x.device)
        candidate = torch.minimum(closest[None], 1 - x[picks] @ x.T)  # (tries, n)
        best = int(candidate.clamp_min(0).square().sum(1).argmin())
        centroids = torch.cat([centroids, x[picks[best : best + 1]]])
        closest = candidate[best]
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    for _ in range(iters):
        new_assign = (x @ centroids.T).argmax(1)
        if _ > 0 and torch.equal(new_assign, assign):
            break
        assign = new_assign
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1)
        centroids = torch.where(counts > 0, F.normalize(sums, dim=1), centroids)
    return centroids, assign


def farthest_point_sample(x: torch.Tensor, count: int, seeds: torch.Tensor) -> torch.Tensor:
    """``count`` indices of ``x`` chosen greedily farthest (cosine) from ``seeds`` rows and each other."""
    if count <= 0 or len(x) == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device)
    nearest = (1 - (x @ seeds.T).max(1).values) if len(seeds) else torch.full((len(x),), float("inf"), device=x.device)
    chosen = []
    for _ in range(min(count, len(x))):
        i = int(nearest.argmax())
        chosen.append(i)
        nearest = torch.minimum(nearest, 1 - x @ x[i])
        nearest[i] = -1.0
    return torch.tensor(chosen, dtype=torch.long, device=x.device)


def curate(
    X,
    fraction: float,
    *,
    n_clusters: int | None = None,
    outlier_quantile: float = 0.98,
    dense_quantile: float = 0.5,
    seed: int = 0,
    device: str | None = "auto",
) -> np.ndarray:
    """Indices (sorted) of a curated subset of ``round(fraction * N)`` rows of ``X``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not 0 < dense_quantile < outlier_quantile <= 1:
        raise ValueError("need 0 < dense_quantile < outlier_quantile <= 1")
    x = F.normalize(torch.from_numpy(as_features(X)).to(pick_device(device)), dim=1)
    n = len(x)
    budget = max(1, round(fraction * n))
    k = n_clusters or max(2, min(100, n // 50))
    centroids, assign = kmeans(x, k, seed=seed)
    distance = 1 - (x * centroids[assign]).sum(1)
    sizes = torch.bincount(assign, minlength=len(centroids)).cpu().numpy()
    shares = _allocate(budget, sizes)
    selected = []
    for c in np.flatnonzero(sizes):
        members = torch.nonzero(assign == c).flatten()
        d = distance[members]
        q_out, q_dense = torch.quantile(d, outlier_quantile), torch.quantile(d, dense_quantile)
        inliers = members[d <= q_out] if outlier_quantile < 1 else members
        d_in = distance[inliers]
        support = inliers[d_in > q_dense][torch.argsort(d_in[d_in > q_dense], descending=True)]
        dense = inliers[d_in <= q_dense]
        take = support[: shares[c]]
        extra = farthest_point_sample(x[dense], int(shares[c]) - len(take), x[take])
        selected.append(torch.cat([take, dense[extra]]))
    chosen = torch.cat(selected).unique().cpu().numpy()
    return np.sort(chosen)


def _allocate(budget: int, sizes: np.ndarray) -> np.ndarray:
    """Split ``budget`` over clusters in proportion to their sizes (largest remainders get the rounding)."""
    exact = budget * sizes / sizes.sum()
    shares = np.floor(exact).astype(int)
    for i in np.argsort(exact - shares)[::-1][: budget - shares.sum()]:
        shares[i] += 1
    return np.minimum(shares, sizes)


def near_duplicates(
    X, ids: Sequence[str], *, threshold: float = 0.995, limit: int = 50, device: str | None = "auto", block: int = 4096
) -> dict:
    """Pairs with cosine similarity >= ``threshold``: their count and the first ``limit`` pairs by id."""
    x = F.normalize(torch.from_numpy(as_features(X)).to(pick_device(device)), dim=1)
    pairs, count = [], 0
    for lo in range(0, len(x), block):
        sims = x[lo : lo + block] @ x.T
        rows = torch.arange(lo, min(lo + block, len(x)), device=x.device)
        sims[torch.arange(len(rows)), rows] = -1.0
        sims = torch.triu(sims, diagonal=lo + 1)  # each pair once (j > i)
        hits = torch.nonzero(sims >= threshold)
        count += len(hits)
        for i, j in hits[: max(0, limit - len(pairs))].tolist():
            pairs.append({"a": ids[lo + i], "b": ids[j], "cosine": float(sims[i, j])})
    return {"threshold": threshold, "pairs": count, "examples": pairs}


def evaluate_curation(
    X_train,
    y_train,
    X_test,
    y_test,
    make_probe: Callable,
    *,
    fractions=(0.1, 0.25, 0.5),
    seeds: int = 5,
    X_val=None,
    y_val=None,
    label_names=None,
    device: str | None = "auto",
) -> dict:
    """For each budget: test metrics of a probe trained on the curated subset vs random subsets (same size)."""
    X_train = as_features(X_train)
    y_train = as_labels(y_train, len(X_train))
    out = {}
    for fraction in fractions:
        curated = curate(X_train, fraction, device=device)
        runs = {
            "curated": [
                _fit_score(make_probe, X_train[curated], y_train[curated], X_test, y_test, X_val, y_val, label_names)
            ]
        }
        runs["random"] = []
        for seed in range(seeds):
            pick = np.sort(np.random.default_rng(seed).choice(len(X_train), size=len(curated), replace=False))
            runs["random"].append(
                _fit_score(make_probe, X_train[pick], y_train[pick], X_test, y_test, X_val, y_val, label_names)
            )
        out[str(fraction)] = {
            "size": int(len(curated)),
            **{
                kind: {
                    **add_intervals(
                        {m: summarize([r[0][m] for r in rs]) for m in METRICS}, rs[0][1], [r[2] for r in rs]
                    ),
                    **_per_label([r[0] for r in rs]),
                }
                for kind, rs in runs.items()
            },
        }
    return out


def _per_label(runs: list[dict]) -> dict:
    """Multi-label: each label's AUROC over the runs ({mean, std, values}); ``None`` where test cannot score it."""
    if "auroc_per_label" not in runs[0]:
        return {}
    per_label = {}
    for name in runs[0]["auroc_per_label"]:
        values = [r["auroc_per_label"][name] for r in runs]
        per_label[name] = None if any(np.isnan(v) for v in values) else summarize(values)
    return {"auroc_per_label": per_label}


def _fit_score(make_probe, X, y, X_test, y_test, X_val, y_val, label_names) -> tuple[dict, np.ndarray, np.ndarray]:
    """Test metrics of a probe fitted on ``X, y``, with the test targets and predictions (for intervals)."""
    probe = make_probe()
    args = (X_val, y_val) if X_val is not None and isinstance(probe, LinearProbe) else ()
    probe.fit(X, y, *args)
    truth, proba = probe.column_targets(y_test), probe.predict_proba(X_test)
    return evaluate(truth, proba, label_names), truth, proba
