"""``ENCODERZOO_OFFLINE=1`` and ``HF_HUB_OFFLINE=1`` turn every download off: Hub files, Hub snapshots, weights by
URL and MedMNIST files. Each path is pointed at a recording HTTP server on 127.0.0.1 and every socket connect and
name lookup is recorded: with a switch on, none may happen, and the error names the switch. With the switches off
the same set-up does reach the server (the control), so an empty record means the switch worked, not that the
harness missed the attempt.

huggingface_hub reads ``HF_HUB_OFFLINE`` once, at import (the suite imports it offline): these tests patch its
constants back online and point its endpoint at the recording server, so only encoderzoo's own switch handling
stands between the call and the network.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import socket
import threading
from pathlib import Path

import pytest
from huggingface_hub import constants as hub_constants

import encoderzoo
from encoderzoo import WeightsNotFoundError
from encoderzoo import weights as weights_mod
from encoderzoo.data import DatasetNotFoundError, open_dataset
from encoderzoo.download import DownloadError, download, offline

from .datasets_fixtures import write_npz

SWITCHES = ("ENCODERZOO_OFFLINE", "HF_HUB_OFFLINE")
REPO = "someone/tiny-encoder"


class _Recorder(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self.requests.append(f"HEAD {self.path}")
        super().do_HEAD()

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """(folder served, base URL, list of requests received)."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []
    handler = functools.partial(type("Handler", (_Recorder,), {"requests": requests}), directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()


@pytest.fixture
def attempts(monkeypatch):
    """Every socket connect and DNS lookup made during the test."""
    seen: list[str] = []
    real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        seen.append(f"connect {address}")
        return real_connect(self, address)

    def lookup(host, *args, **kwargs):
        seen.append(f"getaddrinfo {host}")
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return seen


@pytest.fixture
def network_on(server, monkeypatch, tmp_path):
    """No switch set, huggingface_hub online against the recording server, empty caches."""
    _, base, _ = server
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", base)
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE", base + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("ENCODERZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "medmnist"))
    assert not offline()


def _medvit_at(url: str):
    spec = encoderzoo.get_spec("medvit-v2-tiny")
    return dataclasses.replace(spec, source=dataclasses.replace(spec.source, url=url))


def _hub_file():
    return weights_mod.download_from_hub(REPO, "model.safetensors", "main")


def _hub_snapshot():
    return weights_mod.snapshot_from_hub(REPO, "main", allow_patterns=["adapter_*", "encoderzoo.json"])


def _hub_registry_entry():
    return encoderzoo.load("rad-dino")


def _hub_saved_encoder():
    return encoderzoo.load(f"hf-hub:{REPO}")


HUB_CALLS = [_hub_file, _hub_snapshot, _hub_registry_entry, _hub_saved_encoder]


def _switch_on(monkeypatch, name: str) -> None:
    monkeypatch.setenv(name, "1")
    assert offline()


# --- the control: without a switch, every path reaches the server ---------------------------------------


@pytest.mark.parametrize("call", HUB_CALLS, ids=lambda f: f.__name__)
def test_without_a_switch_the_hub_calls_reach_the_server(network_on, server, call):
    with pytest.raises(WeightsNotFoundError):
        call()  # the server answers 404
    assert server[2], "the Hub call made no request: the offline tests below would prove nothing"


def test_without_a_switch_url_and_medmnist_downloads_reach_the_server(network_on, server, monkeypatch):
    from medmnist import INFO

    _, base, requests = server
    with pytest.raises(WeightsNotFoundError, match="could not download"):
        encoderzoo.load(_medvit_at(f"{base}/MedViT_tiny.pth"))
    monkeypatch.setitem(INFO["breastmnist"], "url", f"{base}/breastmnist.npz")
    with pytest.raises(DatasetNotFoundError, match="could not download"):
        open_dataset("medmnist:breastmnist")
    assert requests == ["GET /MedViT_tiny.pth", "GET /breastmnist.npz"]


# --- each switch turns each path off: no request, no connect, no lookup, and the switch is named --------


@pytest.mark.parametrize("switch", SWITCHES)
@pytest.mark.parametrize("call", HUB_CALLS, ids=lambda f: f.__name__)
def test_switch_stops_hub_downloads(network_on, server, attempts, monkeypatch, switch, call):
    _switch_on(monkeypatch, switch)
    with pytest.raises(WeightsNotFoundError) as info:
        call()
    assert f"downloads are off ({switch}=1)" in str(info.value)
    assert "weights=PATH" in str(info.value)
    assert server[2] == [] and attempts == []


@pytest.mark.parametrize("switch", SWITCHES)
def test_switch_stops_url_weights(network_on, server, attempts, monkeypatch, switch):
    root, base, requests = server
    (root / "MedViT_tiny.pth").write_bytes(b"never fetched")
    _switch_on(monkeypatch, switch)
    with pytest.raises(WeightsNotFoundError, match=rf"downloads are off \({switch}=1\).*weights=PATH"):
        encoderzoo.load(_medvit_at(f"{base}/MedViT_tiny.pth"))
    assert requests == [] and attempts == []


@pytest.mark.parametrize("switch", SWITCHES)
def test_switch_stops_medmnist_downloads(network_on, server, attempts, monkeypatch, tmp_path, switch):
    from medmnist import INFO

    root, base, requests = server
    write_npz(root / "breastmnist.npz", classes=2)
    monkeypatch.setitem(INFO["breastmnist"], "url", f"{base}/breastmnist.npz")
    _switch_on(monkeypatch, switch)
    with pytest.raises(DatasetNotFoundError, match=rf"downloads are off \({switch}=1\)"):
        open_dataset("medmnist:breastmnist")
    assert requests == [] and attempts == []
    assert not (tmp_path / "medmnist" / "breastmnist.npz").exists()


@pytest.mark.parametrize("switch", SWITCHES)
def test_switch_stops_the_low_level_download(network_on, server, attempts, monkeypatch, tmp_path, switch):
    root, base, requests = server
    (root / "file.bin").write_bytes(b"x")
    _switch_on(monkeypatch, switch)
    with pytest.raises(DownloadError, match=rf"downloads are off \({switch}=1\)"):
        download(f"{base}/file.bin", tmp_path / "file.bin")
    assert requests == [] and attempts == [] and not (tmp_path / "file.bin").exists()


@pytest.mark.parametrize("value", ["0", "", "false", "no"])
def test_switch_values_that_mean_online(monkeypatch, value):
    for name in SWITCHES:
        monkeypatch.setenv(name, value)
    assert not offline()


# --- offline still reads what is cached -----------------------------------------------------------------


def _cache_snapshot(cache, files: dict[str, bytes]) -> str:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / f"models--{REPO.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return str(snapshot)


def test_encoderzoo_offline_reads_cached_hub_files_and_snapshots(network_on, server, attempts, monkeypatch, tmp_path):
    snapshot = _cache_snapshot(
        tmp_path / "hub-cache", {"model.safetensors": b"w", "adapter_config.json": b"{}", "encoderzoo.json": b"{}"}
    )
    _switch_on(monkeypatch, "ENCODERZOO_OFFLINE")
    assert _hub_file().resolve() == (Path(snapshot) / "model.safetensors").resolve()
    assert _hub_snapshot().resolve() == Path(snapshot).resolve()
    assert server[2] == [] and attempts == []


def test_offline_snapshot_without_the_requested_files_is_an_error(network_on, server, attempts, monkeypatch, tmp_path):
    """A snapshot folder holding only model.safetensors (from an earlier single-file download) does not satisfy a
    request for the adapter files: huggingface_hub returns the folder offline; encoderzoo says what is missing."""
    _cache_snapshot(tmp_path / "hub-cache", {"model.safetensors": b"w"})
    _switch_on(monkeypatch, "ENCODERZOO_OFFLINE")
    with pytest.raises(WeightsNotFoundError, match=r"has no file matching \['adapter_\*', 'encoderzoo.json'\]"):
        _hub_snapshot()
    assert server[2] == [] and attempts == []
