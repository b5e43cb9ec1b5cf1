"""CoOp (Zhou et al., 2022, "Learning to Prompt for Vision-Language Models"): learnable text context vectors.

For every class, the text tower reads ``[prefix] v_1 ... v_M  <class name>. [end] [pad ...]``: the ``M`` context
vectors ``v_i`` stand in for word embeddings (positions, token types and every other weight of the text tower are
the model's own and frozen), the class name's tokens follow, as in CoOp's class-token position "end". The image
tower is frozen; the class logits are the model's own image-text logits (``Encoder.similarity``: ``exp(logit_scale)
* cos`` for BiomedCLIP, ``+ logit_bias`` for MedSigLIP), with the scale and bias frozen. Only the context trains.

- ``unified`` context (default): one ``(M, width)`` context shared by all classes; ``class_specific``: one per
  class (``(C, M, width)``).
- Initialization: ``init="a chest x-ray of"`` takes the word embeddings of that phrase's tokens (``M`` is then
  its token count); otherwise ``M = context_length`` vectors are drawn from ``N(0, 0.02^2)`` (CoOp's defaults).
  With ``init`` the untrained prompts are exactly the texts ``"{init} {name}."``: the logits equal the zero-shot
  probe's for the template ``"{init} {}."``.

How the logits meet the fine-tuning loop's losses (``adapters.training``), the same way the zero-shot probe
turns similarities into probabilities:

- multi-class: the ``C`` class logits; the loop's cross-entropy is a softmax over classes. For MedSigLIP this
  trains a softmax over its sigmoid logits (the shared bias cancels), like CoOp on CLIP and like the zero-shot
  probe, not SigLIP's per-pair sigmoid.
- binary: one logit ``l_1 - l_0``; ``sigmoid(l_1 - l_0)`` is the two-class softmax's ``P(class 1)``, so the loop's
  BCE and ``probabilities`` are those of the two-class softmax.
- multi-label: CheXzero-style pairs: per label ``l(name) - l(no name)``, the prompts ``"v_1..v_M {name}."`` and
  ``"v_1..v_M no {name}."``; the loop's per-label BCE is the softmax over each (positive, negative) pair.

The context is a plain parameter of ``AdaptedEncoder`` (``coop.context``), so it is saved in
``adapter.safetensors`` like the other generic adapters; the class names, task and context settings are in
``method_config``.

The context enters the text tower through a forward hook on its word-embedding module, active only inside
``CoopPrompts.text_features``: the tower itself is not modified, and ``encode_text`` elsewhere is unaffected.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..adapted_folder import ADAPTER_FILE
from ..adapted_methods import MethodFacts
from ..errors import EncoderZooError
from .methods import Method, register
from .settings import TASKS

if TYPE_CHECKING:
    from ..data import ImageDataset
    from ..encoder import Encoder
    from .model import AdaptedEncoder

WORD_EMBEDDINGS = {"bert": "transformer.embeddings.word_embeddings", "siglip": "embeddings.token_embedding"}
"""The word-embedding module of each text-tower architecture, where the context vectors are spliced in."""
INIT_STD = 0.02


class CoopError(EncoderZooError, ValueError):
    """CoOp prompts cannot be built as asked (class names, context length, task)."""


@dataclass(frozen=True)
class CoopSettings:
    """CoOp's settings, stored as the adapted folder's ``method_config``.

    ``class_names`` and ``task`` come from the dataset (``adapt`` fills them from its label names); a label's
    text is its name with ``_`` as spaces, lower-cased, as in the zero-shot prompts.
    """

    context_length: int = 16
    class_specific: bool = False
    init: str | None = None
    class_names: tuple[str, ...] = field(default=())
    task: str = field(default="", metadata={"from_dataset": True})

    def __post_init__(self) -> None:
        if self.context_length < 1:
            raise CoopError(f"context_length must be >= 1, got {self.context_length}")
        if self.task not in TASKS:
            raise CoopError(f"CoOp needs the dataset's task ({', '.join(TASKS)}), got {self.task!r}")
        if not self.class_names or not all(isinstance(n, str) and n.strip() for n in self.class_names):
            raise CoopError("CoOp needs a non-empty text for every class (class_names)")
        if self.task == "binary" and len(self.class_names) != 2:
            raise CoopError(f"a binary task has two classes, got class names {list(self.class_names)}")
        if self.init is not None and not self.init.strip():
            raise CoopError("init must be a phrase such as 'a chest x-ray of', or None for random context")


def class_texts(label_names: Sequence[str]) -> tuple[str, ...]:
    """The text of each label (``_`` as spaces, lower-cased); bare numbers are refused: no text tower reads them."""
    bare = [name for name in label_names if str(name).strip().isdigit()]
    if bare:
        raise CoopError(
            f"the labels {bare} are bare numbers, which no text tower can read: give the class texts "
            "(--class-names 'normal lungs|pneumonia', one per label, in label order)"
        )
    return tuple(str(name).replace("_", " ").lower() for name in label_names)


def dataset_settings(config: dict[str, Any], label_names: Sequence[str], task: str) -> dict[str, Any]:
    """``config`` completed with the dataset's class texts (unless given) and task, as saved in the folder."""
    out = dict(config)
    names = out.get("class_names") or class_texts(label_names)
    if len(names) != len(label_names):
        raise CoopError(f"{len(names)} class names for {len(label_names)} labels {list(label_names)}")
    out["class_names"] = list(names)
    out["task"] = task
    return out


class CoopPrompts(nn.Module):
    """Learnable context for ``encoder``'s text tower; ``forward(image_emb)`` gives the loop's logits."""

    def __init__(self, encoder: Encoder, settings: CoopSettings) -> None:
        super().__init__()
        self.settings = settings
        self._encoder = [encoder]  # not a submodule: the encoder belongs to AdaptedEncoder, and is not saved twice
        tower = encoder.require_text_tower()
        architecture = tower.spec.architecture
        if architecture not in WORD_EMBEDDINGS:
            raise CoopError(f"CoOp does not know where the word embeddings of a {architecture!r} text tower are")
        self._embedding_name = WORD_EMBEDDINGS[architecture]
        embedding: nn.Embedding = tower.get_submodule(self._embedding_name)
        texts = [f"{name}." for name in settings.class_names]
        if settings.task == "multi-label":
            texts += [f"no {name}." for name in settings.class_names]
        ids, start, context_ids = self._prompt_ids(encoder, texts)
        self.register_buffer("ids", ids, persistent=False)
        self.start = start
        self.length = len(context_ids)
        classes = len(settings.class_names)
        if settings.init is not None:
            init = embedding.weight.detach()[torch.tensor(context_ids, device=embedding.weight.device)].float().cpu()
        else:
            init = torch.randn(self.length, embedding.embedding_dim) * INIT_STD
        if settings.class_specific:
            init = init.expand(classes, -1, -1).clone()
        self.context = nn.Parameter(init)

    def _prompt_ids(self, encoder: Encoder, texts: list[str]) -> tuple[torch.Tensor, int, list[int]]:
        """Token ids ``(len(texts), L)`` with ``M`` context slots after the tokenizer's leading special tokens;
        the slot start and the ids placed in the slots (the ``init`` phrase's tokens, or filler)."""
        tower = encoder.require_text_tower()
        tokenizer, spec = tower.tokenizer, tower.spec
        empty = tokenizer([""])[0].tolist()
        if self.settings.init is not None:
            context_ids = tokenizer.hf(self.settings.init, add_special_tokens=False)["input_ids"]
            if not context_ids:
                raise CoopError(f"init {self.settings.init!r} has no tokens")
        else:
            filler = next(i for i in range(spec.vocab_size) if i != spec.pad_token_id)  # replaced before use
            context_ids = [filler] * self.settings.context_length
        rows, starts = [], set()
        for text, full in zip(texts, tokenizer(texts).tolist(), strict=True):
            start = next((i for i, (a, b) in enumerate(zip(empty, full, strict=True)) if a != b), len(full))
            starts.add(start)
            needed = len(tokenizer.hf(text)["input_ids"]) + len(context_ids)
            if needed > spec.context_length:
                raise CoopError(
                    f"the prompt for {text!r} needs {needed} tokens ({len(context_ids)} of context) but the text "
                    f"tower reads {spec.context_length}: use a shorter context length or class text"
                )
            rows.append((full[:start] + context_ids + full[start:])[: spec.context_length])
        if len(starts) != 1:
            raise CoopError(f"the tokenizer starts the class texts at different positions {sorted(starts)}")
        start = starts.pop()
        return torch.tensor(rows, dtype=torch.int64), start, context_ids

    @contextmanager
    def _spliced(self, tower: nn.Module) -> Iterator[None]:
        """Replace the word embeddings at the context slots by the context vectors while the block runs."""
        start, end, context = self.start, self.start + self.length, self.context

        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
            ctx = context if context.ndim == 3 else context.expand(out.shape[0], -1, -1)
            if ctx.shape[0] != out.shape[0]:  # multi-label: positive and negative prompts share a class's context
                ctx = ctx.repeat(out.shape[0] // ctx.shape[0], 1, 1)
            return torch.cat([out[:, :start], ctx.to(out.dtype), out[:, end:]], dim=1)

        handle = tower.get_submodule(self._embedding_name).register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def text_features(self) -> torch.Tensor:
        """Unnormalized text embeddings of the prompts ``(P, D)``: the classes (multi-label: positives, then
        negatives)."""
        tower = self._encoder[0].require_text_tower()
        with self._spliced(tower):
            return tower(self.ids.to(tower.logit_scale.device))

    def similarities(self, image_emb: torch.Tensor) -> torch.Tensor:
        """The model's own image-text logits ``(N, P)`` of the images against every prompt."""
        return self._encoder[0].require_text_tower().logits(image_emb, self.text_features())

    def forward(self, image_emb: torch.Tensor) -> torch.Tensor:
        """The loop's logits: ``(N, C)`` multi-class, ``(N, 1)`` binary (``l_1 - l_0``), ``(N, L)`` multi-label
        (``l(name) - l(no name)``)."""
        logits = self.similarities(image_emb)
        if self.settings.task == "binary":
            return logits[:, 1:2] - logits[:, 0:1]
        if self.settings.task == "multi-label":
            labels = len(self.settings.class_names)
            return logits[:, :labels] - logits[:, labels:]
        return logits

    def extra_repr(self) -> str:
        kind = "class-specific" if self.settings.class_specific else "unified"
        return f"{kind} context of {self.length} tokens at position {self.start}, classes={self.settings.class_names}"


# ----------------------------------------------------------------------------------------------------------------
# The method record: the image tower frozen, the logits from the prompts; no head


def build(encoder: Encoder, settings: CoopSettings, folder: Path | None) -> CoopPrompts:
    return CoopPrompts(encoder, settings)


def classify(model: AdaptedEncoder, pixels: torch.Tensor) -> torch.Tensor:
    return model.adapter(model.encoder.embed(pixels))


def classify_features(model: AdaptedEncoder, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return model.adapter(features[0])


def prepare(config: dict[str, Any], data: ImageDataset, dataset: str) -> dict[str, Any]:
    """The class prompts are made from the dataset's label names."""
    return dataset_settings(config, data.label_names, data.task)


register(
    Method(
        name="coop",
        settings=CoopSettings,
        build=build,
        slot="coop",
        frozen_base=True,
        needs_text=True,
        uses_head=False,
        classify=classify,
        classify_features=classify_features,
        prepare=prepare,
        cli_options={
            "context_length": "context_length",
            "class_specific": "class_specific",
            "context_init": "init",
            "class_names": "class_names",
        },
        facts=MethodFacts(
            files=(ADAPTER_FILE,),
            card_text="CoOp: learned text context vectors before each class name in the frozen text tower; the "
            "logits are the model's own image-text similarities (the head file is unused, all zeros)",
            citation="Zhou K, et al. Learning to Prompt for Vision-Language Models. IJCV 2022. arXiv:2109.01134",
            tags=("prompt-learning", "zero-shot-image-classification"),
        ),
    )
)
