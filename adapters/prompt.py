"""Visual prompt tuning (Jia et al., "Visual Prompt Tuning", ECCV 2022), shallow and deep.

``add_prompts(encoder, PromptSettings(num_prompts, deep))`` replaces ``encoder.trunk`` by a ``PromptedTrunk``
around the frozen timm ViT. Its ``forward_features``:

1. embeds the patches and adds the class / register tokens and the position encoding exactly as timm does
   (``patch_embed`` then ``_pos_embed``), so prompts never receive an absolute position embedding;
2. inserts ``num_prompts`` learnable tokens at ``spec.prompt_insertion == "after_prefix"``: after the class and
   register tokens, before the patches;
3. runs the blocks; *deep* prompting replaces the prompt tokens by a fresh learnable set before every block
   (one set per block), *shallow* prompting lets the first set flow through;
4. applies the final norm and drops the prompt tokens again.

RoPE (DINOv3, timm ``Eva``): timm's attention rotates every token after ``attn.num_prefix_tokens``. During
the prompted forward that count is raised by ``num_prompts`` on each attention module (and restored after,
also on error), so the prompts are left unrotated like the class and register tokens, and every patch keeps
the rotation of its own grid position. Prompted ViTs are therefore exactly timm models with ``num_prompts``
extra register tokens that carry no position embedding; the tests use that as the reference.

Pooling never sees the prompts: they are removed from the ``forward_features`` output, so ``forward_head``
(class-token pooling, the mean over patch tokens, SigLIP's attention-pool head over the patch tokens) and
``Encoder.forward_tokens`` work on exactly the tokens of the base model, in the same form. (Prompts still
shape the patch and class tokens through attention in every block: that is the adaptation.)

Initialisation follows the paper's code: uniform in ``+-sqrt(6 / (3 * patch_size**2 + dim))``, Xavier-uniform
for a token produced by the patch-embedding projection (fan-in ``3 * patch_size**2``, fan-out ``dim``).

Encoders without an insertion point (CNNs, MedViTV2: no token sequence) raise ``UnsupportedAdapterError``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from timm.models.eva import Eva, EvaAttention
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from encoderzoo.adapted_folder import ADAPTER_FILE
from encoderzoo.adapted_methods import MethodFacts
from encoderzoo.encoder import Encoder
from encoderzoo.errors import EncoderZooError, UnsupportedAdapterError
from encoderzoo.spec import EncoderSpec

from .methods import Method, register


@dataclass(frozen=True)
class PromptSettings:
    """``num_prompts`` learnable tokens; ``deep=True`` gives every block its own set."""

    num_prompts: int = 10
    deep: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.num_prompts, bool) or not isinstance(self.num_prompts, int) or self.num_prompts < 1:
            raise ValueError(f"num_prompts must be a positive integer, got {self.num_prompts!r}")


def supported_methods(spec: EncoderSpec) -> tuple[str, ...]:
    """Adaptation methods ``spec`` supports, as ``encoderzoo adapt --method`` names them."""
    methods = ["head"]
    if spec.lora_targets:
        methods.append("lora")
    if spec.prompt_insertion is not None:
        methods += ["vpt", "vpt-deep"]
    methods += ["ace-hgnn", "full"]
    if getattr(spec, "text", None) is not None:  # image-text entries
        methods += ["coop", "ace-lora"]
    return tuple(methods)


class PromptedTrunk(nn.Module):
    """A frozen timm ViT (``base``) with visual prompts; timm's ``forward_features`` / ``forward_head`` interface.

    ``prompts`` has shape ``(depth if deep else 1, num_prompts, dim)``. Attributes not defined here (``blocks``,
    ``num_prefix_tokens``, ``embed_dim`` ...) are read from ``base``.
    """

    is_prompted = True

    def __init__(self, base: nn.Module, settings: PromptSettings, patch_size: int) -> None:
        super().__init__()
        self.base = base
        self.settings = settings
        self.num_prompts = settings.num_prompts
        self.deep = settings.deep
        depth = len(base.blocks) if settings.deep else 1
        ref = base.cls_token if base.cls_token is not None else next(base.parameters())
        shape = (depth, settings.num_prompts, base.embed_dim)
        self.prompts = nn.Parameter(torch.empty(shape, dtype=ref.dtype, device=ref.device))
        self.init_bound = math.sqrt(6.0 / (3 * patch_size**2 + base.embed_dim))
        with torch.no_grad():
            self.prompts.uniform_(-self.init_bound, self.init_bound)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base":
                raise
            return getattr(self.base, name)

    @property
    def _rope(self) -> bool:
        return isinstance(self.base, Eva)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """timm's forward_features with prompts after the prefix tokens; returns the tokens without prompts."""
        base, npt, P = self.base, self.base.num_prefix_tokens, self.num_prompts
        x = base.patch_embed(x)
        if self._rope:
            x, rope = base._pos_embed(x)
        else:
            x, rope = base.patch_drop(base._pos_embed(x)), None
        x = base.norm_pre(x)
        B = x.shape[0]
        x = torch.cat([x[:, :npt], self.prompts[0].to(x.dtype).expand(B, -1, -1), x[:, npt:]], dim=1)
        with self._prompts_unrotated():
            for i, block in enumerate(base.blocks):
                if self.deep and i > 0:
                    x = torch.cat([x[:, :npt], self.prompts[i].to(x.dtype).expand(B, -1, -1), x[:, npt + P :]], dim=1)
                x = block(x, rope=rope) if self._rope else block(x)
        x = base.norm(x)
        return torch.cat([x[:, :npt], x[:, npt + P :]], dim=1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The base model's head on prompt-free tokens (pooling exactly as without prompts)."""
        return self.base.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, *args, **kwargs):
        """Not forwarded to ``base``: the base's version would silently run without the prompts."""
        raise UnsupportedAdapterError(
            "forward_intermediates is not available on a prompted trunk; use forward_features (prompts removed)"
        )

    @contextmanager
    def _prompts_unrotated(self) -> Iterator[None]:
        """RoPE attention skips ``num_prefix_tokens`` leading tokens: count the prompts among them."""
        attns = [m for m in self.base.blocks.modules() if isinstance(m, EvaAttention)] if self._rope else []
        saved = [a.num_prefix_tokens for a in attns]
        try:
            for attn in attns:
                attn.num_prefix_tokens += self.num_prompts
            yield
        finally:
            for attn, npt in zip(attns, saved, strict=True):
                attn.num_prefix_tokens = npt

    def extra_repr(self) -> str:
        return f"num_prompts={self.num_prompts}, deep={self.deep}"


def add_prompts(encoder: Encoder, settings: PromptSettings | None = None) -> None:
    """Replace ``encoder.trunk`` by a ``PromptedTrunk``; afterwards only the prompts are trainable."""
    settings = settings or PromptSettings()
    spec = encoder.spec
    if spec.prompt_insertion is None:
        raise UnsupportedAdapterError(
            f"{spec.name} has no prompt insertion point (spec.prompt_insertion is None: convolutional and "
            f"hybrid encoders have no token sequence to put prompts into). It supports: "
            f"{', '.join(supported_methods(spec))}"
        )
    if getattr(encoder.trunk, "is_prompted", False):
        raise EncoderZooError(f"{spec.name} already has visual prompts; remove_prompts first")
    if type(encoder.trunk).__name__ == "PeftModel":
        raise EncoderZooError(f"{spec.name} carries a LoRA adapter; adapters do not stack (merge_lora first)")
    trunk = encoder.trunk
    _check_promptable(trunk, spec)
    encoder.requires_grad_(False)
    encoder.trunk = PromptedTrunk(trunk, settings, spec.patch_size)


def remove_prompts(encoder: Encoder) -> None:
    """Put the plain timm trunk back (its weights were never changed)."""
    if not getattr(encoder.trunk, "is_prompted", False):
        raise EncoderZooError(f"{encoder.spec.name} has no visual prompts to remove")
    encoder.trunk = encoder.trunk.base


def _check_promptable(trunk: nn.Module, spec: EncoderSpec) -> None:
    if not isinstance(trunk, (VisionTransformer, Eva)) or spec.patch_size is None:
        raise UnsupportedAdapterError(
            f"visual prompts need a timm VisionTransformer or Eva trunk; {spec.name} is {type(trunk).__name__}. "
            f"It supports: {', '.join(m for m in supported_methods(spec) if not m.startswith('vpt'))}"
        )
    if trunk.num_prefix_tokens != spec.num_prefix_tokens:
        raise EncoderZooError(
            f"{spec.name}: the trunk has {trunk.num_prefix_tokens} prefix tokens but the spec says "
            f"{spec.num_prefix_tokens}; fix spec.num_prefix_tokens"
        )
    if isinstance(trunk, Eva) and (getattr(trunk, "rope_mixed", False) or trunk.patch_drop is not None):
        raise UnsupportedAdapterError(
            f"{spec.name}: visual prompts support Eva trunks with one shared RoPE and no patch dropout"
        )


# -- the method records ---------------------------------------------------------------------------------------


def build(encoder: Encoder, settings: PromptSettings, folder: Path | None) -> None:
    """Prompts on the encoder's trunk (their values come from ``adapter.safetensors`` when loading a folder)."""
    add_prompts(encoder, settings)


CITATION = "Jia M, et al. Visual Prompt Tuning. ECCV 2022. arXiv:2203.12119"
for _name, _deep, _kind, _where in (
    ("vpt", False, "shallow", "at the input"),
    ("vpt-deep", True, "deep", "at every block"),
):
    register(
        Method(
            name=_name,
            settings=functools.partial(PromptSettings, deep=_deep),  # fixed: vpt is shallow, vpt-deep deep
            build=build,
            cli_options={"prompts": "num_prompts"},
            facts=MethodFacts(
                files=(ADAPTER_FILE,),
                card_text=f"visual prompt tuning ({_kind}): learned prompt tokens {_where}, frozen base, plus a "
                "linear head",
                citation=CITATION,
                tags=("visual-prompt-tuning",),
            ),
        )
    )
