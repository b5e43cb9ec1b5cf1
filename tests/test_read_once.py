"""Push and load read each file of an adapted folder once (issue 20): the folder is checked and parsed once into an
``AdaptedFolder`` that the card, the licence rules, the upload and the loader share.

Reads are counted where they happen: ``Path.read_text`` (JSON) and ``safetensors.torch.load_file`` (tensors, as
encoderzoo's modules call it). peft reads its own LoRA weight file when it attaches the adapter; that read is not
ours and is not counted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import safetensors.torch

import encoderzoo
from encoderzoo import weights as weights_module
from encoderzoo.hub import push
from tests.helpers import randomize_
from tests.test_adapted_card import make_adapted_folder
from tests.test_push import GOOD_TOKEN, hub  # noqa: F401  (the loopback Hub fixture)


@pytest.fixture()
def reads(monkeypatch) -> Counter:
    counts: Counter = Counter()
    read_text, load_file = Path.read_text, safetensors.torch.load_file

    def counting_read_text(self, *args, **kwargs):
        counts[self.resolve()] += 1
        return read_text(self, *args, **kwargs)

    def counting_load_file(path, *args, **kwargs):
        counts[Path(path).resolve()] += 1
        return load_file(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting_read_text)
    monkeypatch.setattr(safetensors.torch, "load_file", counting_load_file)
    monkeypatch.setattr(weights_module, "load_file", counting_load_file)
    return counts


@pytest.mark.parametrize("method", ["lora", "vpt"])
def test_push_reads_each_file_of_the_folder_once(hub, reads, tmp_path, method):  # noqa: F811
    folder = make_adapted_folder(tmp_path, method=method)
    reads.clear()
    result = push(folder, "tester/read-once")
    assert result.changed
    ours = {p.name: n for p, n in reads.items() if p.parent == folder.resolve()}
    expected = {"encoderzoo.json", "results.json", "head.safetensors"}
    expected |= {"adapter_config.json", "adapter_model.safetensors"} if method == "lora" else {"adapter.safetensors"}
    assert set(ours) == expected
    assert all(n == 1 for n in ours.values()), ours


@pytest.mark.parametrize("method", ["lora", "vpt"])
def test_loading_an_adapted_folder_reads_each_file_once(reads, tmp_path, method):
    from encoderzoo.adapters import AdaptedEncoder
    from encoderzoo.adapters.folder import describe, save_adapted
    from encoderzoo.engine import weights_fingerprint

    spec = encoderzoo.get_spec("dinov2-small").tiny_variant()
    base_dir = encoderzoo.save_pretrained(randomize_(encoderzoo.load(spec, pretrained=False)), tmp_path / "base")
    base_name = f"local-dir:{base_dir}"
    base = encoderzoo.load(base_name)
    fingerprint = weights_fingerprint(base)  # before the adapter is attached, as adapt() takes it
    settings = {"num_prompts": 2} if method == "vpt" else {}
    model = AdaptedEncoder(base, method, settings, 3)
    meta = describe(
        model,
        base_name=base_name,
        base_fingerprint=fingerprint,
        task="multi-class",
        label_names=["a", "b", "c"],
        dataset="npz:x",
    )
    save_adapted(model, tmp_path / "o", meta)
    reads.clear()
    encoderzoo.load(f"local-dir:{tmp_path / 'o'}")
    counts = {f"{p.parent.name}/{p.name}": n for p, n in reads.items()}
    assert counts.get("o/encoderzoo.json") == 1 and counts.get("o/head.safetensors") == 1, counts
    assert counts.get("base/encoderzoo.json") == 1 and counts.get("base/model.safetensors") == 1, counts
    if method == "vpt":
        assert counts.get("o/adapter.safetensors") == 1, counts
    assert all(n == 1 for n in counts.values()), counts
    assert json.loads((tmp_path / "o" / "encoderzoo.json").read_text())["method"] == method
