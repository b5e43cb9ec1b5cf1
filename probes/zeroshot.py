"""Zero-shot classification from image and prompt embeddings: no training data, no fitted parameters.

- ``classes``: each class is the mean of its prompts' L2-normalized text embeddings (prompt ensembling); an
  image scores ``exp(logit_scale) * cos(image, class)`` (+ ``logit_bias`` for SigLIP), softmax over classes.
- ``pairs`` (CheXzero): per label, the positive and the negative prompt ensembles score the image the same way
  and a softmax over the two gives P(label present). Binary tasks in pairs mode score their positive class.

``predict_proba`` returns the columns ``encoderzoo.probes.evaluate`` reads (classes; or labels for multi-label),
so the metrics are the same as every other probe's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._base import as_features, pick_device


def ensemble(prompt_embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(K, D)``: for each group of prompt embeddings ``(P_k, D)``, the mean of the L2-normalized rows,
    normalized again."""
    if not prompt_embeddings or any(e.ndim != 2 or len(e) == 0 for e in prompt_embeddings):
        raise ValueError("every class needs at least one prompt embedding, as a (P, D) tensor")
    return F.normalize(torch.stack([F.normalize(e.float(), dim=-1).mean(0) for e in prompt_embeddings]), dim=-1)


class ZeroShotProbe:
    """Scores images against fixed text embeddings with the model's logit scale (and bias).

    Args:
        text_embeddings: ``classes``: ``(K, D)`` class embeddings; ``pairs``: ``(L, 2, D)`` (positive, negative).
        logit_scale: the model's log scale (``exp`` is applied here); logit_bias: SigLIP's bias or ``None``.
        mode: ``classes`` or ``pairs``; binary: for pairs with one label on a binary task, ``predict_proba``
            returns two columns ``[1 - p, p]``.
    """

    def __init__(
        self,
        text_embeddings: torch.Tensor,
        logit_scale: float,
        logit_bias: float | None = None,
        mode: str = "classes",
        binary: bool = False,
        device: str | torch.device | None = "auto",
    ) -> None:
        if mode not in ("classes", "pairs"):
            raise ValueError(f"mode must be 'classes' or 'pairs', got {mode!r}")
        expected = 2 if mode == "classes" else 3
        if text_embeddings.ndim != expected or (mode == "pairs" and text_embeddings.shape[1] != 2):
            shape = "(K, D)" if mode == "classes" else "(L, 2, D)"
            raise ValueError(f"{mode} mode needs text embeddings shaped {shape}, got {tuple(text_embeddings.shape)}")
        if binary and (mode != "pairs" or text_embeddings.shape[0] != 1):
            raise ValueError("binary=True applies to pairs mode with exactly one label")
        self.device = pick_device(device)
        self.text_embeddings_ = F.normalize(text_embeddings.detach().float(), dim=-1).to(self.device)
        self.logit_scale, self.logit_bias, self.mode, self.binary = logit_scale, logit_bias, mode, binary

    def logits(self, X) -> torch.Tensor:
        """``classes``: ``(N, K)``; ``pairs``: ``(N, L, 2)`` logits (positive first)."""
        image = F.normalize(torch.from_numpy(as_features(X)).to(self.device), dim=-1)
        sims = torch.einsum("nd,...d->n...", image, self.text_embeddings_)
        out = sims * float(np.exp(self.logit_scale))
        return out + self.logit_bias if self.logit_bias is not None else out

    def predict_proba(self, X) -> np.ndarray:
        logits = self.logits(X)
        if self.mode == "classes":
            return logits.softmax(-1).cpu().numpy()
        present = logits.softmax(-1)[..., 0]
        if self.binary:
            present = torch.cat([1 - present, present], dim=1)
        return present.cpu().numpy()

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.mode == "pairs" and not self.binary:
            return (proba >= 0.5).astype(np.int64)
        return proba.argmax(1)
