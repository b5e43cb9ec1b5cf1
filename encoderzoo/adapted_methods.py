"""What the core knows about an adaptation method: the files it writes into an adapted folder and its model-card text.

The methods themselves live in the ``encoderzoo.adapters`` plugin, whose registry (``adapters/methods.py``)
registers every method's ``MethodFacts`` here; the core reads them (``read_adapted_folder`` checks the files,
``adapted_card`` writes the text) without importing the plugin. As with folder kinds (``loading``), the plugin
package is imported by name the first time a method is looked up that is not registered yet.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

PLUGIN_PACKAGE = "encoderzoo.adapters"
"""Imported by name when a method is not registered yet (it registers the built-in methods)."""


@dataclass(frozen=True)
class MethodFacts:
    """The folder- and card-facing facts of one adaptation method."""

    files: tuple[str, ...]
    """Adapter files the method writes next to ``encoderzoo.json``, ``results.json`` and the head."""
    card_text: str
    """One line for the model card; ``{targets}`` is filled with the LoRA target modules."""
    citation: str
    tags: tuple[str, ...] = ()
    """Hub tags beyond ``encoderzoo``, ``medical-imaging``, the method's name and the base's family."""


_REGISTERED: dict[str, MethodFacts] = {}


def register_method_facts(name: str, facts: MethodFacts) -> None:
    """Called by the plugin's method registry for every method it registers."""
    _REGISTERED[name] = facts


def unregister_method_facts(name: str) -> None:
    _REGISTERED.pop(name, None)


def registered_method_facts() -> Mapping[str, MethodFacts]:
    """Every registered method's facts, in registration order (the plugin imported first)."""
    importlib.import_module(PLUGIN_PACKAGE)
    return MappingProxyType(_REGISTERED)


def method_facts(name: str) -> MethodFacts | None:
    """The facts of method ``name``, or ``None`` when no method of that name is registered."""
    if name not in _REGISTERED:
        importlib.import_module(PLUGIN_PACKAGE)
    return _REGISTERED.get(name)
