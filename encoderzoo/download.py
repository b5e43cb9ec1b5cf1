"""Downloads: the one offline switch, and one way to fetch a file over HTTP (streamed, with a progress bar,
renamed into place only when complete).

Every place in encoderzoo that can start a download (Hugging Face Hub files and snapshots, weights by URL,
MedMNIST files) asks ``offline()`` first, so ``HF_HUB_OFFLINE=1`` or ``ENCODERZOO_OFFLINE=1`` turns all of
them off, read at call time (not only when a library is imported).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from .atomic import atomic_write
from .errors import EncoderZooError

OFFLINE_SWITCHES = ("ENCODERZOO_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = ("1", "on", "yes", "true")  # the values huggingface_hub treats as true


class DownloadError(EncoderZooError):
    """A download failed (no network, refused, interrupted) or was not allowed (offline)."""


def offline_switch() -> str | None:
    """The environment switch that turns downloads off (``"ENCODERZOO_OFFLINE=1"``), or ``None`` when online."""
    for name in OFFLINE_SWITCHES:
        value = os.environ.get(name, "").strip()
        if value.lower() in _TRUE:
            return f"{name}={value}"
    return None


def offline() -> bool:
    """True when ``ENCODERZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1/true/yes/on: no download may start."""
    return offline_switch() is not None


def download(url: str, target: Path) -> Path:
    """Stream ``url`` to ``target``; a partial download never takes the target's name.

    Raises ``DownloadError`` without touching the network when ``offline()``.
    """
    switch = offline_switch()
    if switch:
        raise DownloadError(f"not downloading {url}: downloads are off ({switch})")
    from tqdm.auto import tqdm

    def stream(tmp: Path) -> None:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))

    try:
        return atomic_write(target, stream)
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise DownloadError(f"could not download {url}: {err}") from err
