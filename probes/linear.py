"""Logistic-regression probe trained full-batch on the device with L-BFGS along a C path.

The objective per C is sklearn's: ``mean(log-loss) + ||W||^2 / (2 C n)`` (intercept not penalized); binary
tasks use one logit (sigmoid), multi-class the multinomial softmax, multi-label one sigmoid per label with
unknown (NaN) labels masked. The C grid is solved in increasing order, each fit warm-started from the previous
solution, and each fit stops on sklearn's rule for its lbfgs solver: the largest absolute gradient entry of the
objective at most ``tol``. A fit that reaches ``max_iter`` first is flagged (``converged_``) and reported with a
``ConvergenceWarning``, never silently used as if it had converged.

Validation chooses C and, with ``standardize="auto"``, whether the features are z-scored first (the other
option being the raw features), on the metric ``selection_metric``: accuracy for balanced single-label tasks,
macro AUROC for imbalanced ones (smallest class under half the largest in train) and for multi-label tasks.
The test split is never used for any choice.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning

from ._base import ProbeBase, as_features, as_labels, pick_device, selection_metric_for
from .metrics import METRICS, evaluate

DEFAULT_C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 13))


class LinearProbe(ProbeBase):
    """Args:
    C: inverse L2 strength, a float or a grid (chosen on ``X_val, y_val`` in ``fit``).
    max_iter: L-BFGS iterations per C (sklearn's meaning).
    tol: stop a fit when every gradient entry of the objective is at most ``tol`` in absolute value
        (sklearn's lbfgs ``tol``, same default).
    standardize: ``True`` z-scores features with the training mean/std (stored, applied at predict time),
        ``False`` uses them raw, ``"auto"`` lets validation choose between the two along with C (standardized
        when no validation split is given: a single C and no ``X_val``).
    selection_metric: what the validation split maximizes: ``accuracy``, ``balanced_accuracy`` or ``auroc``;
        ``auto``: AUROC for multi-label tasks and for imbalanced classes (smallest training class under half
        the largest), accuracy otherwise.
    dtype: ``float64``, ``float32`` or ``auto`` (float64 on CPU, float32 on CUDA). The line search compares
        losses, and float32 losses stop resolving progress once the largest gradient entry is near 1e-4 on
        strongly regularized fits: such fits are reported unconverged; float64 converges to ``tol`` ~1e-7.
    device: ``auto`` (CUDA when present), ``cpu``, ``cuda:0`` ...

    Learned: ``C_``, ``standardize_``, ``selection_metric_``, ``coef_``, ``intercept_``, ``n_iter_`` and
    ``converged_`` of the chosen fit, ``val_scores_`` ({C: score} for the chosen standardization) and
    ``path_`` (one record per fitted (standardize, C): score, iterations, convergence, final gradient) with
    ``coef_path_`` / ``intercept_path_`` (the fitted coefficients of each record, in the space of the features
    that record used: z-scored or raw).
    """

    def __init__(
        self,
        C: float | Sequence[float] = DEFAULT_C_GRID,
        max_iter: int = 500,
        tol: float = 1e-4,
        standardize: bool | Literal["auto"] = "auto",
        selection_metric: Literal["auto", "accuracy", "balanced_accuracy", "auroc"] = "auto",
        dtype: Literal["auto", "float32", "float64"] = "auto",
        device: str | None = "auto",
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize
        self.selection_metric = selection_metric
        self.dtype = dtype
        self.device = device

    def _check_params(self) -> np.ndarray:
        grid = np.atleast_1d(np.asarray(self.C, dtype=np.float64))
        if grid.ndim != 1 or not (grid > 0).all():
            raise ValueError(f"C must be positive (a float or a 1D grid), got {self.C!r}")
        if not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0, got {self.tol!r}")
        if self.standardize not in (True, False, "auto"):
            raise ValueError(f"standardize must be True, False or 'auto', got {self.standardize!r}")
        if self.selection_metric not in ("auto", *METRICS):
            raise ValueError(f"selection_metric must be 'auto' or one of {METRICS}, got {self.selection_metric!r}")
        if self.dtype not in ("auto", "float32", "float64"):
            raise ValueError(f"dtype must be 'auto', 'float32' or 'float64', got {self.dtype!r}")
        return np.sort(grid)

    def fit(self, X, y, X_val=None, y_val=None) -> LinearProbe:
        grid = self._check_params()
        has_val = X_val is not None
        if len(grid) > 1 and not has_val:
            raise ValueError(
                f"C is a grid of {len(grid)} values: pass X_val, y_val to choose C on validation data "
                "(never on test), or give one C"
            )
        X, targets = self._validate_fit(X, y)
        self.device_ = pick_device(self.device)
        metric = self.selection_metric
        self.selection_metric_ = selection_metric_for(targets, self.multilabel_) if metric == "auto" else metric
        options = [True, False] if self.standardize == "auto" and has_val else [self.standardize in (True, "auto")]
        dtype = ("float32" if self.device_.type == "cuda" else "float64") if self.dtype == "auto" else self.dtype
        self.dtype_ = getattr(torch, dtype)
        x_raw = torch.from_numpy(X).to(self.device_, self.dtype_)
        t = torch.from_numpy(targets).to(self.device_)
        if has_val:
            X_val = as_features(X_val, "X_val")
            if X_val.shape[1] != X.shape[1]:
                raise ValueError(f"X_val has {X_val.shape[1]} features, but X has {X.shape[1]}")
            val_true = self.column_targets(as_labels(y_val, len(X_val)), split="val")
            x_val_raw = torch.from_numpy(X_val).to(self.device_, self.dtype_)
        self.path_, fits = [], []
        for standardize in options:
            mean, scale = _moments(x_raw, standardize)
            x = (x_raw - mean) / scale
            x_val = (x_val_raw - mean) / scale if has_val else None
            for C, (W, b, n_iter, grad) in zip(grid, self._path(x, t, grid), strict=True):
                score = float("nan")
                if has_val:
                    score = evaluate(val_true, self._proba(x_val, W, b))[self.selection_metric_]
                record = {
                    "standardize": standardize,
                    "C": float(C),
                    "score": float(score),
                    "n_iter": n_iter,
                    "converged": bool(grad <= self.tol),
                    "max_abs_gradient": grad,
                }
                self.path_.append(record)
                fits.append((W, b, mean, scale))
        self._warn_unconverged()
        scores = np.array([r["score"] for r in self.path_])
        if has_val and np.isnan(scores).all():
            raise ValueError(
                f"the validation split cannot score {self.selection_metric_!r} (e.g. AUROC with one class in y_val): "
                "pass selection_metric='accuracy' or a validation split holding every class"
            )
        best = int(np.nanargmax(scores)) if has_val else 0  # first best: standardized first, smallest C among ties
        chosen = self.path_[best]
        W, b, self.mean_, self.scale_ = fits[best]
        self.C_, self.standardize_ = chosen["C"], chosen["standardize"]
        self.n_iter_, self.converged_ = chosen["n_iter"], chosen["converged"]
        self.val_scores_ = {r["C"]: r["score"] for r in self.path_ if r["standardize"] == self.standardize_ and has_val}
        self.coef_, self.intercept_ = W.T.contiguous(), b
        self.coef_path_ = np.stack([f[0].T.cpu().numpy() for f in fits])
        self.intercept_path_ = np.stack([f[1].cpu().numpy() for f in fits])
        return self

    def _warn_unconverged(self) -> None:
        bad = [r for r in self.path_ if not r["converged"]]
        if bad:
            which = ", ".join(f"C={r['C']:.3g} (standardize={r['standardize']})" for r in bad)
            worst = max(r["max_abs_gradient"] for r in bad)
            warnings.warn(
                f"LinearProbe: L-BFGS stopped before the gradient reached tol={self.tol:g} for {which}; largest "
                f"gradient entry {worst:.3g}. Raise max_iter (now {self.max_iter}) or tol; `path_` records "
                "which fits converged.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _out_dim(self) -> int:
        return len(self.classes_) if (self.multilabel_ or len(self.classes_) > 2) else 1

    def _path(self, x: torch.Tensor, t: torch.Tensor, grid: np.ndarray):
        """Yield (W, b, iterations, final max |gradient|) per C in increasing order, each warm-started."""
        n, d = x.shape
        k = self._out_dim()
        W = torch.zeros(d, k, device=x.device, dtype=x.dtype)
        b = torch.zeros(k, device=x.device, dtype=x.dtype)
        if self.multilabel_ or k == 1:
            target = t.reshape(n, -1).to(x.dtype)
            known = ~torch.isnan(target)
            target = torch.nan_to_num(target)
        else:
            target = F.one_hot(t, k).to(x.dtype)
            known = None
        for C in grid:
            objective = _Objective(x, target, known, softmax=k > 1 and not self.multilabel_, penalty=1.0 / (C * n))
            n_iter = _minimize(objective, W, b, self.tol, self.max_iter)
            yield W.clone(), b.clone(), n_iter, objective.max_abs_gradient(W, b)

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
        x = (torch.from_numpy(X).to(self.device_, self.dtype_) - self.mean_) / self.scale_
        return self._proba(x, self.coef_.T, self.intercept_)


def _moments(x: torch.Tensor, standardize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if not standardize:
        return x.new_zeros(x.shape[1]), x.new_ones(x.shape[1])
    return x.mean(0), x.std(0, correction=0).clamp_min(1e-6)  # as sklearn StandardScaler (ddof=0)


class _Objective:
    """``mean(loss) + penalty / 2 * ||W||^2`` and its gradient, computed directly (no autograd).

    ``softmax``: multinomial cross-entropy against one-hot ``target``; else a sigmoid per column, with
    ``known`` masking unknown labels (the sum over known entries is divided by the number of samples).
    """

    def __init__(self, x: torch.Tensor, target: torch.Tensor, known, *, softmax: bool, penalty: float) -> None:
        self.x, self.target, self.known, self.softmax, self.penalty = x, target, known, softmax, penalty
        self.n = len(x)

    def __call__(self, W: torch.Tensor, b: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        logits = torch.addmm(b, self.x, W)
        if self.softmax:
            lse = torch.logsumexp(logits, 1)
            per_sample = lse - (logits * self.target).sum(1)
            residual = torch.exp(logits - lse[:, None]) - self.target
        else:
            each = F.softplus(logits) - self.target * logits
            residual = torch.sigmoid(logits) - self.target
            if self.known is not None:
                each = each * self.known
                residual = residual * self.known
            per_sample = each.sum(1)
        loss = per_sample.double().sum().item() / self.n + 0.5 * self.penalty * float((W.double() ** 2).sum())
        grad_W = torch.addmm(W, self.x.T, residual, beta=self.penalty, alpha=1.0 / self.n)
        grad_b = residual.sum(0) / self.n
        return loss, grad_W, grad_b

    def max_abs_gradient(self, W: torch.Tensor, b: torch.Tensor) -> float:
        _, grad_W, grad_b = self(W, b)
        return max(float(grad_W.abs().max()), float(grad_b.abs().max()))


def _minimize(objective: _Objective, W: torch.Tensor, b: torch.Tensor, tol: float, max_iter: int) -> int:
    """L-BFGS (strong Wolfe line search) on ``W, b`` in place until max |gradient| <= ``tol``; returns iterations.

    When the line search stalls (torch's LBFGS stops on a negligible change) the history is dropped and L-BFGS
    restarts from the current point; a restart that cannot lower the loss ends the fit (the caller reports it).
    """
    used = 0
    while used < max_iter:
        optimizer = torch.optim.LBFGS(
            [W, b],
            lr=1.0,
            max_iter=max_iter - used,
            max_eval=int(1.25 * (max_iter - used)) + 1,
            history_size=10,
            tolerance_grad=tol,
            tolerance_change=0.0,  # stop on the gradient (or a failed line search), never on a small loss change
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            loss, W.grad, b.grad = objective(W, b)
            return torch.tensor(loss, dtype=torch.float64)  # the line search compares losses: keep float64

        before = objective(W, b)[0]
        optimizer.step(closure)
        steps = int(optimizer.state[optimizer._params[0]].get("n_iter", 0))
        used += steps
        if steps == 0 or objective.max_abs_gradient(W, b) <= tol or not objective(W, b)[0] < before:
            break
    return used
