"""Bad input never passes silently (issue 16): each case below used to change a result without a word, or end in a
traceback; now it is a one-line error that names the file, the rows or the setting, before any embedding."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.adapters import TrainConfig, adapt
from encoderzoo.adapters.model import AdapterError
from encoderzoo.atomic import atomic_write
from encoderzoo.cli import app
from encoderzoo.data import open_dataset
from encoderzoo.errors import CorruptWeightsError, DatasetFormatError, EncoderZooError, InputError

from .datasets_fixtures import write_npz, write_png
from .helpers import randomize_

runner = CliRunner()
TINY = encoderzoo.get_spec("dinov2-small").tiny_variant()


@pytest.fixture()
def vit_base(tmp_path):
    encoder = randomize_(encoderzoo.load(TINY, pretrained=False))
    return f"local-dir:{encoderzoo.save_pretrained(encoder, tmp_path / 'base')}"


# -- images -------------------------------------------------------------------------------------------------------


def test_float_images_in_0_255_are_refused_with_the_fix():
    encoder = encoderzoo.load(TINY, pretrained=False)
    images = torch.randint(0, 256, (2, 3, 28, 28)).float()
    with pytest.raises(InputError, match=r"must be in \[0, 1\].*x / 255"):
        encoder.transform(images)
    encoder.transform(images / 255)  # the fix works
    encoder.transform(images.to(torch.uint8))  # and uint8 as it is


@pytest.mark.parametrize("bad", [-0.01, 1.0001, float("nan")])
def test_float_images_outside_the_unit_range_or_nan_are_refused(bad):
    encoder = encoderzoo.load(TINY, pretrained=False)
    images = torch.full((1, 3, 28, 28), 0.5)
    images[0, 0, 0, 0] = bad
    with pytest.raises(InputError, match=r"must be in \[0, 1\]"):
        encoder.transform(images)


def test_channels_last_batch_with_five_channels_names_both_axes():
    encoder = encoderzoo.load(TINY, pretrained=False)
    with pytest.raises(InputError, match=r"neither axis 1 \(64\) nor the last axis \(5"):
        encoder.transform(np.zeros((2, 64, 64, 5), np.uint8))


# -- labels and split tables -----------------------------------------------------------------------------------


def _npz_with_train_labels(path: Path, labels: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, y in (("train", labels), ("val", np.array([0, 1, 0])), ("test", np.array([1, 0, 1]))):
        arrays[f"{split}_images"] = rng.integers(0, 256, (len(y), 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.asarray(y)[:, None]
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("labels", "rule"),
    [
        (np.array([0, 1, np.nan, 1]), "NaN"),
        (np.array([0, 1, -1, 1]), "negative"),
        (np.array([0, 1, 0.5, 1]), "whole number"),
    ],
)
def test_npz_labels_that_are_not_classes_are_refused_naming_the_row(tmp_path, labels, rule):
    path = _npz_with_train_labels(tmp_path / "x.npz", labels)
    with pytest.raises(DatasetFormatError, match=rf"x\.npz train_labels: 1 label\(s\).*{rule}.*row 2"):
        open_dataset(f"npz:{path}")


def test_npz_float_labels_holding_whole_numbers_still_load(tmp_path):
    path = _npz_with_train_labels(tmp_path / "x.npz", np.array([0.0, 1.0, 2.0, 1.0]))
    data = open_dataset(f"npz:{path}")
    assert data.task == "multi-class" and data.labels("train").tolist() == [0, 1, 2, 1]


def _folder(root: Path, rows: list[str], header: str = "path,split,label") -> Path:
    rng = np.random.default_rng(0)
    for row in rows:
        write_png(root / row.split(",")[0], rng.integers(0, 256, (8, 8), np.uint8))
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def test_folder_unknown_split_name_is_refused_not_dropped(tmp_path):
    root = _folder(tmp_path, ["a.png,train,0", "b.png,val,1", "c.png,holdout,0", "d.png,test,1"])
    with pytest.raises(DatasetFormatError, match=r"unknown split name\(s\) 'holdout' on lines 4;.*'train', 'val'"):
        open_dataset(f"folder:{root}")


def test_folder_same_image_listed_twice_is_refused(tmp_path):
    root = _folder(tmp_path, ["a.png,train,0", "b.png,val,1", "c.png,test,0"])
    (root / "labels.csv").write_text("path,split,label\na.png,train,0\nb.png,val,1\nc.png,test,0\na.png,train,1\n")
    with pytest.raises(DatasetFormatError, match=r"'a\.png' on lines 2 and 5"):
        open_dataset(f"folder:{root}")


def test_folder_label_column_mixing_integers_and_names_is_refused(tmp_path):
    root = _folder(tmp_path, ["a.png,train,0", "b.png,val,pneumonia", "c.png,test,1"])
    with pytest.raises(DatasetFormatError, match=r"mixes integers \(lines 2, 4\) and names \(lines 3"):
        open_dataset(f"folder:{root}")


@pytest.mark.parametrize(("value", "rule"), [("", "empty 'label'"), ("-1", "negative 'label'")])
def test_folder_blank_or_negative_label_is_refused(tmp_path, value, rule):
    root = _folder(tmp_path, ["a.png,train,0", f"b.png,val,{value}", "c.png,test,1"])
    with pytest.raises(DatasetFormatError, match=rf"{rule} on lines 3"):
        open_dataset(f"folder:{root}")


def test_folder_with_names_only_still_loads(tmp_path):
    root = _folder(tmp_path, ["a.png,train,normal", "b.png,val,pneumonia", "c.png,test,normal"])
    data = open_dataset(f"folder:{root}")
    assert data.label_names == ["normal", "pneumonia"] and data.labels("val").tolist() == [1]


# -- settings, checked before any work --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0"], "seeds must be >= 1"),
        (["--probes", ""], "no probe given"),
        (["--probes", "knn,linaer"], "unknown probe"),
        (["--probes", "fewshot", "--shots", "0"], r"shots must be >= 1 images per class, got \[0\]"),
        (["--probes", "fewshot", "--shots", "5,-1"], r"got \[-1\]"),
        (["--shots", "a,b"], "--shots takes comma-separated whole numbers"),
        (["--batch-size", "0"], "batch size must be >= 1"),
    ],
)
def test_probe_settings_are_refused_before_anything_loads(args, message, monkeypatch):
    import encoderzoo.probe_job as evaluate

    monkeypatch.setattr(evaluate, "load", lambda *a, **k: pytest.fail("loaded an encoder before checking"))
    result = runner.invoke(app, ["probe", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("error:")], result.output
    assert any(re.search(message, line) for line in result.output.splitlines()), result.output


def test_more_shots_than_the_smallest_class_has_is_refused_before_embedding(vit_base, tmp_path, monkeypatch):
    import encoderzoo.probe_job as evaluate

    path = _npz_with_train_labels(tmp_path / "x.npz", np.array([0] * 6 + [1] * 3))
    monkeypatch.setattr(evaluate, "embed_splits", lambda *a, **k: pytest.fail("embedded before checking shots"))
    with pytest.raises(ValueError, match=r"smallest class '1' has 3 training images.*\[5\]-shot.*shots <= 3"):
        evaluate.run_probes(vit_base, f"npz:{path}", probes=["fewshot"], shots=[1, 3, 5], device="cpu", progress=False)


@pytest.mark.parametrize("command", [["embed", "-e", "x", "-d", "y"], ["bench", "-e", "x"]])
def test_batch_size_zero_is_refused(command):
    result = runner.invoke(app, [*command, "--batch-size", "0"])
    assert result.exit_code == 2 and "--batch-size must be >= 1, got 0" in result.output


def test_bench_batch_size_zero_is_not_silently_the_default():
    from encoderzoo.bench import run_bench

    with pytest.raises(ValueError, match="batch_size"):
        run_bench([TINY], image_sizes=[None], attentions=["sdpa"], device="cpu", dtype="float32", batch_size=0)


def test_device_without_a_gpu_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for command in (["probe", "--device", "cuda"], ["embed", "-e", "x", "-d", "y", "--device", "cuda:1"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == [
            f"error: device {command[-1]!r} asked for, but this machine has no CUDA GPU: use --device cpu"
        ]


def test_debug_flag_shows_the_traceback(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(app, ["--debug", "probe", "--device", "cuda"])
    assert result.exit_code != 0 and type(result.exception).__name__ == "DeviceError"


# -- adaptation --------------------------------------------------------------------------------------------------


def test_adapt_refuses_a_training_split_with_one_class(vit_base, tmp_path, monkeypatch):
    adapt_module = sys.modules["encoderzoo.adapters.adapt"]  # the package re-exports the function under this name
    path = _npz_with_train_labels(tmp_path / "x.npz", np.array([1, 1, 1, 1]))
    monkeypatch.setattr(adapt_module, "fit", lambda *a, **k: pytest.fail("trained on one class"))
    with pytest.raises(AdapterError, match=r"train holds a single class \('1', 4 images\)"):
        adapt(vit_base, f"npz:{path}", "head", tmp_path / "out", progress=False)


def test_resume_with_another_method_names_the_method(vit_base, tmp_path):
    npz = write_npz(tmp_path / "d.npz", sizes=(12, 6, 6), classes=2)
    config = TrainConfig(epochs=2, batch_size=6, patience=5)
    adapt(vit_base, f"npz:{npz}", "head", tmp_path / "o", config=TrainConfig(epochs=1, batch_size=6), progress=False)
    (tmp_path / "o" / "results.json").unlink()  # as if killed after the first epoch's checkpoint
    with pytest.raises(AdapterError, match="written by --method head, not lora; resume with --method head"):
        adapt(vit_base, f"npz:{npz}", "lora", tmp_path / "o", config=config, resume=True, progress=False)


def test_resume_with_nothing_to_resume_says_so(vit_base, tmp_path):
    npz = write_npz(tmp_path / "d.npz", sizes=(12, 6, 6), classes=2)
    config = TrainConfig(epochs=1, batch_size=6)
    with pytest.warns(UserWarning, match="holds no checkpoint.*starting from scratch"):
        adapt(vit_base, f"npz:{npz}", "head", tmp_path / "o", config=config, resume=True, progress=False)
    (tmp_path / "o" / "checkpoints" / "last.pt").unlink()
    with pytest.raises(AdapterError, match="finished run.*nothing to resume"):
        adapt(vit_base, f"npz:{npz}", "head", tmp_path / "o", config=config, resume=True, progress=False)


def test_truncated_lora_adapter_is_an_encoderzoo_error(vit_base, tmp_path):
    npz = write_npz(tmp_path / "d.npz", sizes=(12, 6, 6), classes=2)
    adapt(vit_base, f"npz:{npz}", "lora", tmp_path / "o", config=TrainConfig(epochs=1, batch_size=6), progress=False)
    weights = tmp_path / "o" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(EncoderZooError, match="cannot be read.*damaged"):
        encoderzoo.load(f"local-dir:{tmp_path / 'o'}")
    result = runner.invoke(app, ["probe", "--encoder", f"local-dir:{tmp_path / 'o'}", "--device", "cpu"])
    assert result.exit_code == 2 and "Traceback" not in result.output and "damaged" in result.output


@pytest.mark.parametrize("content", [b"hello", b"\x80\x02}q\x00.", bytes(range(256)) * 4])
def test_weights_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "weights.bin"
    path.write_bytes(content)
    with pytest.raises(CorruptWeightsError, match="cannot be read as a checkpoint|flat state dict"):
        encoderzoo.load("efficientnet-lite0", weights=path)


# -- files and messages ------------------------------------------------------------------------------------------


def test_atomic_write_keeps_the_mode_a_plain_open_gives(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", lambda tmp: tmp.write_text("{}"))
        open(tmp_path / "b.json", "w").close()
        os.umask(0o002)
        atomic_write(tmp_path / "c.json", lambda tmp: tmp.write_text("{}"))
    finally:
        os.umask(old)
    mode = lambda name: stat.S_IMODE((tmp_path / name).stat().st_mode)  # noqa: E731
    assert mode("a.json") == mode("b.json") == 0o644
    assert mode("c.json") == 0o664
    (tmp_path / "c.json").chmod(0o640)
    atomic_write(tmp_path / "c.json", lambda tmp: tmp.write_text("[]"))  # an existing file keeps its mode
    assert mode("c.json") == 0o640


def test_push_in_offline_mode_says_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    import encoderzoo.hub as hub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "read_adapted_folder", lambda folder: SimpleNamespace(meta={}))
    for name in ("base_terms", "check_terms", "check_shareable", "upload_contents"):
        monkeypatch.setattr(hub, name, lambda *a, **k: None)
    with pytest.raises(hub.HubPushError, match=r"offline mode is on \(HF_HUB_OFFLINE=1\).*unset HF_HUB_OFFLINE"):
        hub.push(tmp_path, "me/model")


def test_probe_help_says_results_are_written_only_with_out():
    text = runner.invoke(app, ["probe", "--help"], env={"COLUMNS": "200"}).output
    assert "writes results.json" not in text and "with --out" in text


# -- a CLI that answers at once ----------------------------------------------------------------------------------


def test_cli_help_list_info_card_and_usage_errors_import_no_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from encoderzoo.cli import app\n"
        "r = CliRunner()\n"
        "outs = [r.invoke(app, a) for a in (['--help'], ['list'], ['info', 'rad-dino'], ['card', 'dinov2-small'],\n"
        "        ['probe', '--seeds', '0'], ['embed', '-e', 'x', '-d', 'y', '--batch-size', '0'])]\n"
        "print([o.exit_code for o in outs], sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[0, 0, 0, 0, 2, 2] []"


def test_list_reports_the_shipped_parameter_counts():
    rows = json.loads(runner.invoke(app, ["list", "--format", "json"]).output)
    shipped = json.loads((Path(encoderzoo.__file__).parent / "assets" / "parameters.json").read_text())
    assert {r["name"]: r["params_m"] for r in rows} == {n: round(c / 1e6, 1) for n, c in shipped.items()}

