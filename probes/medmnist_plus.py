"""Linear probing as the MedMNIST+ paper trains it (Doerrich et al., Scientific Reports 2025; reference code
sdoerrich97/rethinking-model-prototyping-MedMNISTPlus, ``train.py`` and ``config.yaml``), on frozen embeddings.

The paper freezes the backbone and trains ``model.get_classifier()`` alone, which is a linear layer on the same
pooled features our encoders return, so training it on cached embeddings is the same optimisation:

- head: ``Linear(D, K)`` initialized as timm initializes a ViT head (truncated normal, std 0.02, zero bias);
- loss: cross-entropy over K logits (binary tasks too), or BCE-with-logits for multi-label tasks;
- AdamW, lr 1e-4 (weight decay 0.01, timm's and torch's default), batch 64, shuffled each epoch;
- cosine schedule over 100 epochs stepped after each epoch (timm ``CosineLRScheduler(t_initial=100)`` with
  ``step(epoch)``: epochs 0 and 1 run at 1e-4, epoch e >= 1 at ``0.5 * 1e-4 * (1 + cos(pi * (e - 1) / 100))``);
- validation loss after every epoch (mean of per-batch means, batches of 256); the head with the lowest
  validation loss is kept; training stops once 5 epochs in a row have not lowered it;
- the paper's three seeds: 9930641, 115149041, 252139603 (head init and data order).

Differences that remain: the paper feeds each batch through the frozen backbone in ``train()`` mode (no effect on
ViTs without dropout, such as its DINO ViT-B/16; batch-norm CNNs would see their running statistics drift) and
its data order comes from a seeded DataLoader, not this module's generator.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ._base import ProbeBase, as_labels, pick_device
from .bootstrap import add_intervals
from .fewshot import summarize
from .metrics import evaluate

PAPER_SEEDS = (9930641, 115149041, 252139603)
PROTOCOL = {
    "source": "Doerrich et al., Sci Rep 2025; sdoerrich97/rethinking-model-prototyping-MedMNISTPlus train.py",
    "head": "Linear(D, K), trunc_normal std 0.02, zero bias; backbone frozen",
    "optimizer": "AdamW lr 1e-4, weight decay 0.01",
    "batch_size": 64,
    "schedule": "cosine over 100 epochs, stepped per epoch (timm CosineLRScheduler)",
    "max_epochs": 100,
    "early_stopping": "validation loss, patience 5; the best-val-loss head is scored",
    "seeds": list(PAPER_SEEDS),
}


class MedMNISTPlusLinearProbe(ProbeBase):
    """The paper's head training on embeddings; ``fit(X, y, X_val, y_val)`` (validation is required)."""

    def __init__(
        self,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        max_epochs: int = 100,
        patience: int = 5,
        seed: int = PAPER_SEEDS[0],
        device: str | None = "auto",
    ) -> None:
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.device = device

    def fit(self, X, y, X_val, y_val) -> MedMNISTPlusLinearProbe:
        X, targets = self._validate_fit(X, y)
        X_val = self._validate_predict_shape(X_val)
        val_targets = self._encode_like_fit(as_labels(y_val, len(X_val)))
        self.device_ = pick_device(self.device)
        generator = torch.Generator().manual_seed(self.seed)
        head = nn.Linear(X.shape[1], len(self.classes_))
        with torch.no_grad():
            nn.init.trunc_normal_(head.weight, std=0.02, generator=generator)
            nn.init.zeros_(head.bias)
        head = head.to(self.device_)
        optimizer = torch.optim.AdamW(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        x, t = torch.from_numpy(X).to(self.device_), torch.from_numpy(targets).to(self.device_)
        xv, tv = torch.from_numpy(X_val).to(self.device_), torch.from_numpy(val_targets).to(self.device_)
        best_loss, best_state, stale = math.inf, copy.deepcopy(head.state_dict()), 0
        self.history_: list[dict] = []
        for epoch in range(self.max_epochs):
            for group in optimizer.param_groups:
                group["lr"] = self.lr_at(epoch)
            head.train()
            order = torch.randperm(len(x), generator=generator).to(self.device_)
            train_loss = []
            for start in range(0, len(x), self.batch_size):
                rows = order[start : start + self.batch_size]
                loss = self._loss(head(x[rows]), t[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                train_loss.append(loss.item())
            val_loss = self._val_loss(head, xv, tv)
            self.history_.append(
                {
                    "epoch": epoch,
                    "lr": self.lr_at(epoch),
                    "train_loss": float(np.mean(train_loss)),
                    "val_loss": val_loss,
                }
            )
            if val_loss < best_loss:
                best_loss, best_state, stale, self.best_epoch_ = val_loss, copy.deepcopy(head.state_dict()), 0, epoch
            else:
                stale += 1
            if stale == self.patience:
                break
        head.load_state_dict(best_state)
        self.head_ = head.eval()
        self.epochs_run_ = len(self.history_)
        self.best_val_loss_ = best_loss
        return self

    def lr_at(self, epoch: int) -> float:
        """Learning rate during ``epoch`` (timm's cosine scheduler stepped with ``step(epoch)`` after each one)."""
        if epoch == 0:
            return self.lr
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * (epoch - 1) / self.max_epochs))

    def predict_proba(self, X) -> np.ndarray:
        x = torch.from_numpy(self._validate_predict(X)).to(self.device_)
        with torch.no_grad():
            logits = self.head_(x)
        return (logits.sigmoid() if self.multilabel_ else logits.softmax(1)).cpu().numpy()

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.multilabel_:
            return nn.functional.cross_entropy(logits, targets)
        known = ~torch.isnan(targets)
        return nn.functional.binary_cross_entropy_with_logits(logits[known], targets[known])

    @torch.no_grad()
    def _val_loss(self, head: nn.Module, x: torch.Tensor, t: torch.Tensor) -> float:
        head.eval()
        losses = [
            self._loss(head(x[s : s + self.eval_batch_size]), t[s : s + self.eval_batch_size]).item()
            for s in range(0, len(x), self.eval_batch_size)
        ]
        return float(np.mean(losses))

    def _validate_predict_shape(self, X) -> np.ndarray:
        from sklearn.utils.validation import validate_data

        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        return validate_data(self, X, dtype=np.float32, order="C", reset=False)

    def _encode_like_fit(self, y: np.ndarray) -> np.ndarray:
        return self.column_targets(y, split="val").astype(np.float32 if self.multilabel_ else np.int64)


def paper_linear_results(
    X_train, y_train, X_val, y_val, X_test, y_test, label_names=None, *, seeds=PAPER_SEEDS, device="auto"
) -> dict:
    """The ``linear-medmnist+`` entry of results.json: one head per paper seed, test metrics as
    ``{mean, std, values, ci95}`` over the seeds (the interval of the mean), and each seed's training record."""
    probes = [MedMNISTPlusLinearProbe(seed=s, device=device).fit(X_train, y_train, X_val, y_val) for s in seeds]
    truth = probes[0].column_targets(y_test)
    probas = [p.predict_proba(X_test) for p in probes]
    runs = [evaluate(truth, proba, label_names) for proba in probas]
    summary = {m: summarize([r[m] for r in runs]) for m in ("accuracy", "balanced_accuracy", "auroc")}
    return {
        **add_intervals(summary, truth, probas),
        "seeds": list(seeds),
        "epochs_run": [p.epochs_run_ for p in probes],
        "best_epoch": [p.best_epoch_ for p in probes],
        "best_val_loss": [p.best_val_loss_ for p in probes],
        "auroc_skipped": runs[0]["auroc_skipped"],
    }
