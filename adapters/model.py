"""``AdaptedEncoder``: a zoo encoder with one adaptation method applied and a classification head.

It holds one adapter slot and asks the method's record (``adapters.methods``) what to build and how to embed,
classify, train and save; it never branches on the method's name.

It behaves like an ``Encoder`` wherever the embedding engine and the probes use one (``spec``, ``transform``,
``embed`` / ``forward`` -> embeddings, ``forward_tokens``), so ``embed_dataset`` and ``encoderzoo probe`` work on
it unchanged; ``classify(pixels)`` gives the head's logits.

The built-in methods (``METHODS``: every registered one):
- ``head``: the encoder is frozen; only the linear head trains (the baseline).
- ``lora``: peft LoRA on ``spec.lora_targets`` (``adapters.lora``).
- ``vpt`` / ``vpt-deep``: visual prompt tuning, shallow or deep (``adapters.prompt``).
- ``ace-hgnn``: the hypergraph context module of ACE-LoRA on the frozen final tokens (``adapters.ace_hgnn``);
  for CLIP-style encoders (``pooling == "proj"``) ``ace_inputs`` projects every node first, as ACE-LoRA does, so
  the embedding keeps the encoder's output width.
- ``full``: every encoder weight trains (the reference the cheap methods are measured against).
- ``coop``: CoOp learnable text context on an image-text encoder (``adapters.coop``); the image tower is frozen
  and the logits are the model's own image-text similarities to the class prompts. The head is not used: it
  stays frozen at zero (kept only so the folder has the same files as every method).
- ``ace-lora``: ACE-LoRA on an image-text encoder (``adapters.ace_lora``): LoRA on q/k/v of both towers, ACE-HGNN
  on the projected image tokens, trained with the label-guided InfoNCE against a text per image (``contrastive``);
  logits are zero-shot scores against the class prompts. No head (frozen zeros, as for ``coop``).

The frozen base stays in eval mode while training (no dropout or stochastic depth). Batch-norm layers stay in
eval mode whatever the method, ``full`` included: small fine-tuning batches would otherwise overwrite their
ImageNet statistics.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..encoder import Encoder, Tokens
from ..spec import EncoderSpec
from .methods import AdapterError, Method, get_method, method_names
from .settings import TASKS, tuples_from_json  # noqa: F401  (re-exported)

_LEGACY_SLOTS = ("ace", "coop", "ace_lora")
"""Attributes that were ``None`` on an ``AdaptedEncoder`` of another method before the one adapter slot."""


def __getattr__(name: str) -> Any:
    """``METHODS`` and ``TEXT_METHODS``: the registered methods (and those needing a text tower), read live."""
    if name == "METHODS":
        return method_names()
    if name == "TEXT_METHODS":
        return tuple(m for m in method_names() if get_method(m).needs_text)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_method(method: str) -> None:
    """Refuse a method name encoderzoo does not have, listing those it has."""
    get_method(method)


def head_outputs(task: str, num_labels: int) -> int:
    """Logits the head needs: one for binary (sigmoid), one per class or label otherwise."""
    if task not in TASKS:
        raise AdapterError(f"unknown task {task!r}; expected one of {TASKS}")
    return 1 if task == "binary" else num_labels


class AdaptedEncoder(nn.Module):
    """``encoder`` adapted by ``method`` (configured by ``method_config``) with a linear head of ``num_outputs``.

    The encoder is modified in place (its trunk may be wrapped by peft or by the prompt wrapper).
    """

    def __init__(
        self,
        encoder: Encoder,
        method: str,
        method_config: Mapping[str, Any],
        num_outputs: int,
        *,
        folder: str | os.PathLike[str] | None = None,
        lora_folder: str | os.PathLike[str] | None = None,
    ) -> None:
        """``folder``: an adapted folder whose files the method reads while building (a saved peft LoRA adapter
        instead of a fresh one); ``lora_folder`` is its former name (deprecated)."""
        super().__init__()
        record = get_method(method)
        if lora_folder is not None:
            warnings.warn("AdaptedEncoder(lora_folder=) is deprecated; pass folder=", DeprecationWarning, stacklevel=2)
            if folder is not None and Path(folder) != Path(lora_folder):
                raise AdapterError(f"folder={folder!s} and the deprecated lora_folder={lora_folder!s} disagree")
            folder = lora_folder
        self.method_record: Method = record
        self.encoder = encoder
        self.method = method
        self.spec: EncoderSpec = dataclasses.replace(encoder.spec, name=f"{encoder.spec.name}+{method}")
        """The base's spec under the name ``BASE+METHOD`` (what probes and the embedding cache record)."""
        self.method_config = dict(method_config)
        encoder.requires_grad_(record.trains_encoder)
        adapter = record.build(encoder, record.settings_from(self.method_config), Path(folder) if folder else None)
        if adapter is not None:
            setattr(self, record.slot, adapter)  # registered as a submodule: its tensors are SLOT.*
        self.head = nn.Linear(self.embed_dim, num_outputs)
        if not record.uses_head:  # logits from the adapter (image-text similarity): the head stays at zero
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
            self.head.requires_grad_(False)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name not in _LEGACY_SLOTS:
                raise
            warnings.warn(
                f"AdaptedEncoder.{name} of a {self.method} adapter is deprecated (it is None); use .adapter",
                DeprecationWarning,
                stacklevel=2,
            )
            return None

    @property
    def adapter(self) -> nn.Module | None:
        """The method's module (``None`` where the method changed the encoder in place or trains only the head)."""
        return self._modules.get(self.method_record.slot)

    @property
    def transform(self) -> nn.Module:
        return self.encoder.transform

    @property
    def embed_dim(self) -> int:
        return self.encoder.spec.output_dim

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, spec.output_dim)`` of the adapted encoder (what probes and the engine see)."""
        return self.method_record.embed(self, pixels)

    forward = embed

    def classify(self, pixels: torch.Tensor) -> torch.Tensor:
        """Head logits ``(N, num_outputs)`` (``coop``, ``ace-lora``: from image-text similarities)."""
        return self.method_record.classify(self, pixels)

    @property
    def contrastive(self) -> bool:
        """True when the loop trains ``contrastive_loss`` (image-text pairs) instead of a loss on ``classify``."""
        return self.method_record.contrastive_loss is not None

    def contrastive_loss(self, pixels: torch.Tensor, rows, targets: torch.Tensor) -> torch.Tensor:
        """``ace-lora``: label-guided InfoNCE of the images of train ``rows`` against their texts (batch mean)."""
        if self.method_record.contrastive_loss is None:
            raise AdapterError(f"method {self.method} trains a classification loss, not a contrastive one")
        return self.method_record.contrastive_loss(self, pixels, rows, targets)

    @property
    def base_frozen(self) -> bool:
        """True when no encoder weight trains (``head``, ``ace-hgnn``, ``coop``): the encoder's outputs for an image
        never change during training, so the loop computes them once (``frozen_features``) instead of every epoch."""
        return self.method_record.frozen_base

    @torch.no_grad()
    def frozen_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the frozen encoder gives the trainable part: the embedding (``head``), or the ACE-HGNN nodes
        and global affinity row (``ace-hgnn``; a ``(N, 0)`` row where the encoder has no class token)."""
        if not self.base_frozen:
            raise AdapterError(f"method {self.method} trains encoder weights: there are no frozen features")
        return self.method_record.frozen_features(self, pixels)

    def classify_features(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Head logits from ``frozen_features`` output: equal to ``classify`` on the same pixels."""
        return self.method_record.classify_features(self, features)

    def forward_tokens(self, pixels: torch.Tensor) -> Tokens:
        return self.encoder.forward_tokens(pixels)

    def train(self, mode: bool = True) -> AdaptedEncoder:
        """The frozen base stays in eval mode (no dropout or stochastic depth, batch-norm statistics frozen);
        only the method's own modules (head, ACE-HGNN, peft's LoRA dropout) follow ``mode``. With ``full`` the
        encoder trains too, but its batch-norm statistics stay frozen."""
        super().train(mode)
        if not self.method_record.trains_encoder:
            self.encoder.eval()
            for name, module in self.encoder.named_modules():
                if name.endswith("lora_dropout"):
                    module.train(mode)
        for module in self.encoder.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Every trainable tensor outside the head (prompts, ACE-HGNN, LoRA, or the whole encoder for ``full``)."""
        return {
            name: p.detach().cpu().contiguous()
            for name, p in self.named_parameters()
            if p.requires_grad and not name.startswith("head.")
        }

    def load_trainable_state(self, state: Mapping[str, torch.Tensor], origin: str) -> None:
        """Load what ``trainable_state`` wrote, refusing any missing, unexpected or reshaped tensor."""
        expected = {name: p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("head.")}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or wrong:
            raise AdapterError(
                f"{origin} does not fit a {self.method} adapter on {self.spec.name}: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}"
            )
        with torch.no_grad():
            for name, tensor in state.items():
                expected[name].copy_(tensor)

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameter counts, the head included."""
        params = list(self.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def extra_repr(self) -> str:
        return f"method={self.method}, config={self.method_config}"
