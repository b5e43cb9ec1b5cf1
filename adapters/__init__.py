"""encoderzoo.adapters: cheap adaptation of zoo encoders, one module per method, one training loop for all.

- ``lora``: peft LoRA on ``spec.lora_targets`` (saved in peft's own file layout);
- ``prompt``: visual prompt tuning, shallow and deep, at ``spec.prompt_insertion``;
- ``ace_hgnn``: the hypergraph context module of ACE-LoRA (dense; ``ace_hgnn_graph`` on torch-geometric);
- ``methods``: the method registry (``Method``, ``register``, ``get_method``); every method module registers its
  record on import (``baselines``: head and full), so importing this package fills it;
- ``model``: ``AdaptedEncoder`` (a method + a classification head on a zoo encoder);
- ``training``: the fine-tuning loop (AdamW, cosine warmup, early stopping, atomic checkpoints, DDP);
- ``folder``: the adapted folder (``load("local-dir:DIR")`` rebuilds it); ``adapt``: the ``encoderzoo adapt`` job.

Installed as ``encoderzoo.adapters`` (the bare name ``adapters`` belongs to an unrelated PyPI package).
"""

from typing import Any

# The built-in methods register their records on import; METHODS lists them in this order.
# isort: off
from . import baselines, lora, prompt, ace_hgnn, coop, ace_lora  # noqa: F401

# isort: on
from .adapt import adapt
from .folder import load_adapted, save_adapted
from .methods import Method, get_method, method_names, register, unregister
from .model import AdaptedEncoder, AdapterError
from .training import TrainConfig, TrainingDivergedError, fit


def __getattr__(name: str) -> Any:
    """``METHODS``: every registered method's name, read live (a method registered later is in it)."""
    if name == "METHODS":
        return method_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "METHODS",
    "AdaptedEncoder",
    "AdapterError",
    "Method",
    "TrainConfig",
    "TrainingDivergedError",
    "adapt",
    "fit",
    "get_method",
    "load_adapted",
    "method_names",
    "register",
    "save_adapted",
    "unregister",
]
