"""Tests run offline on CPU: the Hub is switched off before anything imports huggingface_hub,
and sockets are blocked so an accidental download fails loudly instead of hanging."""

from __future__ import annotations

import os
import socket
import tempfile  # noqa: E402
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["ENCODERZOO_CACHE"] = tempfile.mkdtemp(prefix="encoderzoo-test-cache-")
os.environ["MEDMNIST_ROOT"] = tempfile.mkdtemp(prefix="encoderzoo-test-medmnist-")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402
import torch  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class _NoNetwork(socket.socket):
    def connect(self, address):  # type: ignore[override]
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"tests are offline: blocked connection to {address}")
        return super().connect(address)


socket.socket = _NoNetwork  # type: ignore[misc]
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    has_cuda = torch.cuda.is_available()
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; CI and this machine have none"))
        if "network" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="tests run offline (HF_HUB_OFFLINE=1)"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (see the README's 'Test data' section)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture()
def one_thread():
    """One intra-op thread: on a shared, loaded CPU two spinning threads make small models ~15x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
