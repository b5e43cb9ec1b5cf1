"""Text-tower checkpoint converters: the text half of a canonical image-text checkpoint -> ``text.*`` keys.

The towers keep upstream's module names, so conversion is a prefix change plus dropping index buffers that
older transformers versions saved (``position_ids``, ``token_type_ids``). Keys that match no rule are kept
under an ``unconverted:`` name, so the strict load lists them instead of ignoring them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..spec import EncoderSpec

StateDict = dict[str, torch.Tensor]
_INDEX_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def open_clip_text(state: StateDict) -> StateDict:
    """open_clip ``CustomTextCLIP`` with an HF text tower (BiomedCLIP): ``text.transformer.*``, ``text.proj.*``,
    ``logit_scale`` (and ``logit_bias`` when the model has one)."""
    out: StateDict = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key in ("logit_scale", "logit_bias"):
            out[f"text.{key}"] = value
        elif key.startswith("text.transformer.") and key.removeprefix("text.transformer.") in _INDEX_BUFFERS:
            continue
        elif key.startswith(("text.transformer.", "text.proj.")):
            out[key] = value
        elif key.startswith("text."):
            out[f"unconverted:{key}"] = value
    return out


def siglip_text(state: StateDict) -> StateDict:
    """transformers ``SiglipModel`` (MedSigLIP): ``text_model.*``, ``logit_scale``, ``logit_bias``."""
    out: StateDict = {}
    for key, value in state.items():
        if key in ("logit_scale", "logit_bias"):
            out[f"text.{key}"] = value
        elif key.startswith("text_model."):
            rest = key.removeprefix("text_model.")
            if rest not in _INDEX_BUFFERS:
                out[f"text.{rest}"] = value
    return out


TEXT_CONVERTERS: dict[str, Callable[[StateDict], StateDict]] = {
    "open_clip-hub": open_clip_text,
    "hf-siglip": siglip_text,
}


def convert_text(state: StateDict, spec: EncoderSpec) -> StateDict:
    """The ``text.*`` part of the Encoder state dict, from the canonical checkpoint of ``spec``."""
    converter = TEXT_CONVERTERS.get(spec.source.format)
    if converter is None:
        raise ValueError(f"{spec.name}: no text-tower converter for source format {spec.source.format!r}")
    text = converter(state)
    if not any(k.startswith("text.") and not k.startswith(("text.logit_",)) for k in text):
        from ..errors import StateDictMismatchError

        raise StateDictMismatchError(
            f"the checkpoint of {spec.name} holds no text tower (no text weights found): it is an image-only "
            "export. Load it with text=False, or use the full image-text checkpoint."
        )
    return text
