"""MedViTV2: the forward pass against upstream's own code (golden outputs), neighborhood attention against an
independent masked full-attention oracle, upstream key layouts loading strictly, parameter counts equal to
upstream's, and the zoo entries working end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors import safe_open

import encoderzoo
from encoderzoo import StateDictMismatchError
from encoderzoo.models.neighborhood_attention import (
    NeighborhoodAttention2D,
    naive_neighborhood_attention,
    neighborhood_attention,
    window_starts,
)

from .helpers import natten_reference_attention

DATA = Path(__file__).parent / "data"
UPSTREAM = json.loads((DATA / "medvit_v2_upstream_keys.json").read_text())
GOLDEN = DATA / "medvit_v2_golden.safetensors"
SIZES = ("tiny", "small", "base", "large")
GOLDEN_RTOL = 1e-9
"""Bound on max |ours - upstream| for the golden forward, relative to each output's largest magnitude, in float64.

Measured: 1.2e-12 (CPU). In float32 the random-weight network amplifies rounding to 2e-4 after six blocks,
which is why both sides run in float64. Mutations (a permute for upstream's reshape in LFP or in front of
FasterKAN, a FasterKAN term dropped, two blocks swapped) move the outputs by 1e-2 or more."""


def _golden() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(GOLDEN), framework="pt") as f:
        return {k: f.get_tensor(k).double() for k in f.keys()}, f.metadata()


def _relative_diff(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours - reference).abs().max() / reference.abs().max()).item()


def test_forward_matches_upstream_golden_outputs(tmp_path):
    """Upstream's MedViT.py at the pinned commit produced these outputs (tests/data/make_medvit_golden.py);
    our model loads the same weights through ``encoderzoo.load`` and must reproduce every block."""
    tensors, meta = _golden()
    config = json.loads(meta["config"])
    assert meta["upstream"].startswith("https://github.com/Omid-Nejati/MedViTV2 @ 8d54f665114c")
    state = {k.removeprefix("weight."): v for k, v in tensors.items() if k.startswith("weight.")}
    for name in list(state):
        if name.endswith("running_var"):  # upstream keeps num_batches_tracked; values never matter in eval
            state[name.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    path = tmp_path / "MedViT_golden.pth"
    torch.save({"model": state}, path)
    base = encoderzoo.get_spec("medvit-v2-tiny")
    arch = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k != "num_classes"}
    spec = dataclasses.replace(base, name="medvit-golden", arch_kwargs=arch, input_size=int(meta["image_size"]))
    encoder = encoderzoo.load(spec, weights=path, dtype=torch.float64)

    image = tensors["input"]
    outputs = {}
    hooks = [
        block.register_forward_hook(lambda _m, _i, out, i=i: outputs.__setitem__(f"block.{i}", out.mean((2, 3))))
        for i, block in enumerate(encoder.trunk.features)
    ]
    with torch.no_grad():
        features = encoder.trunk.forward_features(image)
        embedding = encoder.embed(image)
    for hook in hooks:
        hook.remove()
    assert len(outputs) == sum(config["depths"])
    for name, value in outputs.items():  # block by block, so a failure names the first block that disagrees
        diff = _relative_diff(value, tensors[f"output.{name}.mean_hw"])
        print(f"medvit golden {name:10s} rel max|diff| = {diff:.1e}")
        assert diff <= GOLDEN_RTOL, f"{name} disagrees with upstream: relative max abs diff {diff:.2e}"
    assert _relative_diff(features, tensors["output.features"]) <= GOLDEN_RTOL
    assert _relative_diff(embedding, tensors["output.features"].mean((2, 3))) <= GOLDEN_RTOL

    classifier = timm.create_model("medvit_v2_tiny", **{**arch, "num_classes": config["num_classes"]})
    classifier = classifier.double().eval()
    classifier.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = classifier(image)
    diff = _relative_diff(logits, tensors["output.logits"])
    print(f"medvit golden logits     rel max|diff| = {diff:.1e}")
    assert diff <= GOLDEN_RTOL


def test_golden_file_stays_small():
    assert GOLDEN.stat().st_size < 800_000


NA_CASES = [
    (7, 7, 7, 1),
    (9, 13, 7, 1),
    (11, 8, 3, 1),
    (14, 14, 7, 2),
    (15, 10, 3, 3),
    (16, 16, 5, 2),
    (21, 9, 3, 2),
    (11, 11, 3, 2),  # 11 % 2 != 0: dilation groups of unequal length (NATTEN's right-border split)
    (17, 16, 5, 3),
]


@pytest.mark.parametrize("kernel_fn", [neighborhood_attention, naive_neighborhood_attention], ids=["gather", "masked"])
@pytest.mark.parametrize("H, W, kernel, dilation", NA_CASES)
def test_neighborhood_attention_matches_independent_reference(kernel_fn, H, W, kernel, dilation):
    """Both of our kernels against ``natten_reference_attention`` (tests/helpers.py): NATTEN's per-position
    window and bias-row rules in plain Python loops, sharing no code with encoderzoo's window arithmetic."""
    torch.manual_seed(H * 100 + W)
    q, k, v = (torch.randn(2, 3, H, W, 8) for _ in range(3))
    rpb = torch.randn(3, 2 * kernel - 1, 2 * kernel - 1)
    reference = natten_reference_attention(q, k, v, kernel, dilation, rpb)
    assert (kernel_fn(q, k, v, kernel, dilation, rpb) - reference).abs().max().item() < 1e-5


@pytest.mark.parametrize("size", [(14, 14), (20, 18)], ids=["masked-path", "gather-path"])
def test_module_matches_natten_layout_on_the_reference(size):
    """The module (both dispatch paths) against NATTEN's unfused forward written out on the reference."""
    H, W = size
    na = NeighborhoodAttention2D(32, num_heads=4, kernel_size=7).eval()
    with torch.no_grad():
        na.rpb.normal_()
    x = torch.randn(2, H, W, 32)
    qkv = na.qkv(x).reshape(2, H, W, 3, 4, 8).permute(3, 0, 4, 1, 2, 5)
    attended = natten_reference_attention(qkv[0] * 8**-0.5, qkv[1], qkv[2], 7, 1, na.rpb)
    expected = na.proj(attended.permute(0, 2, 3, 1, 4).reshape(2, H, W, 32))
    with torch.no_grad():
        assert (na(x) - expected).abs().max().item() < 1e-5


def test_windows_shift_inward_at_borders():
    # NATTEN semantics: every query sees exactly k keys, the window is shifted (not cropped) at the borders
    assert window_starts(10, 3, 1).tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 7, 7]
    # dilation 2: two interleaved groups (even, odd positions), each of length 5
    assert window_starts(10, 3, 2).tolist() == [0, 1, 0, 1, 2, 3, 4, 5, 4, 5]
    with pytest.raises(ValueError, match="at least kernel_size"):
        window_starts(6, 7, 1)


def test_module_has_natten_parameter_layout():
    na = NeighborhoodAttention2D(64, num_heads=2, kernel_size=7)
    assert {k: tuple(v.shape) for k, v in na.state_dict().items()} == {
        "qkv.weight": (192, 64),
        "qkv.bias": (192,),
        "rpb": (2, 13, 13),
        "proj.weight": (64, 64),
        "proj.bias": (64,),
    }


@pytest.mark.parametrize("size", SIZES)
def test_architecture_matches_upstream_keys_shapes_and_parameter_count(size):
    with torch.device("meta"):
        model = timm.create_model(f"medvit_v2_{size}", num_classes=1000)
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == UPSTREAM["sizes"][size]["keys"]
    assert sum(p.numel() for p in model.parameters()) == UPSTREAM["sizes"][size]["parameters"]


def _upstream_layout_checkpoint(size: str, path: Path, wrap: bool) -> dict:
    torch.manual_seed(0)
    state = {
        name: torch.randn(shape) * 0.05 if shape else torch.tensor(0) for name, shape in UPSTREAM["sizes"][size]["keys"]
    }
    for name in state:
        if name.endswith("running_var"):
            state[name] = state[name].abs() + 0.5
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
    torch.save({"model": state, "optimizer": {"state": {}}, "epoch": 3, "acc": 0.9} if wrap else state, path)
    return state


@pytest.mark.parametrize("wrap", [False, True], ids=["imagenet-layout", "finetuned-layout"])
def test_upstream_layout_checkpoint_loads_strictly(tmp_path, wrap):
    path = tmp_path / "MedViT_tiny.pth"
    state = _upstream_layout_checkpoint("tiny", path, wrap)
    encoder = encoderzoo.load("medvit-v2-tiny", weights=path)
    loaded = encoder.state_dict()
    for name, value in state.items():
        if not name.startswith("proj_head."):
            assert torch.equal(loaded[f"trunk.{name}"], value.to(loaded[f"trunk.{name}"].dtype))
    classifier = timm.create_model("medvit_v2_tiny", num_classes=1000)
    classifier.load_state_dict(state, strict=True)  # the full upstream layout, head included


def test_wrong_size_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "MedViT_tiny.pth"
    _upstream_layout_checkpoint("tiny", path, wrap=False)
    with pytest.raises(StateDictMismatchError, match="Nothing was loaded"):
        encoderzoo.load("medvit-v2-small", weights=path)


def test_offline_without_weights_says_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.setenv("ENCODERZOO_CACHE", str(tmp_path))
    with pytest.raises(encoderzoo.WeightsNotFoundError, match=r"MedViT_base.pth.*downloads are off"):
        encoderzoo.load("medvit-v2-base")


@pytest.mark.parametrize(
    "size", ["tiny", *(pytest.param(size, marks=pytest.mark.slow) for size in ("small", "base", "large"))]
)
def test_every_size_runs_forward_on_cpu(size):
    """Each full-size entry builds and embeds. At 112 px, the smallest input whose stage-3 map still holds a
    7x7 neighborhood, to keep the test fast: the numerics are checked by the golden test above."""
    spec = dataclasses.replace(encoderzoo.get_spec(f"medvit-v2-{size}"), input_size=112)
    encoder = encoderzoo.load(spec, pretrained=False)
    with torch.no_grad():
        out = encoder.embed(torch.randn(1, 3, 112, 112))
    assert out.shape == (1, spec.embed_dim) and torch.isfinite(out).all()


def test_attention_backends_agree_on_efficient_mhsa():
    spec = encoderzoo.get_spec("medvit-v2-tiny").tiny_variant()
    encoder = encoderzoo.load(spec, pretrained=False, attention="sdpa")
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        sdpa = encoder.embed(x)
        encoder.set_attention("math")
        math = encoder.embed(x)
    assert (sdpa - math).abs().max().item() < 1e-5


def test_spec_and_card_carry_the_test_split_caveat():
    spec = encoderzoo.get_spec("medvit-v2-small")
    assert spec.licence == "MIT" and spec.pooling == "mean" and spec.input_size == 224
    assert spec.mean == (0.5, 0.5, 0.5) and any("selected on the test split" in n for n in spec.notes)
    from encoderzoo.cards import render_card

    assert "selected on the test split" in render_card(spec)


def test_engine_and_probes_run_on_a_tiny_medvit(tmp_path):
    from encoderzoo.engine import embed_dataset
    from encoderzoo.probes import KNNProbe

    from .datasets_fixtures import write_npz

    encoder = encoderzoo.load(encoderzoo.get_spec("medvit-v2-tiny").tiny_variant(), pretrained=False)
    data = write_npz(tmp_path / "d.npz", sizes=(12, 4, 6), classes=2)
    train = embed_dataset(encoder, f"npz:{data}", "train", use_cache=False, progress=False)
    test = embed_dataset(encoder, f"npz:{data}", "test", use_cache=False, progress=False)
    probe = KNNProbe(k=3, device="cpu").fit(train.features, train.labels)
    assert probe.predict(test.features).shape == (6,)
