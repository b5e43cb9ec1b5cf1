"""Logistic-regression probe trained full-batch on the device with L-BFGS, a whole C grid at once.

The objective per C is sklearn's: ``C * sum(log-loss) + ||W||^2 / 2`` (intercept not penalized); binary
tasks use one logit (sigmoid), multi-class the multinomial softmax, multi-label one sigmoid per label with
unknown (NaN) labels masked. The grid is optimized jointly (the objectives are separable, so the joint
minimum is every individual minimum) and C is chosen on the validation split only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ._base import ProbeBase, as_features, as_labels, pick_device
from .metrics import evaluate

DEFAULT_C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 13))


class LinearProbe(ProbeBase):
    """Args:
    C: inverse L2 strength, a float or a grid (chosen on ``X_val, y_val`` in ``fit``).
    max_iter: L-BFGS iterations.
    standardize: z-score features with training mean/std first (stored, applied at predict time).
    selection_metric: what the validation split maximizes: ``accuracy``, ``balanced_accuracy`` or ``auroc``
        (``auto``: accuracy for single-label, AUROC for multi-label).
    device: ``auto`` (CUDA when present), ``cpu``, ``cuda:0`` ...
    """

    def __init__(
        self,
        C: float | Sequence[float] = DEFAULT_C_GRID,
        max_iter: int = 500,
        standardize: bool = True,
        selection_metric: Literal["auto", "accuracy", "balanced_accuracy", "auroc"] = "auto",
        device: str | None = "auto",
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.standardize = standardize
        self.selection_metric = selection_metric
        self.device = device

    def fit(self, X, y, X_val=None, y_val=None) -> LinearProbe:
        grid = np.atleast_1d(np.asarray(self.C, dtype=np.float64))
        if grid.ndim != 1 or not (grid > 0).all():
            raise ValueError(f"C must be positive (a float or a 1D grid), got {self.C!r}")
        if len(grid) > 1 and X_val is None:
            raise ValueError(
                f"C is a grid of {len(grid)} values: pass X_val, y_val to choose C on validation data "
                "(never on test), or give one C"
            )
        X, targets = self._validate_fit(X, y)
        self.device_ = pick_device(self.device)
        x = torch.from_numpy(X).to(self.device_)
        self.mean_ = x.mean(0) if self.standardize else torch.zeros(X.shape[1], device=self.device_)
        self.scale_ = x.std(0).clamp_min(1e-6) if self.standardize else torch.ones(X.shape[1], device=self.device_)
        x = (x - self.mean_) / self.scale_
        t = torch.from_numpy(targets).to(self.device_)
        weights, bias = self._train(x, t, torch.tensor(grid, dtype=torch.float32, device=self.device_))
        if len(grid) == 1:
            best = 0
            self.val_scores_ = {}
        else:
            X_val = as_features(X_val, "X_val")
            y_val = as_labels(y_val, len(X_val))
            metric = self.selection_metric
            if metric == "auto":
                metric = "auroc" if self.multilabel_ else "accuracy"
            x_val = (torch.from_numpy(X_val).to(self.device_) - self.mean_) / self.scale_
            val_true = self.column_targets(y_val)
            if not self.multilabel_ and not np.isin(y_val, self.classes_).all():
                raise ValueError("y_val holds classes never seen in y")
            scores = [evaluate(val_true, self._proba(x_val, weights[g], bias[g]))[metric] for g in range(len(grid))]
            self.val_scores_ = {float(c): float(s) for c, s in zip(grid, scores, strict=True)}
            best = int(np.nanargmax(scores))  # first best: the strongest regularization among ties
        self.C_ = float(grid[best])
        self.coef_, self.intercept_ = weights[best].T.contiguous(), bias[best]
        return self

    def _out_dim(self) -> int:
        return len(self.classes_) if (self.multilabel_ or len(self.classes_) > 2) else 1

    def _train(self, x: torch.Tensor, t: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        G, (n, d), k = len(grid), x.shape, self._out_dim()
        W = torch.zeros(G, d, k, device=x.device, requires_grad=True)
        b = torch.zeros(G, k, device=x.device, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [W, b],
            lr=1.0,
            max_iter=self.max_iter,
            history_size=20,
            tolerance_grad=1e-6,
            tolerance_change=1e-9,
            line_search_fn="strong_wolfe",
        )
        # per C: sum(loss) + ||W||^2 / (2C), divided by n to keep the scale of a mean loss
        penalty = 1.0 / (2.0 * grid * n)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            logits = torch.einsum("nd,gdk->gnk", x, W) + b[:, None, :]
            loss = self._loss(logits, t).sum() + (penalty * (W**2).sum((1, 2))).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        self.n_iter_ = int(optimizer.state[optimizer._params[0]]["n_iter"])
        return W.detach(), b.detach()

    def _loss(self, logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean loss per grid entry, shape (G,)."""
        G = logits.shape[0]
        if self.multilabel_:
            known = ~torch.isnan(t)
            target = torch.nan_to_num(t).expand(G, -1, -1)
            each = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            return (each * known).sum((1, 2)) / len(t)
        if logits.shape[-1] == 1:
            target = t.float().expand(G, -1)
            return F.binary_cross_entropy_with_logits(logits[..., 0], target, reduction="none").mean(1)
        return F.cross_entropy(logits.permute(0, 2, 1), t.expand(G, -1), reduction="none").mean(1)

    def _proba(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> np.ndarray:
        logits = x @ W + b
        if self.multilabel_:
            return torch.sigmoid(logits).cpu().numpy()
        if logits.shape[-1] == 1:
            p1 = torch.sigmoid(logits[:, 0])
            return torch.stack([1 - p1, p1], 1).cpu().numpy()
        return logits.softmax(-1).cpu().numpy()

    def predict_proba(self, X) -> np.ndarray:
        X = self._validate_predict(X)
        x = (torch.from_numpy(X).to(self.device_) - self.mean_) / self.scale_
        return self._proba(x, self.coef_.T, self.intercept_)
