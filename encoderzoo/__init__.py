"""encoderzoo: load medical-imaging foundation encoders with one call, adapt them cheaply, measure them quickly."""

from __future__ import annotations

__version__ = "0.1.0"

from . import models  # noqa: E402,F401  (registers encoderzoo's own architectures with timm)
from .encoder import Encoder, Tokens  # noqa: E402
from .errors import (  # noqa: E402
    AttentionBackendError,
    CorruptWeightsError,
    EncoderZooError,
    GatedWeightsError,
    InputError,
    StateDictMismatchError,
    UnknownEncoderError,
    UnsupportedAdapterError,
    WeightsError,
    WeightsNotFoundError,
)
from .loading import load, save_pretrained  # noqa: E402
from .registry import get_spec, list_encoders, register, unregister  # noqa: E402
from .spec import EncoderSpec, WeightSource  # noqa: E402

__all__ = [
    "AttentionBackendError",
    "CorruptWeightsError",
    "Encoder",
    "EncoderSpec",
    "EncoderZooError",
    "GatedWeightsError",
    "InputError",
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
