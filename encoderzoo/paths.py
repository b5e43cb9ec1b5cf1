"""Where encoderzoo keeps its caches (``$ENCODERZOO_CACHE``, else ``~/.cache/encoderzoo``), and the early check
that an output path can be written before any work starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import EncoderZooError


class OutputPathError(EncoderZooError):
    """An output path (``--out``) cannot be written: a file where a folder is needed, or no write permission."""


def cache_root() -> Path:
    return Path(os.environ.get("ENCODERZOO_CACHE") or Path.home() / ".cache" / "encoderzoo").expanduser()


def medmnist_root() -> Path:
    """Where MedMNIST ``.npz`` files are looked for: ``$MEDMNIST_ROOT``, else the medmnist package's ``~/.medmnist``."""
    return Path(os.environ.get("MEDMNIST_ROOT") or Path.home() / ".medmnist").expanduser()


def check_writable(path: str | os.PathLike[str], *, folder: bool, option: str = "--out") -> Path:
    """Fail now, with the reason, if ``path`` cannot be written later; creates nothing.

    ``folder=True``: ``path`` is a folder that will receive files; ``folder=False``: ``path`` is one file. Missing
    parent folders are fine (they will be created) as long as the nearest existing one is a writable folder.
    Writability is tested by creating and removing a temporary file there, which also catches read-only mounts
    and ACLs that permission bits do not show.
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise OutputPathError(f"cannot write {option} {path}: it is a file, and a folder is needed here")
    if not folder and path.is_dir():
        raise OutputPathError(
            f"cannot write {option} {path}: it is a folder; give a file name, e.g. {path / 'results.json'}"
        )
    target = path if folder else path.parent
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(
            f"cannot write {option} {path}: {existing} is a file, so the folder {target} cannot be created"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".encoderzoo-write-check-")
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise OutputPathError(
            f"cannot write {option} {path}: the folder {existing} is not writable ({reason}). Choose another "
            "location or fix its permissions."
        ) from err
    os.close(fd)
    os.unlink(probe)
    return path
