"""Contrastive image-text losses for adapting CLIP-style encoders (ACE-LoRA's label-guided InfoNCE).

Plain CLIP InfoNCE treats every other text in the batch as a negative for an image. In a medical batch many
images share exactly the same findings, so their reports are not wrong matches; ACE-LoRA's label-guided InfoNCE
(``loss.py`` of icon-lab/ACE-LoRA) removes from the softmax denominators every off-diagonal pair whose label
vectors are identical. The positive (the diagonal) always stays.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
