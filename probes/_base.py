"""Shared plumbing for the probes: device choice, scikit-learn input validation, label encoding."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_features(X, name: str = "X") -> np.ndarray:
    """A finite, numeric, 2D float32 array (embeddings given as tensors are moved to the CPU first)."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2D (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise ValueError(f"{name} must be real numbers, got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():  # after the cast: a float64 value beyond float32's range is refused too
        raise ValueError(f"{name} contains NaN, inf or values beyond float32's range")
    return X


def as_labels(y, n: int) -> np.ndarray:
    if y is None:
        raise ValueError("this probe requires y to be passed, but the target y is None")
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)}")
    return y


def selection_metric_for(targets: np.ndarray, multilabel: bool) -> str:
    """The validation metric ``selection_metric="auto"`` means: AUROC for multi-label tasks and imbalanced classes
    (smallest training class under half the largest), accuracy for balanced single-label tasks."""
    if multilabel:
        return "auroc"
    counts = np.bincount(targets)
    return "auroc" if counts.min() < 0.5 * counts.max() else "accuracy"


class ProbeBase(ClassifierMixin, BaseEstimator):
    """Single-label: ``classes_`` from ``np.unique(y)``. Multi-label: ``y`` is ``(N, L)`` 0/1 with NaN unknown."""

    def _validate_fit(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Validated float32 features (sets ``n_features_in_``) and encoded targets (sets ``classes_``).

        sklearn's ``validate_data`` casts once to float32 and then checks finiteness, so a float64 value beyond
        float32's range is refused rather than silently becoming inf.
        """
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        X = validate_data(self, X, dtype=np.float32, order="C", ensure_min_samples=2)  # 2D, numeric, finite, one cast
        return X, self._encode_targets(as_labels(y, len(X)))

    def _validate_predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        return validate_data(self, X, dtype=np.float32, order="C", reset=False)

    def _encode_targets(self, y: np.ndarray) -> np.ndarray:
        """Single-label -> class indices into ``classes_``; multi-label -> float32 matrix (NaN kept)."""
        if y.ndim == 2:
            self.multilabel_ = True
            self.classes_ = np.arange(y.shape[1])
            return y.astype(np.float32)
        check_classification_targets(y)
        self.multilabel_ = False
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to fit a classifier, got {len(self.classes_)}")
        return encoded.astype(np.int64)

    def column_targets(self, y, split: str = "test") -> np.ndarray:
        """``y`` in the columns of ``predict_proba`` (class index; multi-label unchanged), as ``evaluate`` wants.

        A label of ``split`` that the training split never had has no column: that is an error naming the
        split, the unseen labels and the classes seen in train.
        """
        check_is_fitted(self)
        y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
        if self.multilabel_:
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(
                    f"the {split} split has labels of shape {y.shape}, but the probe was trained on "
                    f"{len(self.classes_)} labels per sample"
                )
            return y
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if len(unseen):
            raise ValueError(
                f"the {split} split has label(s) {unseen.tolist()} never seen in train; train has classes "
                f"{self.classes_.tolist()}. Every {split} class needs training examples (check the split, or "
                "drop those samples)"
            )
        return np.searchsorted(self.classes_, y)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[proba.argmax(1)]
