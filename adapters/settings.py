"""Small shared rules of the method settings: the task names adapters accept, and JSON round trips of settings.

Kept apart from ``model`` so that method modules (``coop``, ``ace_lora``) can use them without importing the
``AdaptedEncoder`` that builds them (imports go one way: ``model`` -> method modules -> ``settings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TASKS: tuple[str, ...] = ("binary", "multi-class", "multi-label")


def tuples_from_json(config: Mapping[str, Any]) -> dict[str, Any]:
    """JSON lists back to the tuples the frozen settings dataclasses hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
