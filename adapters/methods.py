"""The method registry: one ``Method`` record per adaptation method, registered by the module that implements it.

``AdaptedEncoder`` (``model``), the ``encoderzoo adapt`` job (``adapt``), the folder (``folder``) and the training
loop ask the record instead of branching on the method's name; the record's ``facts`` (files, card text, citation,
tags) are registered with the core (``encoderzoo.adapted_methods``) for the folder checks and the model card.

The built-in records: ``baselines`` (head, full), ``lora``, ``prompt`` (vpt, vpt-deep), ``ace_hgnn``, ``coop``,
``ace_lora``; ``encoderzoo.adapters`` imports them, in that order, so ``import encoderzoo.adapters`` fills the
registry. A method from outside the package registers itself the same way: ``register(Method(...))``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..adapted_folder import ADAPTER_FILE
from ..adapted_methods import MethodFacts, register_method_facts, unregister_method_facts
from ..errors import EncoderZooError
from .settings import tuples_from_json

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..adapted_folder import AdaptedFolder
    from ..data import ImageDataset
    from ..encoder import Encoder
    from .model import AdaptedEncoder


class AdapterError(EncoderZooError):
    """An adapter cannot be built, trained, saved or loaded as asked."""


# -- what a method does unless its record says otherwise: a linear head on the encoder's embedding --------------


def encoder_embedding(model: AdaptedEncoder, pixels: torch.Tensor) -> torch.Tensor:
    return model.encoder.embed(pixels)


def head_logits(model: AdaptedEncoder, pixels: torch.Tensor) -> torch.Tensor:
    return model.head(model.embed(pixels))


def encoder_features(model: AdaptedEncoder, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (model.encoder.embed(pixels),)


def head_on_features(model: AdaptedEncoder, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return model.head(features[0])


def save_adapter_file(model: AdaptedEncoder, folder: Path) -> None:
    """Every trainable tensor outside the head into ``adapter.safetensors`` (if the method writes that file)."""
    if ADAPTER_FILE not in model.method_record.facts.files:
        return
    from safetensors.torch import save_file

    from ..atomic import atomic_write

    state = model.trainable_state()
    atomic_write(folder / ADAPTER_FILE, lambda tmp: save_file(state, tmp, metadata={"method": model.method}))


def load_adapter_file(model: AdaptedEncoder, folder: AdaptedFolder) -> None:
    """Load what ``save_adapter_file`` wrote (already read and checked by ``read_adapted_folder``)."""
    if ADAPTER_FILE in model.method_record.facts.files:
        model.load_trainable_state(folder.tensors[ADAPTER_FILE], str(folder.path / ADAPTER_FILE))


@dataclass(frozen=True)
class Method:
    """Everything encoderzoo knows about one adaptation method.

    The defaults describe a method that puts an optional module (``build``) on a frozen encoder and trains a
    linear head on the embedding; a record overrides what its method does differently.
    """

    name: str
    """The ``--method`` name, and the ``method`` of the folders it writes."""
    settings: Callable[..., Any]
    """The typed settings (a frozen dataclass), called with the fields of the saved ``method_config``."""
    build: Callable[[Encoder, Any, Path | None], nn.Module | None]
    """``build(encoder, settings, folder)``: the adapter module, or ``None`` where the method changes the encoder
    in place; ``folder``: an adapted folder whose own files the method reads while building (LoRA), else ``None``."""
    facts: MethodFacts
    """The files it writes, its card text, citation and tags (registered with the core)."""
    slot: str = "adapter"
    """The ``AdaptedEncoder`` attribute holding the module, so its tensors are saved as ``SLOT.*``. The built-in
    methods keep the names older folders and checkpoints use (``ace``, ``coop``, ``ace_lora``)."""
    trains_encoder: bool = False
    """Every encoder weight trains (``full``); otherwise the encoder is frozen and stays in eval mode."""
    frozen_base: bool = False
    """The encoder's outputs never change during training, so the loop computes ``frozen_features`` once."""
    needs_text: bool = False
    """The base is loaded with its text tower (``load(..., text=True)``)."""
    uses_head: bool = True
    """``False``: the logits come from the module; the head stays frozen at zero (kept so every folder has it)."""
    embed: Callable[[AdaptedEncoder, torch.Tensor], torch.Tensor] = encoder_embedding
    classify: Callable[[AdaptedEncoder, torch.Tensor], torch.Tensor] = head_logits
    frozen_features: Callable[[AdaptedEncoder, torch.Tensor], tuple[torch.Tensor, ...]] = encoder_features
    """What the frozen encoder gives the trainable part (only for ``frozen_base`` methods)."""
    classify_features: Callable[[AdaptedEncoder, tuple[torch.Tensor, ...]], torch.Tensor] = head_on_features
    """Logits from ``frozen_features``: equal to ``classify`` on the same pixels."""
    contrastive_loss: Callable[..., torch.Tensor] | None = None
    """``(model, pixels, rows, targets) -> loss``: the loop trains this instead of a loss on ``classify``."""
    save: Callable[[AdaptedEncoder, Path], None] = save_adapter_file
    """Write the method's files (``facts.files``) into a folder."""
    load: Callable[[AdaptedEncoder, AdaptedFolder], None] = load_adapter_file
    """Load them into a freshly built model."""
    prepare: Callable[[dict[str, Any], ImageDataset, str], dict[str, Any]] | None = None
    """``(method_config, data, dataset spec) -> method_config``: settings taken from the dataset (label names,
    prompts), saved in the folder."""
    before_training: Callable[[AdaptedEncoder, ImageDataset], str | None] | None = None
    """Give the model what training needs from the dataset; returns what ``results.json`` records as
    ``protocol.training_texts``."""
    cli_options: Mapping[str, str] = field(default_factory=dict)
    """``encoderzoo adapt`` option (its Python parameter name) -> settings field it feeds."""
    settings_fields: type | None = None
    """The dataclass whose fields a user may set (``--set``), where ``settings`` is not that dataclass itself."""

    def settings_from(self, config: Mapping[str, Any]) -> Any:
        """The typed settings from a ``method_config`` (JSON lists back to tuples); a key the method fixes
        (``vpt``'s ``deep``) or does not know is an ``AdapterError``."""
        fixed = set(self.settings.keywords) if isinstance(self.settings, functools.partial) else set()
        if fixed & set(config):
            raise AdapterError(
                f"method {self.name} fixes {sorted(fixed & set(config))}: leave them out of its settings"
            )
        try:
            return self.settings(**tuples_from_json(config))
        except TypeError as err:
            raise AdapterError(f"method {self.name} cannot take the settings {dict(config)}: {err}") from None


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make ``method`` known to ``AdaptedEncoder``, ``adapt``, the CLI, the folder checks and the card."""
    if method.name in _METHODS:
        raise AdapterError(f"an adaptation method named {method.name!r} is already registered")
    _METHODS[method.name] = method
    register_method_facts(method.name, method.facts)
    return method


def unregister(name: str) -> None:
    """Forget method ``name`` (tests register and remove toy methods)."""
    _METHODS.pop(name, None)
    unregister_method_facts(name)


def get_method(name: str) -> Method:
    """The record of method ``name``; ``AdapterError`` lists the methods there are."""
    if name not in _METHODS:
        raise AdapterError(f"unknown adaptation method {name!r}; choose from {', '.join(_METHODS)}")
    return _METHODS[name]


def method_names() -> tuple[str, ...]:
    """Every registered method, in registration order."""
    return tuple(_METHODS)


def settings_from_cli(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``method_config`` of method ``name`` from ``encoderzoo adapt``'s options (parameter name -> value)."""
    record = get_method(name)
    unknown = sorted(set(record.cli_options) - set(options))
    if unknown:
        raise AdapterError(f"method {name} reads options encoderzoo adapt does not have: {unknown}; use --set")
    return {setting: options[option] for option, setting in record.cli_options.items()}


def _user_fields(name: str) -> tuple[list[dataclasses.Field], dict[str, Any]] | None:
    """The fields of method ``name``'s settings a user may set, with their type hints (``None``: not described).
    A ``functools.partial`` fixes some fields; fields with ``metadata={"from_dataset": True}`` are filled by
    ``adapt`` from the dataset."""
    record = get_method(name)
    settings, fixed = record.settings_fields or record.settings, set()
    if isinstance(settings, functools.partial):
        settings, fixed = settings.func, set(settings.keywords)
    if not dataclasses.is_dataclass(settings):
        return ([], {}) if getattr(settings, "takes_no_settings", False) else None
    fields = [
        f for f in dataclasses.fields(settings) if f.init and f.name not in fixed and not f.metadata.get("from_dataset")
    ]
    return fields, typing.get_type_hints(settings)


def setting_fields(name: str) -> dict[str, Any] | None:
    """The settings a user may give method ``name`` and their defaults (``{}``: none; ``None``: not described,
    any key is passed on)."""
    described = _user_fields(name)
    if described is None:
        return None
    return {f.name: f.default if f.default is not dataclasses.MISSING else "(required)" for f in described[0]}


def settings_from_pairs(name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``encoderzoo adapt --set KEY=VALUE`` pairs as settings of method ``name``, each value converted to its
    field's type (``true``/``false``, numbers, ``none`` for optional fields, a JSON list for tuples); a method
    whose settings are not described takes JSON where the value is JSON, else text."""
    described = _user_fields(name)
    hints = {f.name: described[1][f.name] for f in described[0]} if described is not None else None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AdapterError(f"--set {pair!r}: write KEY=VALUE, e.g. --set r=4")
        if hints is not None and key not in hints:
            known = f"its settings: {', '.join(hints)}" if hints else "it takes no settings"
            raise AdapterError(f"--set {key}: method {name} has no setting {key!r}; {known}")
        out[key] = _typed(text, hints[key], f"--set {key}") if hints is not None else _json_or_text(text)
    return out


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _typed(text: str, hint: Any, where: str) -> Any:
    """``text`` as a value of type ``hint`` (bool, int, float, str, tuples and lists as JSON lists, ``X | None``)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        return _typed(text, next(a for a in args if a is not type(None)), where)
    if hint is bool:
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.strip().lower() not in words:
            raise AdapterError(f"{where}={text!r}: write true or false")
        return words[text.strip().lower()]
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise AdapterError(f"{where}={text!r}: write a number ({hint.__name__})") from None
    if typing.get_origin(hint) in (tuple, list) or hint in (tuple, list):
        value = _json_or_text(text)
        if not isinstance(value, list):
            raise AdapterError(f'{where}={text!r}: write a JSON list, e.g. {where.split()[-1]}=\'["a", "b"]\'')
        return value
    if hint is str:
        return text
    return _json_or_text(text)


def methods_table() -> str:
    """Every registered method: what it trains, whether it needs a text tower, and its settings with defaults
    (``encoderzoo methods``)."""
    lines = []
    for name, record in _METHODS.items():
        fields = setting_fields(name)
        settings = ", ".join(f"{k}={v!r}" for k, v in fields.items()) if fields else "(none)"
        if fields is None:
            settings = "not described (any key is passed on)"
        text = " (needs the base's text tower)" if record.needs_text else ""
        summary = record.facts.card_text.replace("{targets}", "named by `targets` (default: the entry's)")
        lines += [f"{name}: {summary}{text}", f"    settings: {settings}"]
    return "\n".join(lines)
