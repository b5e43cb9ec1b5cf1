"""Downloads over HTTP (from a server on 127.0.0.1 started by the test): weights by URL and MedMNIST files,
checksums enforced, nothing partial left behind."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading

import pytest

import encoderzoo
from encoderzoo.data import ChecksumError, open_dataset
from encoderzoo.data.npz import file_md5

from .datasets_fixtures import write_npz
from .test_medvit import _upstream_layout_checkpoint


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def online(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("ENCODERZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "medmnist"))


def test_weights_by_url_are_downloaded_once_and_loaded(server, online, tmp_path):
    root, base = server
    _upstream_layout_checkpoint("tiny", root / "MedViT_tiny.pth", wrap=False)
    spec = encoderzoo.get_spec("medvit-v2-tiny")
    spec = dataclasses.replace(spec, source=dataclasses.replace(spec.source, url=f"{base}/MedViT_tiny.pth"))
    encoder = encoderzoo.load(spec)
    cached = tmp_path / "cache" / "weights" / "MedViT_tiny.pth"
    assert cached.is_file() and encoder.spec.name == "medvit-v2-tiny"
    (root / "MedViT_tiny.pth").unlink()  # the second load needs no network
    encoderzoo.load(spec)


def test_unreachable_url_is_a_clear_error(online):
    spec = encoderzoo.get_spec("medvit-v2-tiny")
    spec = dataclasses.replace(spec, source=dataclasses.replace(spec.source, url="http://127.0.0.1:9/none.pth"))
    with pytest.raises(encoderzoo.WeightsNotFoundError, match="could not download.*Download it by hand"):
        encoderzoo.load(spec)


def test_medmnist_download_checks_md5(server, online, tmp_path, monkeypatch):
    from medmnist import INFO

    root, base = server
    served = write_npz(root / "breastmnist.npz", classes=2)
    monkeypatch.setitem(INFO["breastmnist"], "url", f"{base}/breastmnist.npz")
    monkeypatch.setitem(INFO["breastmnist"], "MD5", "0" * 32)
    with pytest.raises(ChecksumError, match="not keeping it"):
        open_dataset("medmnist:breastmnist")
    assert not (tmp_path / "medmnist" / "breastmnist.npz").exists()
    monkeypatch.setitem(INFO["breastmnist"], "MD5", file_md5(served))
    data = open_dataset("medmnist:breastmnist")
    assert data.num_samples("train") == 12 and data.describe()["medmnist"]["official"] is True
