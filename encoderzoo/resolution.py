"""Running an encoder at another input resolution: size checks, the derived spec, position-embedding resampling.

``encoderzoo.load(name, image_size=S)`` builds the timm module at ``S`` (``input_size=S`` and, for ViTs, the
architecture's ``img_size=S``) and fits the checkpoint to it the way each family's upstream does at inference:

========================  ============================================================================
family                    absolute position embeddings at another size
========================  ============================================================================
DINOv2, RAD-DINO          transformers ``Dinov2Model.interpolate_pos_encoding``: bicubic to the new grid
                          size, ``align_corners=False``, no antialias, in float32
DINOv2 with registers     transformers ``Dinov2WithRegistersModel`` (= facebookresearch/dinov2's ``*_reg``
                          hub models, ``interpolate_antialias=True, interpolate_offset=0``): the same, antialiased
MedSigLIP                 transformers ``SiglipVisionModel(..., interpolate_pos_encoding=True)``: bicubic,
                          no antialias
BiomedCLIP and any other  timm ``resample_abs_pos_embed`` defaults (bicubic, antialiased), which is what
timm ViT                  open_clip's ``force_image_size`` / ``set_input_size`` does to its timm tower
DINOv3                    nothing to resample: RoPE positions are computed for the grid of the input
CNNs, MedViTV2            nothing to resample: convolutions, pooling and windowed attention take any size
                          their strides allow
========================  ============================================================================

The facebookresearch/dinov2 hub models without registers resample with a ``scale_factor`` of
``(new + 0.1) / old`` instead of the target size; transformers (the reference here, and RAD-DINO's own
library) uses the size. Both give the same grid, sampled at positions up to 0.22 of a source cell apart at
518 -> 224 px.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from .errors import InputError
from .spec import EncoderSpec


class ImageSizeError(InputError):
    """The requested input size does not fit the encoder's patch size or strides."""


@dataclass(frozen=True)
class PosEmbedResampling:
    """How a family's absolute position embeddings are resampled to another grid."""

    antialias: bool
    reference: str
    interpolation: str = "bicubic"


_NO_ANTIALIAS_DINOV2 = PosEmbedResampling(False, "transformers Dinov2Model.interpolate_pos_encoding")
_REGISTERS_DINOV2 = PosEmbedResampling(True, "transformers Dinov2WithRegistersModel.interpolate_pos_encoding")
_SIGLIP = PosEmbedResampling(False, "transformers SiglipVisionEmbeddings.interpolate_pos_encoding")
_TIMM = PosEmbedResampling(True, "timm.layers.resample_abs_pos_embed (open_clip set_input_size)")

_CNN_RULES: dict[str, tuple[int, int, str]] = {
    # architecture prefix: (multiple, minimum, why)
    "medvit_v2": (16, 112, "its third stage (stride 16) must hold a 7x7 neighborhood-attention window"),
    "tf_efficientnet": (1, 32, "TensorFlow 'same' padding takes any size; below 32 px the last stage is padding"),
}
_DEFAULT_CNN_RULE = (32, 32, "the network's total stride is 32")


def pos_embed_resampling(spec: EncoderSpec) -> PosEmbedResampling:
    """The upstream rule for resampling ``spec``'s absolute position embeddings (see the module docstring)."""
    if spec.family in ("dinov2", "rad-dino"):
        return _REGISTERS_DINOV2 if spec.num_prefix_tokens > 1 else _NO_ANTIALIAS_DINOV2
    if spec.family == "medsiglip":
        return _SIGLIP
    return _TIMM


def size_rule(spec: EncoderSpec) -> tuple[int, int, str]:
    """``(multiple, minimum, reason)`` every input size of ``spec`` must satisfy."""
    if spec.patch_size is not None:
        return spec.patch_size, spec.patch_size, f"its patch size is {spec.patch_size}"
    for prefix, rule in _CNN_RULES.items():
        if spec.architecture.startswith(prefix):
            return rule
    return _DEFAULT_CNN_RULE


def check_image_size(spec: EncoderSpec, size: int) -> None:
    """Raise ``ImageSizeError`` (saying which sizes work) unless ``size`` fits ``spec``."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise ImageSizeError(f"image_size must be an int number of pixels, got {size!r}")
    multiple, minimum, why = size_rule(spec)
    if size < minimum or size % multiple:
        below = size - size % multiple if multiple > 1 else size
        near = sorted({s for s in (below, below + multiple) if s >= minimum})
        hint = f"; the nearest that work: {', '.join(map(str, near))}" if near and multiple > 1 else ""
        rule = f"a multiple of {multiple} and at least {minimum}" if multiple > 1 else f"at least {minimum}"
        raise ImageSizeError(
            f"{spec.name} cannot run at image_size={size}: it must be {rule} ({why}){hint}. "
            f"Its native size is {spec.input_size}."
        )


def at_image_size(spec: EncoderSpec, size: int | None) -> EncoderSpec:
    """A copy of ``spec`` that builds and preprocesses at ``size`` (``spec`` itself when ``size`` is None or current).

    The name stays; ``input_size`` and, for ViTs, the architecture's ``img_size`` change, and
    ``native_input_size`` remembers the size of the canonical weights, so the size flows into the embedding cache
    key, ``results.json``, saved folders and cards. Back at the native size the spec is the native one again.
    """
    if size is None or size == spec.input_size:
        return spec
    check_image_size(spec, size)
    native = spec.native_input_size or spec.input_size
    arch_kwargs = dict(spec.arch_kwargs)
    if spec.patch_size is not None:
        arch_kwargs["img_size"] = size
    return dataclasses.replace(
        spec, input_size=size, arch_kwargs=arch_kwargs, native_input_size=None if size == native else native
    )


def pos_embed_prefix_tokens(trunk: nn.Module) -> int:
    """Entries of ``trunk.pos_embed`` that belong to prefix tokens (0 when timm folds them elsewhere)."""
    return 0 if getattr(trunk, "no_embed_class", False) else int(getattr(trunk, "num_prefix_tokens", 0))


def fit_state_to_size(
    state: dict[str, torch.Tensor],
    spec: EncoderSpec,
    weights_size: int,
    trunk: nn.Module,
    key: str = "trunk.pos_embed",
) -> dict[str, torch.Tensor]:
    """Resample ``state[key]`` from the grid of ``weights_size`` to the grid ``trunk`` was built for.

    ``spec`` names the family (hence the upstream rule). Only a position embedding of exactly the
    ``weights_size`` grid is resampled; anything else is left for the strict load to report, so a checkpoint of
    the wrong size is never silently stretched to fit.
    """
    target = getattr(trunk, "pos_embed", None)
    if key not in state or target is None or spec.patch_size is None:
        return state
    grid = tuple(trunk.patch_embed.grid_size)
    old = weights_size // spec.patch_size
    prefix = pos_embed_prefix_tokens(trunk)
    pos = state[key]
    if grid == (old, old) or pos.ndim != 3 or pos.shape[1] != old * old + prefix:
        return state
    rule = pos_embed_resampling(spec)
    resampled = resample_abs_pos_embed(
        pos,
        new_size=list(grid),
        old_size=[old, old],
        num_prefix_tokens=prefix,
        interpolation=rule.interpolation,
        antialias=rule.antialias,
    )
    return {**state, key: resampled}
