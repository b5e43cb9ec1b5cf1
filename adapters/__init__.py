"""encoderzoo.adapters: cheap adaptation of zoo encoders, one module per method, one training loop for all.

- ``lora``: peft LoRA on ``spec.lora_targets`` (saved in peft's own file layout);
- ``prompt``: visual prompt tuning, shallow and deep, at ``spec.prompt_insertion``;
- ``ace_hgnn``: the hypergraph context module of ACE-LoRA (dense; ``ace_hgnn_graph`` on torch-geometric);
- ``model``: ``AdaptedEncoder`` (a method + a classification head on a zoo encoder);
- ``training``: the fine-tuning loop (AdamW, cosine warmup, early stopping, atomic checkpoints, DDP);
- ``folder``: the adapted folder (``load("local-dir:DIR")`` rebuilds it); ``adapt``: the ``encoderzoo adapt`` job.

Installed as ``encoderzoo.adapters`` (the bare name ``adapters`` belongs to an unrelated PyPI package).
"""

from .adapt import adapt
from .folder import load_adapted, save_adapted
from .model import METHODS, AdaptedEncoder, AdapterError
from .training import TrainConfig, TrainingDivergedError, fit

__all__ = [
    "METHODS",
    "AdaptedEncoder",
    "AdapterError",
    "TrainConfig",
    "TrainingDivergedError",
    "adapt",
    "fit",
    "load_adapted",
    "save_adapted",
]
