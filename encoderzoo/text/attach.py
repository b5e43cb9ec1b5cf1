"""How ``encoderzoo.load`` decides on, reads and wires up a text tower (kept out of ``loading.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..names import parse_encoder_name
from ..spec import EncoderSpec
from .errors import NoTextTowerError
from .tokenizer import SAVED_SUBFOLDER, TokenizerSource


def canonical_text(spec: EncoderSpec, text: bool | None) -> bool:
    """Whether to build the text tower for a registry entry: only on request (``text=True``)."""
    if text and spec.text is None:
        raise NoTextTowerError.image_only(spec.name, ", so text=True cannot apply")
    return bool(text)


def saved_text_state(
    spec: EncoderSpec, state: dict[str, torch.Tensor], text: bool | None, origin: str
) -> tuple[bool, dict[str, torch.Tensor]]:
    """For a saved encoder: keep its text tower when it has one (``text=None``), require it (``True``), or drop
    it (``False``)."""
    has_text = any(k.startswith("text.") for k in state)
    if text and not has_text:
        if spec.text is None:
            raise NoTextTowerError.image_only(spec.name)
        raise NoTextTowerError(f"{origin} holds no text tower: it was saved from an encoder loaded without text=True")
    if text is False and has_text:
        state = {k: v for k, v in state.items() if not k.startswith("text.")}
    return (has_text if text is None else bool(text)), state


def tokenizer_source(
    name: str | EncoderSpec, spec: EncoderSpec, tokenizer: str | os.PathLike[str] | None
) -> TokenizerSource:
    """``tokenizer=FOLDER`` when given; the tokenizer saved next to a ``local-dir:`` / ``hf-hub:`` encoder;
    else the spec's pinned tokenizer repository."""
    if tokenizer is not None:
        return TokenizerSource(local_dir=Path(tokenizer).expanduser())
    ref = parse_encoder_name(name) if isinstance(name, str) else None
    if ref is not None and ref.kind == "local-dir":
        return TokenizerSource(local_dir=Path(ref.target).expanduser() / SAVED_SUBFOLDER)
    if ref is not None and ref.kind == "hf-hub":
        return TokenizerSource(repo_id=ref.target, revision=ref.revision, subfolder=SAVED_SUBFOLDER)
    return TokenizerSource.for_spec(spec)
