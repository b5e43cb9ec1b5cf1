"""Adapted folders written by an earlier encoderzoo keep loading to the same outputs (issue 20).

``tests/data/adapted_golden/`` holds a tiny folder per method, written before the method registry by
``tests/data/make_adapted_golden.py``, with the embeddings and logits that code gave on fixed pixels and the names
of every trainable tensor (the keys of ``adapter.safetensors`` and of a ``--resume`` checkpoint).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import encoderzoo
from encoderzoo.adapters import AdaptedEncoder

from .helpers import reorder_atol, sequential_layers

GOLDEN = Path(__file__).parent / "data" / "adapted_golden"
FACTS = json.loads((GOLDEN / "expected.json").read_text())
EXPECTED = load_file(GOLDEN / "expected.safetensors")
TEXT = ("coop", "ace-lora")


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Path:
    """A copy of the fixture whose folders name their base by its path in the copy."""
    root = tmp_path_factory.mktemp("golden") / "adapted_golden"
    shutil.copytree(GOLDEN, root)
    for method in FACTS:
        spec_file = root / method / "encoderzoo.json"
        spec_file.write_text(spec_file.read_text().replace("local-dir:BASE/", f"local-dir:{root}/"))
    return root


def test_the_fixture_covers_every_method():
    assert set(FACTS) == set(encoderzoo.adapters.METHODS)


@pytest.mark.parametrize("method", sorted(FACTS))
def test_an_old_folder_loads_to_the_outputs_it_gave(golden, method):
    model = encoderzoo.load(f"local-dir:{golden / method}")
    assert isinstance(model, AdaptedEncoder) and model.method == method
    pixels = EXPECTED[f"pixels.{'clip' if method in TEXT else 'vit'}"]
    layers = sequential_layers(model)
    with torch.no_grad():
        for output, got in (("embed", model.embed(pixels)), ("classify", model.classify(pixels))):
            want = EXPECTED[f"{method}.{output}"]
            torch.testing.assert_close(got, want, rtol=0, atol=reorder_atol(want, layers), msg=f"{method} {output}")


@pytest.mark.parametrize("method", sorted(FACTS))
def test_trainable_tensors_keep_their_names(golden, method):
    """A ``--resume`` checkpoint and ``adapter.safetensors`` are keyed by these names: they must not move."""
    meta = json.loads((golden / method / "encoderzoo.json").read_text())
    rebuilt = AdaptedEncoder(encoderzoo.load(meta["base"]["name"]), method, meta["method_config"], meta["num_outputs"])
    trainable = sorted(n for n, p in rebuilt.named_parameters() if p.requires_grad)
    assert trainable == FACTS[method]["trainable"]
    assert list(rebuilt.parameter_counts()) == FACTS[method]["parameter_counts"]
