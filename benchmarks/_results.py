"""Where every benchmark's results go: JSON with the environment and the exact command that produced them."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path


def environment(**extra) -> dict:
    import timm
    import torch

    import encoderzoo

    return {
        "torch": torch.__version__,
        "timm": timm.__version__,
        "encoderzoo": encoderzoo.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "command": " ".join(["python", *sys.argv]),
        **extra,
    }


def write_results(path: Path | None, payload: dict, **extra_environment) -> None:
    """Write ``{"environment": ..., **payload}`` to ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": environment(**extra_environment), **payload}, indent=2) + "\n")
