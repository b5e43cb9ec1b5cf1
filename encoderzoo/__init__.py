"""encoderzoo: load medical-imaging foundation encoders with one call, adapt them cheaply, measure them quickly."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from .errors import (
    AttentionBackendError,
    CorruptWeightsError,
    EncoderZooError,
    GatedWeightsError,
    InputError,
    PinNotFoundError,
    StateDictMismatchError,
    UnknownEncoderError,
    UnsupportedAdapterError,
    WeightsError,
    WeightsNotFoundError,
)
from .registry import get_spec, list_encoders, register, unregister
from .spec import EncoderSpec, WeightSource

# torch and timm take seconds to import: the names below load them on first use, so `encoderzoo --help`, `list`,
# `info` and `card` answer at once. Importing ``encoderzoo.encoder`` registers encoderzoo's own timm
# architectures (``encoderzoo.models``).
_LAZY = {
    "Encoder": "encoder",
    "Tokens": "encoder",
    "load": "loading",
    "save_pretrained": "loading",
}

if TYPE_CHECKING:
    from .encoder import Encoder, Tokens
    from .loading import load, save_pretrained


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'encoderzoo' has no attribute {name!r}")


__all__ = [
    "AttentionBackendError",
    "CorruptWeightsError",
    "Encoder",
    "EncoderSpec",
    "EncoderZooError",
    "GatedWeightsError",
    "InputError",
    "PinNotFoundError",
    "StateDictMismatchError",
    "Tokens",
    "UnknownEncoderError",
    "UnsupportedAdapterError",
    "WeightSource",
    "WeightsError",
    "WeightsNotFoundError",
    "get_spec",
    "list_encoders",
    "load",
    "register",
    "save_pretrained",
    "unregister",
]
