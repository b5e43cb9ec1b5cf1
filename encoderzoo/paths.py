"""Where encoderzoo keeps its caches: ``$ENCODERZOO_CACHE``, else ``~/.cache/encoderzoo``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("ENCODERZOO_CACHE") or Path.home() / ".cache" / "encoderzoo").expanduser()


def medmnist_root() -> Path:
    """Where MedMNIST ``.npz`` files are looked for: ``$MEDMNIST_ROOT``, else the medmnist package's ``~/.medmnist``."""
    return Path(os.environ.get("MEDMNIST_ROOT") or Path.home() / ".medmnist").expanduser()
