"""LoRA on a zoo encoder, through peft's public API only.

``add_lora`` wraps ``encoder.trunk`` (a timm module) in a ``peft.PeftModel`` built by ``get_peft_model`` with
LoRA on the modules named by ``spec.lora_targets`` (or ``LoraSettings.targets``). Names are peft's suffix
matches: ``"attn.qkv"`` adapts every module whose dotted name is ``attn.qkv`` or ends in ``.attn.qkv``.
Linear layers get peft's ``lora.Linear``, 1x1 convolutions (efficientnet-lite0) peft's ``lora.Conv2d``.

The adapted trunk keeps timm's interface (peft forwards ``forward_features`` / ``forward_head`` to the
wrapped module), so ``Encoder.embed`` and ``Encoder.forward_tokens`` work unchanged. The files written by
``save_lora`` are peft's own ``save_pretrained`` layout (``adapter_config.json`` + ``adapter_model.safetensors``):
plain ``peft.PeftModel.from_pretrained(timm_trunk, folder)`` loads them.

MedSigLIP: its spec targets the attention-pool (MAP) head as well as the blocks (``attn_pool.q``,
``attn_pool.kv``, ``attn_pool.proj``). The head is the only path from the tokens to the embedding and is an
attention layer like the blocks' own; leaving it frozen would let LoRA reshape the tokens but not how they are
pooled. Pass ``LoraSettings(targets=("attn.qkv", "attn.proj"))`` for blocks only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import SafetensorError
from torch import nn

from encoderzoo.adapted_folder import PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE
from encoderzoo.adapted_methods import MethodFacts
from encoderzoo.encoder import Encoder
from encoderzoo.errors import EncoderZooError, UnsupportedAdapterError

from .methods import Method, register

if TYPE_CHECKING:
    from encoderzoo.adapted_folder import AdaptedFolder

    from .model import AdaptedEncoder

ADAPTER_FILES = (PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE)
_LORA_LAYERS = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters. ``targets=None`` takes the encoder's ``spec.lora_targets``."""

    r: int = 8
    alpha: float = 16
    dropout: float = 0.0
    targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"LoRA rank r must be a positive integer, got {self.r!r}")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be positive, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")
        if self.targets is not None:
            if isinstance(self.targets, str) or not all(isinstance(t, str) and t for t in self.targets):
                raise ValueError(f"targets must be a tuple of module names like ('attn.qkv',), got {self.targets!r}")
            object.__setattr__(self, "targets", tuple(self.targets))


def has_lora(encoder: Encoder) -> bool:
    """True when ``encoder.trunk`` is a peft model (LoRA added or loaded, not yet merged or unloaded)."""
    return isinstance(encoder.trunk, PeftModel)


def resolve_targets(encoder: Encoder, settings: LoraSettings) -> tuple[str, ...]:
    """The target names for ``encoder``, each checked to match at least one Linear / Conv2d module."""
    spec = encoder.spec
    targets = settings.targets if settings.targets is not None else spec.lora_targets
    if not targets:
        raise UnsupportedAdapterError(
            f"{spec.name} names no LoRA target modules (spec.lora_targets is empty); "
            "pass LoraSettings(targets=(...)) with module names of its trunk"
        )
    names = {name: module for name, module in encoder.trunk.named_modules() if name}
    for target in targets:
        matched = [m for name, m in names.items() if name == target or name.endswith(f".{target}")]
        if not matched:
            candidates = sorted({_suffix(name) for name, m in names.items() if isinstance(m, _LORA_LAYERS)})
            raise EncoderZooError(
                f"LoRA target {target!r} matches no module of {spec.name}. Targets are module-name suffixes; "
                f"Linear / Conv2d layers of this trunk end in: {', '.join(candidates[:40])}"
            )
        wrong = sorted({type(m).__name__ for m in matched if not isinstance(m, _LORA_LAYERS)})
        if wrong:
            raise EncoderZooError(
                f"LoRA target {target!r} of {spec.name} matches {', '.join(wrong)} modules; "
                "LoRA adapts nn.Linear and nn.Conv2d layers only: name those"
            )
    return tuple(targets)


def add_lora(encoder: Encoder, settings: LoraSettings | None = None) -> None:
    """Wrap ``encoder.trunk`` in a peft LoRA model; afterwards only the LoRA parameters are trainable.

    The whole encoder (trunk and, for CLIP encoders, the projection) is frozen first.
    """
    settings = settings or LoraSettings()
    _require_plain(encoder, "add LoRA")
    targets = resolve_targets(encoder, settings)
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets),
        bias="none",
    )
    encoder.requires_grad_(False)
    trunk = encoder.trunk
    trunk.name_or_path = base_model_id(encoder)  # peft records it as base_model_name_or_path
    encoder.trunk = get_peft_model(trunk, config)


def base_model_id(encoder: Encoder) -> str:
    """What peft records as ``base_model_name_or_path``: the Hub repo of the weights, else the registry name."""
    return encoder.spec.source.repo_id or encoder.spec.name


def save_lora(encoder: Encoder, folder: str | os.PathLike[str]) -> Path:
    """Write the adapter with peft's ``save_pretrained`` (``adapter_config.json``, ``adapter_model.safetensors``)."""
    trunk = _require_lora(encoder, "save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trunk.save_pretrained(str(folder), save_embedding_layers=False)  # no Hub lookup of the base's config
    return folder


def load_lora(encoder: Encoder, folder: str | os.PathLike[str], *, trainable: bool = False) -> None:
    """Attach the adapter saved in ``folder`` with ``PeftModel.from_pretrained``, in place.

    ``trainable=True`` leaves the LoRA parameters trainable (to resume training); the base stays frozen.
    """
    _require_plain(encoder, "load LoRA")
    folder = Path(folder)
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise EncoderZooError(f"{folder} is not a peft LoRA folder: {', '.join(missing)} missing")
    encoder.requires_grad_(False)
    try:
        encoder.trunk = PeftModel.from_pretrained(encoder.trunk, str(folder), is_trainable=trainable)
    except (SafetensorError, RuntimeError, ValueError, KeyError, OSError) as err:  # JSONDecodeError is a ValueError
        raise EncoderZooError(
            f"the LoRA adapter in {folder} cannot be read ({type(err).__name__}: {err}); the files are damaged or "
            "incomplete: re-run the adaptation or download the folder again"
        ) from err


def merge_lora(encoder: Encoder) -> None:
    """Fold the LoRA update into the base weights; ``encoder.trunk`` becomes a plain timm module again."""
    encoder.trunk = _require_lora(encoder, "merge").merge_and_unload()


def unload_lora(encoder: Encoder) -> None:
    """Drop the LoRA layers; ``encoder.trunk`` becomes the plain timm module with its base weights untouched."""
    encoder.trunk = _require_lora(encoder, "unload").unload()


def _require_lora(encoder: Encoder, action: str) -> PeftModel:
    if not has_lora(encoder):
        raise EncoderZooError(f"cannot {action} LoRA: {encoder.spec.name} has no LoRA adapter (call add_lora first)")
    return encoder.trunk


def _require_plain(encoder: Encoder, action: str) -> None:
    if has_lora(encoder):
        raise EncoderZooError(
            f"cannot {action}: {encoder.spec.name} already carries a LoRA adapter; merge_lora or unload_lora first"
        )
    if getattr(encoder.trunk, "is_prompted", False):
        raise EncoderZooError(f"cannot {action}: {encoder.spec.name} carries visual prompts; adapters do not stack")


def _suffix(name: str) -> str:
    parts = [p for p in name.split(".") if not p.isdigit()]
    return ".".join(parts[-2:])


# -- the method record ----------------------------------------------------------------------------------------


def build(encoder: Encoder, settings: LoraSettings, folder: Path | None) -> None:
    """A fresh LoRA adapter, or the one saved in ``folder`` (peft reads its own files)."""
    if folder is not None:
        load_lora(encoder, folder)
    else:
        add_lora(encoder, settings)


def save(model: AdaptedEncoder, folder: Path) -> None:
    save_lora(model.encoder, folder)


def load(model: AdaptedEncoder, folder: AdaptedFolder) -> None:
    """Nothing left to load: ``build`` attached the saved adapter."""


register(
    Method(
        name="lora",
        settings=LoraSettings,
        build=build,
        save=save,
        load=load,
        cli_options={"rank": "r", "alpha": "alpha", "lora_dropout": "dropout"},
        facts=MethodFacts(
            files=ADAPTER_FILES,
            card_text="LoRA (peft) on the modules {targets}, frozen base, plus a linear head",
            citation="Hu EJ, et al. LoRA: Low-Rank Adaptation of Large Language Models. ICLR 2022. arXiv:2106.09685; "
            "implemented with Hugging Face PEFT (https://github.com/huggingface/peft).",
            tags=("lora", "peft"),
        ),
    )
)
