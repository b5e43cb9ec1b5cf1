"""Where every benchmark's results go: JSON with the environment and the exact command that produced them."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def environment(**extra) -> dict:
    """``encoderzoo.environment.environment`` (one description of the machine for every result), the command
    line that ran, and ``extra`` (which wins: a script passes its own device, repeats ...)."""
    from encoderzoo.environment import environment as measured

    return {**measured(extra.get("device", "cpu")), "command": " ".join(["python", *sys.argv]), **extra}


def write_results(path: Path | None, payload: dict, **extra_environment) -> None:
    """Write ``{"environment": ..., **payload}`` to ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": environment(**extra_environment), **payload}, indent=2) + "\n")
