"""``EmbeddingSet``: features + labels + sample ids + provenance, saved as one safetensors file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import atomic_write


@dataclass
class EmbeddingSet:
    """Embeddings of one dataset split by one encoder.

    ``features`` is ``(N, D)`` float32 on CPU; ``labels`` follows the dataset's convention (``(N,)`` int64, or
    ``(N, L)`` float32 with NaN for unknown); ``ids`` names each row; ``metadata`` records how it was made.
    """

    features: torch.Tensor
    labels: np.ndarray
    ids: list[str]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.features.shape[0]
        if len(self.labels) != n or len(self.ids) != n:
            raise ValueError(f"{n} features but {len(self.labels)} labels and {len(self.ids)} ids")

    def __len__(self) -> int:
        return self.features.shape[0]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temporary file + rename): a crash never leaves a half-written file."""
        path = Path(path)
        tensors = {
            "features": self.features.contiguous(),
            "labels": torch.from_numpy(np.ascontiguousarray(self.labels)),
        }
        header = {"ids": json.dumps(self.ids), "metadata": json.dumps(self.metadata)}
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EmbeddingSet:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            features, labels = fh.get_tensor("features"), fh.get_tensor("labels").numpy()
        if "ids" not in header:
            raise ValueError(f"{path} is not an encoderzoo EmbeddingSet (no ids in its header)")
        return cls(features, labels, json.loads(header["ids"]), json.loads(header.get("metadata", "{}")))
