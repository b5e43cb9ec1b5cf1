"""k-nearest-neighbour probe on the device.

Defaults follow the DINOv2 evaluation: cosine similarity, a temperature-weighted vote (T = 0.07), several k
in one pass. ``KNNProbe.medmnist_plus()`` is the MedMNIST+ protocol: k = 11, Euclidean, majority vote (its
predictions equal sklearn ``KNeighborsClassifier(n_neighbors=11)`` on the same features, except where training
rows exactly equidistant from a query straddle the 11th place: we keep the smaller training index, sklearn's heap
an implementation-defined one).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ._base import ProbeBase, pick_device

_CHUNK = 1 << 22  # elements per step of the exact re-ranking (a few tens of MiB)


def _check_norms_finite(largest_half_sq_norm: float, name: str) -> None:
    if not np.isfinite(largest_half_sq_norm):
        raise ValueError(
            f"{name} has features too large for float32 squared distances (|x|^2 overflows); rescale the features"
        )


class KNNProbe(ProbeBase):
    """Args:
    k: neighbours for ``predict`` / ``predict_proba``.
    metric: ``cosine`` (features L2-normalized) or ``euclidean``.
    weights: ``temperature`` (exp(similarity / T)) or ``uniform`` (majority vote, ties to the smallest class).
    temperature: T for the temperature vote.
    device: ``auto`` (CUDA when present), ``cpu``, ``cuda:0`` ...
    batch_size: queries per block (bounds memory at ``batch_size x n_train``).
    """

    def __init__(
        self,
        k: int = 20,
        metric: Literal["cosine", "euclidean"] = "cosine",
        weights: Literal["temperature", "uniform"] = "temperature",
        temperature: float = 0.07,
        device: str | None = "auto",
        batch_size: int = 2048,
    ) -> None:
        self.k = k
        self.metric = metric
        self.weights = weights
        self.temperature = temperature
        self.device = device
        self.batch_size = batch_size

    @classmethod
    def medmnist_plus(cls, device: str | None = "auto") -> KNNProbe:
        """The MedMNIST+ kNN preset: k = 11, Euclidean distance, majority vote."""
        return cls(k=11, metric="euclidean", weights="uniform", device=device)

    def _check_params(self) -> None:
        if not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean', got {self.metric!r}")
        if self.weights not in ("temperature", "uniform"):
            raise ValueError(f"weights must be 'temperature' or 'uniform', got {self.weights!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")

    def fit(self, X, y) -> KNNProbe:
        self._check_params()
        X, targets = self._validate_fit(X, y)
        self.device_ = pick_device(self.device)
        # A private copy (torch.tensor copies): the caller changing X after fit must not change the model.
        self.train_features_ = self._prepare(torch.tensor(X, device=self.device_))
        if self.metric == "euclidean":
            # Centred on the training mean: distances are unchanged by any shift, and centring keeps the norms (and
            # the expanded form's rounding) at the scale of the distances. Any centre would do, so float32 is fine.
            # The uncentred features stay in train_features_ for the exact float64 re-ranking of near-ties, as
            # sklearn keeps its own copy of X.
            self.center_ = self.train_features_.mean(0)
            self.train_centred_ = self.train_features_ - self.center_
            self.train_half_sq_norms_ = 0.5 * self.train_centred_.square().sum(1)
            self.train_half_sq_norms_max_ = float(self.train_half_sq_norms_.max())
            _check_norms_finite(self.train_half_sq_norms_max_, "X")
        t = torch.from_numpy(targets).to(self.device_)
        self.train_targets_ = t if self.multilabel_ else torch.nn.functional.one_hot(t, len(self.classes_)).float()
        return self

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return torch.nn.functional.normalize(x, dim=1) if self.metric == "cosine" else x

    def predict_proba(self, X) -> np.ndarray:
        return self.predict_proba_many(X, [self.k])[self.k]

    def predict_proba_many(self, X, ks: list[int]) -> dict[int, np.ndarray]:
        """Probabilities for several k from one neighbour search (top ``max(ks)`` once)."""
        X = self._validate_predict(X)
        k_max = max(ks)
        if k_max > len(self.train_features_):
            raise ValueError(f"k={k_max} exceeds the {len(self.train_features_)} training samples")
        out: dict[int, list[np.ndarray]] = {k: [] for k in ks}
        for lo in range(0, len(X), self.batch_size):
            query = self._prepare(torch.from_numpy(X[lo : lo + self.batch_size]).to(self.device_))
            score, index = self._neighbours(query, ks)
            neighbour_targets = self.train_targets_[index]  # (B, k_max, C)
            for k in ks:
                out[k].append(self._vote(score[:, :k], neighbour_targets[:, :k]).cpu().numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    def _neighbours(self, query: torch.Tensor, ks: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``max(ks)`` nearest: top similarities (cosine) or smallest squared distances (euclidean), best first.

        Euclidean: one float32 GEMM ranks ``q.c - |c|^2 / 2`` on features centred on the training mean (which
        keeps the expanded form's cancellation at the scale of the distances, not of the norms). The votes depend
        only on which rows make each requested top k, so only the gap between the k-th and the (k+1)-th score
        matters: a row where that gap is within the float32 error bound is re-ranked in float64 from the uncentred
        features (sklearn's precision), near-ties by true distance and exact ties by training index; other rows
        need nothing (their order inside a top k may follow float32 rounding, which no vote sees).
        """
        k = max(ks)
        if self.metric == "cosine":
            return (query @ self.train_features_.T).topk(k, dim=1)
        n = len(self.train_features_)
        centred = query - self.center_
        score = torch.addmm(self.train_half_sq_norms_, centred, self.train_centred_.T, beta=-1.0)
        top = score.topk(min(k + 1, n), dim=1)
        q_sq = centred.square().sum(1)
        _check_norms_finite(float(q_sq.max()), "the query")
        distances, index = (q_sq[:, None] - 2.0 * top.values).clamp_min(0.0), top.indices
        # Rounding of a float32 score q.c - |c|^2/2 grows with |q|^2 + |c|^2: measured up to 1.4e-6 times that (two
        # clusters apart in 64 of 4,096 dimensions), ~4 eps at 20,000 x 768. A gap between two scores is trusted
        # when it exceeds 8e-6 (|q|^2 + |c|^2) >= 2 x 2.9 x the worst measured. Only rows that can truly be among
        # the k + 1 nearest matter, and they have |c|^2 <= (|q| + d_k+1)^2 <= 2 (|q|^2 + d_k+1^2): that, not the
        # largest |c|^2 of the training set, bounds |c|^2 (one outlier would otherwise flag every query).
        reach = torch.clamp(2.5 * (q_sq + distances[:, -1]), max=2.0 * self.train_half_sq_norms_max_)
        tolerance = 8e-6 * (q_sq + reach)
        boundaries = [b for b in sorted(set(ks)) if b < top.values.shape[1]]  # k = n has no (k+1)-th to compete
        gaps = top.values[:, [b - 1 for b in boundaries]] - top.values[:, boundaries]
        close = (gaps <= tolerance[:, None]).any(1)
        rows = torch.nonzero(close).flatten()
        if len(rows):  # every training row whose score could beat the (k+1)-th gets a float64 distance
            self._rerank_exactly(query, score, rows, top.values[rows, -1] - 2.0 * tolerance[rows], distances, index)
        return distances[:, :k], index[:, :k]

    def _rerank_exactly(self, query, score, rows, bound, distances, index) -> None:
        """Rewrite ``distances`` / ``index`` of ``rows`` from float64 distances between the uncentred features and
        every training row scoring ``>= bound``, best first, exact ties to the smaller training index (a stable
        sort). Rows go in groups and (row, candidate) pairs in chunks, so memory stays within ``_CHUNK`` elements
        per step however many candidates a row has (duplicates, concentrated distances)."""
        n, d = self.train_features_.shape
        width = index.shape[1]
        rows_per_step, pairs_per_step = max(1, _CHUNK // n), max(1, _CHUNK // d)
        for lo in range(0, len(rows), rows_per_step):
            group = rows[lo : lo + rows_per_step]
            r, c = torch.nonzero(score[group] >= bound[lo : lo + rows_per_step, None], as_tuple=True)  # by r, then c
            exact = torch.cat(
                [
                    (
                        query[group[r[i : i + pairs_per_step]]].double()
                        - self.train_features_[c[i : i + pairs_per_step]].double()
                    )
                    .square()
                    .sum(1)
                    for i in range(0, len(r), pairs_per_step)
                ]
            )
            order = torch.sort(exact, stable=True).indices  # by distance, ties keep c ascending
            order = order[torch.sort(r[order], stable=True).indices]  # grouped by row, distance order kept
            counts = torch.bincount(r, minlength=len(group))  # every row has >= its top k + 1 as candidates
            take = order[(counts.cumsum(0) - counts)[:, None] + torch.arange(width, device=order.device)]
            distances[group], index[group] = exact[take].float(), c[take]

    def _vote(self, score: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.weights == "temperature":
            sims = score if self.metric == "cosine" else -score  # larger is closer
            w = ((sims - sims[:, :1]) / self.temperature).exp()  # shifted for numerical stability
        else:
            w = torch.ones_like(score)
        w = w.float().unsqueeze(-1)
        if self.multilabel_:
            known = ~torch.isnan(targets)
            total = (w * torch.nan_to_num(targets)).sum(1)
            return total / (w * known).sum(1).clamp_min(1e-12)
        votes = (w * targets).sum(1)
        return votes / votes.sum(1, keepdim=True)
