"""The training losses of the adaptation methods.

Supervised (``make_loss``, summed per sample; ``loss_denominator`` is what the loop divides a global batch's sum
by): cross-entropy for multi-class (optional inverse-frequency class weights), one-logit BCE for binary (optional
positive weight), per-label BCE for multi-label with unknown (NaN) labels masked.

Contrastive, for adapting CLIP-style encoders: ACE-LoRA's label-guided InfoNCE. Plain CLIP InfoNCE treats every
other text in the batch as a negative for an image. In a medical batch many images share exactly the same
findings, so their reports are not wrong matches; ACE-LoRA's label-guided InfoNCE (``loss.py`` of
icon-lab/ACE-LoRA) removes from the softmax denominators every off-diagonal pair whose label vectors are
identical. The positive (the diagonal) always stays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``f(logits, targets)`` -> the loss summed over the batch's samples (or known labels)."""


def make_loss(task: str, labels: np.ndarray, class_weights: bool) -> LossFn:
    """Per-sample-summed loss ``f(logits, targets)``; the caller divides by the global count."""
    if task == "multi-label":

        def multilabel(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            known = ~torch.isnan(targets)
            raw = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(targets), reduction="none")
            return (raw * known).sum()

        return multilabel
    if task == "binary":
        pos = float((labels == 1).sum())
        pos_weight = torch.tensor((len(labels) - pos) / max(pos, 1.0)) if class_weights else None

        def binary(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            weight = pos_weight.to(logits) if pos_weight is not None else None
            return F.binary_cross_entropy_with_logits(
                logits[:, 0], targets.to(logits.dtype), pos_weight=weight, reduction="sum"
            )

        return binary
    counts = np.bincount(labels, minlength=int(labels.max()) + 1).astype(np.float64)
    weights = None
    if class_weights:
        weights = torch.tensor(len(labels) / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)

    def multiclass(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, weight=None if weights is None else weights.to(logits), reduction="sum")

    return multiclass


def loss_denominator(task: str, targets: torch.Tensor) -> float:
    """What the summed loss of a global batch is divided by: known labels (multi-label) or samples."""
    if task == "multi-label":
        return max(float((~torch.isnan(targets)).sum()), 1.0)
    return float(len(targets))


def same_label_pairs(labels: torch.Tensor) -> torch.Tensor:
    """``(B, B)`` bool: ``True`` where two *different* samples have identical label vectors (the diagonal is False).

    ``labels`` is ``(B,)`` (class indices) or ``(B, L)`` (one value per label, such as multi-hot findings).
    NaN (unknown) never equals anything, as in upstream's pandas comparison, so a sample with an unknown label
    keeps every other sample as a negative.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim not in (1, 2):
        raise ValueError("labels must be a (B,) or (B, L) tensor")
    vectors = labels.unsqueeze(1) if labels.ndim == 1 else labels
    same = (vectors.unsqueeze(1) == vectors.unsqueeze(0)).all(dim=-1)
    return same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)


def label_guided_info_nce(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    scale: torch.Tensor | float,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE of ``(B, D)`` image and text features; same-label pairs are not negatives.

    ``scale`` multiplies the cosine logits (CLIP's ``logit_scale.exp()``); the features are used as given
    (L2-normalize them first, as CLIP does). ``labels`` ``(B,)`` or ``(B, L)``; ``None`` gives plain CLIP InfoNCE.
    The loss is the mean of the image-to-text and text-to-image cross-entropies with the matching pair as target.
    """
    if image_features.ndim != 2 or image_features.shape != text_features.shape:
        raise ValueError(
            f"image and text features must both be (B, D), got {tuple(image_features.shape)} and "
            f"{tuple(text_features.shape)}"
        )
    if labels is not None and len(labels) != len(image_features):
        raise ValueError(f"labels has {len(labels)} rows for a batch of {len(image_features)}")
    logits = scale * image_features @ text_features.t()
    if labels is not None:
        logits = logits.masked_fill(same_label_pairs(labels.to(logits.device)), float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
