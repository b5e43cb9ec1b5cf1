"""ACE-LoRA (icon-lab/ACE-LoRA) building blocks: LoRA on q, k, v of every block of both towers of an image-text
encoder, ACE-HGNN on the projected image tokens, and the label-guided contrastive loss.

Defaults follow the paper's released configuration (``checkpoint/model_hyperparameters.txt``, ``lora.py``):
``r=4``, ``alpha=1`` (scale ``alpha / r``), LoRA dropout 0.1 on the LoRA branch's input, LoRA on ``q``, ``k``, ``v``
of all 12 blocks of both towers, ACE-HGNN with ``top_k=5`` and a 128-wide bottleneck, a learnable logit scale
initialized from the model's (used as a plain multiplier, as upstream's ``CLIPLossACE_HGAT`` does), AdamW
(lr 1e-3, weight decay 1e-2, betas 0.9/0.999) with a one-epoch linear warmup and a cosine decay.

Fused ``qkv`` projections (timm ViTs) get three separate low-rank updates, one per ``q``/``k``/``v`` slice of the
output, exactly as three LoRAs on separate ``q``, ``k``, ``v`` projections would (upstream splits the fused layer
into three): ``LoraLinear`` with ``slices=("q", "k", "v")``. Unfused projections (BERT's ``query``/``key``/``value``,
SigLIP's ``q_proj``/``k_proj``/``v_proj``) get one each.

Deviation from upstream, on purpose (see the brief of issue 10): ACE-HGNN is applied to the image tokens only;
the released configuration (``apply_gnn_encoders: both``) also runs a second ACE-HGNN on the text tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..adapted_folder import ADAPTER_FILE
from ..adapted_methods import MethodFacts
from ..errors import EncoderZooError
from .ace_hgnn import AceHgnn, AceSettings, ace_inputs
from .losses import label_guided_info_nce
from .methods import Method, register
from .settings import TASKS, tuples_from_json

if TYPE_CHECKING:
    from ..data import ImageDataset
    from ..encoder import Encoder
    from .model import AdaptedEncoder

_SLICE_NAMES = {"query": "q", "q_proj": "q", "key": "k", "k_proj": "k", "value": "v", "v_proj": "v"}


class AceLoraError(EncoderZooError, ValueError):
    """ACE-LoRA cannot be applied as asked."""


@dataclass(frozen=True)
class AceLoraSettings:
    """ACE-LoRA's hyperparameters (the released configuration's defaults)."""

    r: int = 4
    alpha: float = 1.0
    dropout: float = 0.1
    targets: tuple[str, ...] = ("q", "k", "v")
    top_k: int = 5
    hidden: int = 128
    learnable_logit_scale: bool = True

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise AceLoraError(
                f"need r >= 1, alpha > 0 and 0 <= dropout < 1; got r={self.r}, alpha={self.alpha}, "
                f"dropout={self.dropout}"
            )
        if not self.targets or set(self.targets) - {"q", "k", "v"}:
            raise AceLoraError(f"targets must be a non-empty subset of q, k, v; got {self.targets}")


class LoraLinear(nn.Module):
    """A frozen ``nn.Linear`` plus low-rank updates on slices of its output.

    ``slices``: the names of the equal output slices (``("q", "k", "v")`` for a fused projection, ``("q",)`` for a
    plain one); ``targets``: the slices that get an update ``scale * B_s A_s dropout(x)`` (``A_s`` Kaiming-uniform,
    ``B_s`` zero, so the wrapped layer starts equal to the base).
    """

    def __init__(
        self, base: nn.Linear, slices: Sequence[str], targets: Sequence[str], r: int, alpha: float, dropout: float
    ) -> None:
        super().__init__()
        if base.out_features % len(slices):
            raise AceLoraError(f"{base} cannot be split into {len(slices)} equal slices")
        self.base = base
        self.slices = tuple(slices)
        self.width = base.out_features // len(slices)
        self.scale = alpha / r
        self.lora_dropout = nn.Dropout(dropout)
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        for name in self.slices:
            if name in targets:
                a = torch.empty(r, base.in_features, device=base.weight.device, dtype=base.weight.dtype)
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                self.lora_A[name] = nn.Parameter(a)
                self.lora_B[name] = nn.Parameter(a.new_zeros(self.width, r))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if not len(self.lora_A):
            return out
        h = self.lora_dropout(x)
        parts = []
        for name in self.slices:
            if name in self.lora_A:
                parts.append((h @ self.lora_A[name].T) @ self.lora_B[name].T * self.scale)
            else:
                parts.append(out.new_zeros(*out.shape[:-1], self.width))
        return out + torch.cat(parts, dim=-1).to(out.dtype)

    def extra_repr(self) -> str:
        return f"slices={self.slices}, lora={tuple(self.lora_A)}, scale={self.scale}"


def _targets(tower: nn.Module) -> list[tuple[str, tuple[str, ...]]]:
    """``(module name, slices)`` of every q/k/v projection in a tower's blocks (attention pools are left alone)."""
    found = []
    for name, module in tower.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "qkv" and ".attn_pool" not in f".{name}":
            found.append((name, ("q", "k", "v")))
        elif leaf in _SLICE_NAMES:
            found.append((name, (_SLICE_NAMES[leaf],)))
    return found


def add_qkv_lora(tower: nn.Module, settings: AceLoraSettings) -> list[str]:
    """Wrap every q/k/v projection of ``tower`` in a ``LoraLinear``; returns the wrapped module names."""
    wrapped = []
    for name, slices in _targets(tower):
        parent_name, _, leaf = name.rpartition(".")
        parent = tower.get_submodule(parent_name) if parent_name else tower
        base = getattr(parent, leaf)
        if not set(slices) & set(settings.targets):
            continue
        setattr(parent, leaf, LoraLinear(base, slices, settings.targets, settings.r, settings.alpha, settings.dropout))
        wrapped.append(name)
    if not wrapped:
        raise AceLoraError(f"found no q/k/v projection to put LoRA on in {type(tower).__name__}")
    return wrapped


class AceLora(nn.Module):
    """ACE-LoRA on an image-text ``encoder`` (modified in place: its q/k/v projections get LoRA, every base
    weight frozen). ``image_features`` / ``text_features`` are L2-normalized; ``loss`` is the label-guided InfoNCE."""

    def __init__(self, encoder, settings: AceLoraSettings | None = None) -> None:
        super().__init__()
        settings = settings or AceLoraSettings()
        self.settings = settings
        self._encoder = [encoder]  # owned by the caller (AdaptedEncoder), not saved twice
        tower = encoder.require_text_tower()
        encoder.requires_grad_(False)
        self.image_lora = add_qkv_lora(encoder.trunk, settings)
        self.text_lora = add_qkv_lora(tower, settings)
        self.ace = AceHgnn(encoder.spec.output_dim, AceSettings(top_k=settings.top_k, hidden=settings.hidden))
        self.ace.to(tower.logit_scale.device)
        scale = tower.logit_scale.detach().float().reshape(()).exp()
        self.logit_scale = nn.Parameter(scale.clone(), requires_grad=settings.learnable_logit_scale)

    @property
    def encoder(self):
        return self._encoder[0]

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, D)``: the ACE-HGNN-enhanced global node of the projected image tokens, unit norm."""
        return F.normalize(self.ace(*ace_inputs(self.encoder, pixels)), dim=-1)

    def text_features(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, D)``: the (LoRA-adapted) text tower's embeddings of token ids, unit norm."""
        return self.encoder.encode_text(ids, normalize=True)

    def loss(self, pixels: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Label-guided InfoNCE of a batch of images and their texts (``labels``: ``(B,)`` or ``(B, L)``)."""
        return label_guided_info_nce(self.image_features(pixels), self.text_features(ids), self.logit_scale, labels)

    def logits(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits ``(B, P)`` of images against prompts, with the learned scale."""
        return self.logit_scale * self.image_features(pixels) @ self.text_features(ids).T


def trainable_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters by part: ``image_lora``, ``text_lora``, ``ace``, ``logit_scale``."""
    counts = {"image_lora": 0, "text_lora": 0, "ace": 0, "logit_scale": 0}
    encoder = model.encoder
    counts["image_lora"] = sum(p.numel() for n, p in encoder.trunk.named_parameters() if "lora_" in n)
    counts["text_lora"] = sum(p.numel() for n, p in encoder.require_text_tower().named_parameters() if "lora_" in n)
    counts["ace"] = sum(p.numel() for p in model.ace.parameters() if p.requires_grad)
    counts["logit_scale"] = int(model.logit_scale.requires_grad)
    return counts


# ---------------------------------------------------------------------------------------------------------------
# inside AdaptedEncoder and the fine-tuning loop


def class_prompts(label_names: Sequence[str], task: str, dataset: str) -> dict:
    """The zero-shot prompts used for validation, test and (without a text column) as training texts:
    the shipped prompt file of ``dataset`` (``encoderzoo.text.load_prompts``), as saved in ``method_config``."""
    from ..text import load_prompts

    prompts = load_prompts(list(label_names), task, None, dataset)
    return {
        "mode": prompts.mode,
        "positive": [list(p) for p in prompts.prompts],
        "negative": [list(n) for n in prompts.negative],
    }


def label_texts(labels: np.ndarray, prompts: dict) -> list[str]:
    """A training text per row from its labels: its class's first prompt (classes mode); for pairs, the first
    positive prompt of every present label, or the first negative prompt of every label when none is present
    (unknown labels count as absent)."""
    positive, negative = prompts["positive"], prompts["negative"]
    if prompts["mode"] == "classes":
        return [positive[int(y)][0] for y in labels]
    rows = labels.reshape(len(labels), -1)
    if rows.shape[1] != len(positive):  # binary in pairs mode: one label, the positive class
        rows = rows[:, -1:]
    out = []
    for row in rows:
        present = [positive[j][0] for j in range(len(positive)) if row[j] == 1]
        out.append(" ".join(present) if present else " ".join(n[0] for n in negative))
    return out


class AceLoraClassifier(nn.Module):
    """``AceLora`` plus the class prompts: zero-shot logits shaped like the loop wants (binary: ``l_1 - l_0``
    or ``l(pos) - l(neg)``; multi-label: ``l(pos) - l(neg)`` per label; multi-class: the class logits)."""

    def __init__(self, encoder, config: dict) -> None:
        super().__init__()
        config = dict(config)
        self.prompts, self.task = config.pop("prompts", None), config.pop("task", None)
        if not self.prompts or self.task not in TASKS:
            raise AceLoraError("ace-lora needs the dataset's task and class prompts in its method_config")
        self.ace_lora = AceLora(encoder, AceLoraSettings(**config))
        self.texts: list[str] | None = None
        """The training text of every train row (set by ``adapt`` before training)."""

    def _class_embeddings(self, groups: list[list[str]]) -> torch.Tensor:
        encoder = self.ace_lora.encoder
        flat = [t for g in groups for t in g]
        emb = self.ace_lora.text_features(encoder.tokenize(flat))
        parts = emb.split([len(g) for g in groups])
        return F.normalize(torch.stack([F.normalize(p, dim=-1).mean(0) for p in parts]), dim=-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        image = self.ace_lora.image_features(pixels)
        scale = self.ace_lora.logit_scale
        pos = scale * image @ self._class_embeddings(self.prompts["positive"]).T
        if self.prompts["mode"] == "pairs":
            return pos - scale * image @ self._class_embeddings(self.prompts["negative"]).T
        return pos[:, 1:2] - pos[:, 0:1] if self.task == "binary" else pos

    def loss(self, pixels: torch.Tensor, rows: np.ndarray, targets: torch.Tensor) -> torch.Tensor:
        """Label-guided InfoNCE of the batch against the training texts of its rows (mean over the batch)."""
        if self.texts is None:
            raise AceLoraError("ace-lora has no training texts: set .texts (adapt does) before training")
        ids = self.ace_lora.encoder.tokenize([self.texts[int(i)] for i in rows])
        return self.ace_lora.loss(pixels, ids, targets)


def dataset_config(config: dict, label_names: Sequence[str], task: str, dataset: str) -> dict:
    """The full ``method_config`` saved in the folder: every ``AceLoraSettings`` field (defaults written out),
    the task and the class prompts of ``dataset``."""
    from dataclasses import asdict

    settings = asdict(AceLoraSettings(**tuples_from_json(config)))
    return {
        **settings,
        "targets": list(settings["targets"]),
        "task": task,
        "prompts": class_prompts(label_names, task, dataset),
    }


# ---------------------------------------------------------------------------------------------------------------
# The method record: LoRA in both towers + ACE-HGNN, the contrastive loss, zero-shot logits; no head


def method_config(**config: Any) -> dict[str, Any]:
    """ACE-LoRA's saved ``method_config`` as ``AceLoraClassifier`` takes it: the ``AceLoraSettings`` fields plus
    the dataset's ``task`` and class ``prompts`` (checked there)."""
    return config


def build(encoder: Encoder, config: dict[str, Any], folder: Path | None) -> AceLoraClassifier:
    return AceLoraClassifier(encoder, config)


def classify(model: AdaptedEncoder, pixels: torch.Tensor) -> torch.Tensor:
    return model.adapter(pixels)


def contrastive_loss(model: AdaptedEncoder, pixels: torch.Tensor, rows, targets: torch.Tensor) -> torch.Tensor:
    return model.adapter.loss(pixels, rows, targets)


def prepare(config: dict[str, Any], data: ImageDataset, dataset: str) -> dict[str, Any]:
    """Zero-shot prompts for val/test (and training texts where the data has none)."""
    return dataset_config(config, data.label_names, data.task, dataset)


def before_training(model: AdaptedEncoder, data: ImageDataset) -> str:
    """A text per training image: the dataset's reports, else its labels' prompts."""
    texts = data.texts("train")
    model.adapter.texts = texts if texts is not None else label_texts(data.labels("train"), model.adapter.prompts)
    return "the dataset's text column" if texts is not None else "label prompts"


register(
    Method(
        name="ace-lora",
        settings=method_config,
        settings_fields=AceLoraSettings,
        build=build,
        slot="ace_lora",
        needs_text=True,
        uses_head=False,
        classify=classify,
        contrastive_loss=contrastive_loss,
        prepare=prepare,
        before_training=before_training,
        cli_options={"top_k": "top_k"},  # r=4, alpha=1, dropout=0.1: the paper's (AceLoraSettings), not --rank/--alpha
        facts=MethodFacts(
            files=(ADAPTER_FILE,),
            card_text="ACE-LoRA: LoRA on q/k/v of both towers and ACE-HGNN on the image tokens, trained with a "
            "label-guided image-text InfoNCE; scored zero-shot against class prompts (the head file is unused, all "
            "zeros)",
            citation="ACE-LoRA (https://github.com/icon-lab/ACE-LoRA).",
        ),
    )
)
