"""Name -> EncoderSpec registry: built-in entries plus users' own."""

from __future__ import annotations

import difflib
import fnmatch

from .errors import UnknownEncoderError
from .spec import EncoderSpec
from .zoo import ZOO

_REGISTRY: dict[str, EncoderSpec] = {spec.name: spec for spec in ZOO}


def register(spec: EncoderSpec, *, overwrite: bool = False) -> EncoderSpec:
    """Add ``spec`` to the registry so ``load(spec.name)`` finds it.

    Raises ``ValueError`` if the name is taken, unless ``overwrite=True``.
    """
    if not isinstance(spec, EncoderSpec):
        raise TypeError(f"register() takes an EncoderSpec, got {type(spec).__name__}")
    if ":" in spec.name:
        raise ValueError(f"encoder names cannot contain ':' (reserved for hf-hub: / local-dir:), got {spec.name!r}")
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(f"an encoder named {spec.name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered entry (mainly for tests and notebooks)."""
    get_spec(name)
    del _REGISTRY[name]


def get_spec(name: str) -> EncoderSpec:
    """The spec registered under ``name``; unknown names get the closest suggestions."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownEncoderError(
            f"unknown encoder {name!r}.{hint} See `encoderzoo list` for all {len(_REGISTRY)} names."
        ) from None


def list_encoders(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern`` (``dinov2-*``), in registry order."""
    return [name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern)]
