"""Run ``encoderzoo verify`` against the loopback Hub of the test suite, seeded with every registry entry's files
at its pinned revision: the output the README shows. Nothing leaves the machine; the MedViTV2 Dropbox links (the
one entry family outside the Hub) are answered by a stand-in, as in ``tests/test_verify.py``.

    python benchmarks/verify_loopback.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update(HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_loopback", HF_HUB_DISABLE_TELEMETRY="1")
os.environ.pop("ENCODERZOO_OFFLINE", None)


def main() -> None:
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from encoderzoo import verify as verify_mod
    from encoderzoo.cli import app
    from tests.hub_server import HubServer
    from tests.test_verify import _dropbox_answers, _seed_registry

    with HubServer(tokens={"hf_loopback"}) as server, tempfile.TemporaryDirectory() as home:
        constants.ENDPOINT = server.url
        constants.HF_HUB_CACHE = str(Path(home) / "cache")
        _seed_registry(server, token="hf_loopback")
        verify_mod._head = _dropbox_answers(200)
        result = CliRunner().invoke(app, ["verify"])
    print(result.output.replace(server.url, "http://127.0.0.1:PORT"), end="")
    sys.exit(result.exit_code)


if __name__ == "__main__":
    main()
