"""One way to fetch a file over HTTP: streamed, with a progress bar, renamed into place only when complete."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from .atomic import atomic_write
from .errors import EncoderZooError


class DownloadError(EncoderZooError):
    """A download failed (no network, refused, interrupted)."""


def download(url: str, target: Path) -> Path:
    """Stream ``url`` to ``target``; a partial download never takes the target's name."""
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
