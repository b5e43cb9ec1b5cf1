"""Crash-safe file writes: write to a temporary name in the same folder, then rename over the target."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(target: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` to ``target``; on any failure the temporary file is removed and
    ``target`` is untouched, so a kill never leaves a half-written file under the real name.

    The file gets the permissions a plain ``open(target, "w")`` would give it (``mkstemp`` makes 0600): an
    existing target keeps its mode, a new one gets 0666 minus the umask, so a lab sharing a cache can read it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, _plain_open_mode(target))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _plain_open_mode(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)  # the only portable way to read it; set back at once
        os.umask(umask)
        return 0o666 & ~umask
