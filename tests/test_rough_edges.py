"""Bad inputs a new user tries (issue 11, section 4): each fails early, on a line of its own, saying why."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from tqdm import tqdm
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.cli import app
from encoderzoo.data import CorruptImageError, DatasetNotFoundError, open_dataset
from encoderzoo.engine import embed_dataset
from encoderzoo.paths import OutputPathError, check_writable

from .datasets_fixtures import write_npz, write_png

TINY = encoderzoo.get_spec("dinov2-small").tiny_variant()
runner = CliRunner()


@pytest.fixture
def tiny_dir(tmp_path):
    return encoderzoo.save_pretrained(encoderzoo.load(TINY, pretrained=False), tmp_path / "tiny")


def _folder(root, names, missing=(), corrupt=()):
    """labels.csv listing ``names`` (train split); ``missing`` are not written, ``corrupt`` are truncated."""
    rng = np.random.default_rng(0)
    for name in names:
        if name in missing:
            continue
        write_png(root / name, rng.integers(0, 256, (28, 28), np.uint8))
        if name in corrupt:
            (root / name).write_bytes((root / name).read_bytes()[:30])
    lines = ["path,split,label"] + [f"{name},train,{i % 2}" for i, name in enumerate(names)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def _open_bars() -> list:
    return [bar for bar in list(tqdm._instances) if not bar.disable]


# --- an error while a progress bar is open ---------------------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "in-memory"])
def test_error_during_embedding_closes_the_progress_bar_first(tmp_path, use_cache):
    names = [f"{i}.png" for i in range(12)]
    data = open_dataset(f"folder:{_folder(tmp_path / 'data', names, corrupt={'9.png'})}")
    encoder = encoderzoo.load(TINY, pretrained=False)
    with pytest.raises(CorruptImageError, match="9.png"):
        embed_dataset(encoder, data, "train", batch_size=4, use_cache=use_cache, cache_dir=tmp_path / "c")
    assert _open_bars() == []


def test_cli_error_is_printed_on_its_own_line_not_after_the_bar(tmp_path, tiny_dir):
    names = [f"{i}.png" for i in range(12)]
    folder = _folder(tmp_path / "data", names, corrupt={"9.png"})
    result = runner.invoke(
        app, ["embed", "-e", f"local-dir:{tiny_dir}", "-d", f"folder:{folder}", "--split", "train", "--batch-size", "4"]
    )
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert re.search(r"train:\s+\d+%\|.*\| \d+/12", err), repr(err)  # the bar was drawn
    position = err.index("error: cannot read image")
    # a closed bar (leave=False) ends by clearing its line with '\r'; an open one leaves its text right there
    assert position == 0 or err[position - 1] in "\r\n", repr(err[max(0, position - 80) : position + 20])
    assert "Traceback" not in result.output


# --- --out that cannot be written ------------------------------------------------------------------------


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the CLI starts loading an encoder or embedding."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr("encoderzoo.probe_job.run_probes", forbidden)
    monkeypatch.setattr("encoderzoo.loading.load", forbidden)


def test_probe_out_under_a_file_fails_before_any_work(tmp_path, no_work):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    result = runner.invoke(app, ["probe", "--out", str(blocker / "results.json")])
    assert result.exit_code == 2, result.output
    assert f"error: cannot write --out {blocker / 'results.json'}: {blocker} is a file" in result.stderr
    assert not isinstance(result.exception, AssertionError) and "Traceback" not in result.output


def test_probe_out_that_is_a_folder_fails_before_any_work(tmp_path, no_work):
    result = runner.invoke(app, ["probe", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "it is a folder; give a file name, e.g." in result.stderr


def test_embed_out_that_is_a_file_fails_before_any_work(tmp_path, no_work):
    blocker = tmp_path / "emb"
    blocker.write_text("x")
    npz = write_npz(tmp_path / "d.npz")
    result = runner.invoke(app, ["embed", "-e", "efficientnet-lite0", "-d", f"npz:{npz}", "--out", str(blocker)])
    assert result.exit_code == 2, result.output
    assert f"error: cannot write --out {blocker}: it is a file, and a folder is needed" in result.stderr


def test_embed_out_in_a_folder_without_write_permission(tmp_path, no_work, monkeypatch):
    """Permission denied is reported with its reason (simulated where the tests run as root, who may write
    anywhere; the real chmod case runs below for other users)."""

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    npz = write_npz(tmp_path / "d.npz")
    result = runner.invoke(app, ["embed", "-e", "efficientnet-lite0", "-d", f"npz:{npz}", "-o", str(tmp_path / "a")])
    assert result.exit_code == 2, result.output
    assert f"the folder {tmp_path} is not writable (Permission denied)" in result.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match=r"not writable \(Permission denied\)"):
            check_writable(locked / "results.json", folder=False)
    finally:
        locked.chmod(0o755)


def test_check_writable_accepts_new_nested_folders_and_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b" / "results.json"
    assert check_writable(target, folder=False) == target
    assert check_writable(tmp_path / "x" / "y", folder=True) == tmp_path / "x" / "y"
    assert sorted(os.listdir(tmp_path)) == []


# --- labels.csv naming files that are not there ----------------------------------------------------------


def test_missing_files_are_all_listed_when_the_folder_is_opened(tmp_path):
    names = [f"{i}.png" for i in range(6)]
    folder = _folder(tmp_path, names, missing={"1.png", "4.png", "5.png"})
    with pytest.raises(DatasetNotFoundError) as info:
        open_dataset(f"folder:{folder}")
    message = str(info.value)
    assert "3 of the 6 listed image files do not exist" in message
    listed = re.findall(r"train: (\S+)", message)
    assert listed == [str(folder / n) for n in ("1.png", "4.png", "5.png")]
    assert "skip_corrupt=1" in message


def test_many_missing_files_are_counted(tmp_path):
    names = [f"{i}.png" for i in range(14)]
    folder = _folder(tmp_path, names, missing=set(names[1:]))
    with pytest.raises(DatasetNotFoundError, match=r"(?s)13 of the 14 .*\n  train: .*10.png\n  \.\.\. and 3 more\n"):
        open_dataset(f"folder:{folder}")


def test_missing_files_in_a_chexpert_table_are_listed(tmp_path):
    from .datasets_fixtures import write_chexpert

    root = write_chexpert(tmp_path)
    gone = tmp_path / "CheXpert-v1.0-small/valid/patient00010/study1/view1_frontal.jpg"
    gone.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of the \d+ listed image files do not exist:\n  test: .*"):
        open_dataset(f"chexpert:{root}")


def test_skip_corrupt_skips_missing_files_instead(tmp_path):
    names = [f"{i}.png" for i in range(4)]
    folder = _folder(tmp_path, names, missing={"2.png"})
    data = open_dataset(f"folder:{folder}?skip_corrupt=1")
    result = embed_dataset(encoderzoo.load(TINY, pretrained=False), data, "train", use_cache=False, progress=False)
    assert result.ids == ["0.png", "1.png", "3.png"] and result.metadata["skipped"] == ["2.png"]
    assert torch.isfinite(result.features).all()
