"""The fine-tuning loop, the adapted folder and ``encoderzoo adapt``: reload, resume, NaN stop, base checks, DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.adapters import (
    METHODS,
    AdaptedEncoder,
    AdapterError,
    TrainConfig,
    TrainingDivergedError,
    adapt,
    training,
)
from encoderzoo.adapters.folder import describe, load_adapted, save_adapted
from encoderzoo.adapters.model import TEXT_METHODS
from encoderzoo.adapters.training import (
    SplitReader,
    augment,
    crop_params,
    make_loss,
    predict_proba,
    stratified_subset,
)
from encoderzoo.cli import app
from encoderzoo.data import open_dataset
from encoderzoo.engine import weights_fingerprint
from encoderzoo.probes import evaluate
from encoderzoo.transforms import as_nchw
from tests.datasets_fixtures import write_npz, write_png
from tests.helpers import randomize_

SAMPLE = "sample:pneumoniamnist"


@pytest.fixture(scope="module")
def effnet_tiny():
    """efficientnet-lite0 with its real ImageNet weights at 64 px: a cheap base that can learn something."""
    spec = encoderzoo.get_spec("efficientnet-lite0").tiny_variant()
    encoderzoo.register(spec)
    yield spec.name
    encoderzoo.unregister(spec.name)


@pytest.fixture()
def vit_base(tmp_path):
    """A tiny random DINOv2 saved as a local-dir base (adapters name their base; random weights cannot be
    re-fetched by name, a saved folder can)."""
    spec = encoderzoo.get_spec("dinov2-small").tiny_variant()
    encoder = randomize_(encoderzoo.load(spec, pretrained=False))  # init LayerScale (1e-5) would mute every block
    return f"local-dir:{encoderzoo.save_pretrained(encoder, tmp_path / 'base')}"


@pytest.fixture()
def npz(tmp_path):
    return write_npz(tmp_path / "d.npz", sizes=(24, 9, 9), classes=3)


def test_head_adapter_learns_and_reloads_to_the_same_test_metrics(effnet_tiny, tmp_path):
    results = adapt(
        effnet_tiny,
        SAMPLE,
        "head",
        tmp_path / "out",
        config=TrainConfig(epochs=2, lr=1e-2, batch_size=32),
        progress=False,
    )
    test_acc = results["probes"]["adapted"]["accuracy"]["mean"]
    assert test_acc > 0.75  # real weights on real chest X-rays; chance is 0.5 (measured 0.85 at 3 epochs)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["probes"] == results["probes"]
    model = encoderzoo.load(f"local-dir:{tmp_path / 'out'}")
    assert isinstance(model, AdaptedEncoder)
    data = open_dataset(SAMPLE)
    reader = SplitReader(data, "test", model, np.arange(data.num_samples("test")))

    proba = predict_proba(model, reader, data.task, 64)
    reloaded = evaluate(reader.labels, proba, data.label_names)
    assert reloaded["accuracy"] == test_acc
    assert reloaded["auroc"] == results["probes"]["adapted"]["auroc"]["mean"]
    # the adapted encoder's test metrics carry the probes' bootstrap intervals, over its own test probabilities
    from encoderzoo.probes.bootstrap import confidence_intervals

    intervals = confidence_intervals(reader.labels, proba)
    for metric in ("accuracy", "balanced_accuracy", "auroc"):
        assert results["probes"]["adapted"][metric]["ci95"] == pytest.approx(intervals[metric], abs=1e-12)
    meta = json.loads((tmp_path / "out" / "encoderzoo.json").read_text())
    assert meta["kind"] == "adapted" and meta["method"] == "head" and meta["trainable_params"] == 1280 + 1


METHOD_SETTINGS = {"lora": {"r": 4, "alpha": 8.0}, "vpt": {"num_prompts": 3}, "vpt-deep": {"num_prompts": 3}}


@pytest.mark.parametrize("method", [m for m in METHODS if m not in TEXT_METHODS])  # text ones: test_coop, test_ace_lora
def test_every_method_round_trips_through_its_folder(method, vit_base, tmp_path):
    """Trained-looking weights (every trainable tensor perturbed) survive save -> load("local-dir:") exactly."""
    torch.manual_seed(1)
    model = AdaptedEncoder(encoderzoo.load(vit_base), method, METHOD_SETTINGS.get(method, {}), 3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)  # LoRA's B starts at zero: without this it would be a no-op
    base_fp = weights_fingerprint(encoderzoo.load(vit_base))
    meta = describe(
        model,
        base_name=vit_base,
        base_fingerprint=base_fp,
        task="multi-class",
        label_names=["a", "b", "c"],
        dataset="npz:x",
    )
    save_adapted(model, tmp_path / "o", meta)
    reloaded = encoderzoo.load(f"local-dir:{tmp_path / 'o'}")
    pixels = torch.randn(2, 3, 28, 28)
    model.eval()
    torch.testing.assert_close(reloaded.embed(pixels), model.embed(pixels), atol=0, rtol=0)
    torch.testing.assert_close(reloaded.classify(pixels), model.classify(pixels), atol=0, rtol=0)
    assert not torch.allclose(reloaded.embed(pixels), encoderzoo.load(vit_base).embed(pixels), atol=1e-4) or (
        method == "head"
    )
    files = {p.name for p in (tmp_path / "o").iterdir()}
    if method == "lora":
        assert {"adapter_config.json", "adapter_model.safetensors"} <= files and "adapter.safetensors" not in files
        # plain peft on a plain timm trunk with the base weights reproduces the adapted embedding
        import timm
        from peft import PeftModel

        spec = model.encoder.spec
        trunk = timm.create_model(spec.architecture, num_classes=0, global_pool="token", **spec.arch_kwargs)
        base_state = encoderzoo.load(vit_base).trunk.state_dict()
        trunk.load_state_dict(base_state)
        peft_trunk = PeftModel.from_pretrained(trunk, str(tmp_path / "o")).eval()
        plain = peft_trunk.forward_head(peft_trunk.forward_features(pixels), pre_logits=True)
        torch.testing.assert_close(plain, model.embed(pixels), atol=1e-5, rtol=1e-5)
    elif method != "head":
        assert "adapter.safetensors" in files


@pytest.mark.parametrize("method", ["head", "ace-hgnn"])
def test_frozen_features_computed_once_train_exactly_like_pixels(method, vit_base, npz, tmp_path, monkeypatch):
    """With nothing in the encoder training, features are computed once; the run equals re-reading pixels."""

    def run(folder: str) -> tuple[dict, AdaptedEncoder]:
        torch.manual_seed(0)
        model = AdaptedEncoder(encoderzoo.load(vit_base), method, {}, 3)
        record = training.fit(
            model,
            open_dataset(f"npz:{npz}"),
            TrainConfig(epochs=2, lr=1e-2, batch_size=8),
            tmp_path / folder,
            progress=False,
        )
        return record, model

    cached, model_a = run("a")
    monkeypatch.setattr(AdaptedEncoder, "base_frozen", property(lambda self: False))
    pixels, model_b = run("b")
    assert cached["frozen_features_cached"] and not pixels["frozen_features_cached"]
    for a, b in zip(cached["history"], pixels["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_auroc"] == pytest.approx(b["val_auroc"])
    for (name, a), (_, b) in zip(model_a.named_parameters(), model_b.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("name", encoderzoo.list_encoders())
def test_every_registry_entry_takes_a_head_and_ace_hgnn(name):
    """Each method's embedding has the spec's output width and trains (gradients reach its parameters)."""
    spec = encoderzoo.get_spec(name).tiny_variant()
    for method in ("head", "ace-hgnn"):
        model = AdaptedEncoder(encoderzoo.load(spec, pretrained=False), method, {}, 2)
        pixels = torch.randn(2, 3, spec.input_size, spec.input_size)
        assert model.embed(pixels).shape == (2, spec.output_dim)
        model.train()
        model.classify(pixels).sum().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        cached = model.classify_features(model.frozen_features(pixels))
        torch.testing.assert_close(cached, model.classify(pixels), atol=1e-5, rtol=1e-5)


def test_resume_after_a_kill_ends_like_an_uninterrupted_run(vit_base, npz, tmp_path, monkeypatch):
    config = TrainConfig(epochs=3, lr=1e-2, batch_size=8, patience=5, augment=True)
    whole = adapt(vit_base, f"npz:{npz}", "full", tmp_path / "whole", config=config, progress=False)

    calls = {"n": 0}
    real_evaluate = training.evaluate

    def dies_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed after epoch 1's checkpoint, during epoch 2's validation
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        adapt(vit_base, f"npz:{npz}", "full", tmp_path / "resumed", config=config, progress=False)
    saved = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["state"]["epoch"] == 1
    monkeypatch.setattr(training, "evaluate", real_evaluate)
    with pytest.raises(AdapterError, match="--resume"):
        adapt(vit_base, f"npz:{npz}", "full", tmp_path / "resumed", config=config, progress=False)
    resumed = adapt(vit_base, f"npz:{npz}", "full", tmp_path / "resumed", config=config, resume=True, progress=False)
    untimed = lambda history: [{k: v for k, v in e.items() if k != "seconds"} for e in history]  # noqa: E731
    assert untimed(resumed["training"]["history"]) == untimed(whole["training"]["history"])
    a = load_file(str(tmp_path / "whole" / "adapter.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "adapter.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_multi_label_adaptation_end_to_end(vit_base, tmp_path):
    data = write_npz(tmp_path / "ml.npz", sizes=(24, 9, 9), multilabel=3)
    results = adapt(vit_base, f"npz:{data}", "head", tmp_path / "o", config=TrainConfig(epochs=2), progress=False)
    assert results["task"] == "multi-label" and results["training"]["monitor"] == "auroc"
    adapted = results["probes"]["adapted"]  # calibration and per-label conformal sets, calibrated on val
    assert len(adapted["calibration"]["per_label"]) == 3 and len(adapted["conformal"]["per_label"]) == 3
    model = encoderzoo.load(f"local-dir:{tmp_path / 'o'}")
    assert model.head.out_features == 3
    assert json.loads((tmp_path / "o" / "encoderzoo.json").read_text())["task"] == "multi-label"


def test_adapting_at_another_image_size_reloads_at_that_size(vit_base, npz, tmp_path):
    """A 28 px DINOv2 adapted at 42 px (position embeddings resampled) reloads at 42 px with identical outputs."""
    results = adapt(vit_base, f"npz:{npz}", "head", tmp_path / "o", image_size=42, config=TrainConfig(epochs=1))
    assert results["image_size"] == 42
    model = encoderzoo.load(f"local-dir:{tmp_path / 'o'}")
    assert model.spec.input_size == 42
    direct = encoderzoo.load(vit_base, image_size=42)
    pixels = torch.randn(2, 3, 42, 42)
    torch.testing.assert_close(model.embed(pixels), direct.embed(pixels), atol=0, rtol=0)


def test_resume_with_other_settings_is_refused(vit_base, npz, tmp_path):
    adapt(vit_base, f"npz:{npz}", "head", tmp_path / "o", config=TrainConfig(epochs=1), progress=False)
    with pytest.raises(AdapterError, match="other settings"):
        adapt(vit_base, f"npz:{npz}", "head", tmp_path / "o", config=TrainConfig(epochs=2, lr=0.5), resume=True)


def test_nan_loss_stops_naming_the_batch_and_keeps_the_last_good_checkpoint(vit_base, npz, tmp_path, monkeypatch):
    real = training._Classify.forward
    calls = {"n": 0}

    def nan_in_epoch_two(self, pixels):
        calls["n"] += 1
        out = real(self, pixels)
        return out * float("nan") if calls["n"] > 3 else out  # 3 train steps per epoch (24 rows, batch 8)

    monkeypatch.setattr(training._Classify, "forward", nan_in_epoch_two)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 1 \(train rows \["):
        adapt(vit_base, f"npz:{npz}", "head", tmp_path / "o", config=TrainConfig(epochs=3, batch_size=8))
    saved = torch.load(tmp_path / "o" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["trainable"].values())


def test_an_adapter_refuses_another_base(vit_base, npz, tmp_path):
    adapt(vit_base, f"npz:{npz}", "head", tmp_path / "o", config=TrainConfig(epochs=1), progress=False)
    base_dir = Path(vit_base.removeprefix("local-dir:"))
    other = encoderzoo.load(encoderzoo.get_spec("dinov2-small").tiny_variant(), pretrained=False)
    with torch.no_grad():
        other.trunk.blocks[0].attn.qkv.weight[3, 5] += 1.0  # one weight differs from the base it was trained on
    encoderzoo.save_pretrained(other, base_dir)
    with pytest.raises(AdapterError, match="not the ones the adapter"):
        encoderzoo.load(f"local-dir:{tmp_path / 'o'}")
    meta_path = tmp_path / "o" / "encoderzoo.json"
    meta = json.loads(meta_path.read_text())
    dinov3 = encoderzoo.save_pretrained(
        encoderzoo.load(encoderzoo.get_spec("dinov3-small").tiny_variant(), pretrained=False), tmp_path / "v3"
    )
    meta["base"]["name"] = f"local-dir:{dinov3}"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(AdapterError, match="differs in"):
        load_adapted(tmp_path / "o")


def test_damaged_or_foreign_folders_are_clear_errors(vit_base, npz, tmp_path):
    with pytest.raises(AdapterError, match="not written by `encoderzoo adapt`"):
        load_adapted(tmp_path)
    adapt(vit_base, f"npz:{npz}", "head", tmp_path / "o", config=TrainConfig(epochs=1), progress=False)
    (tmp_path / "o" / "head.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(AdapterError, match="damaged"):
        encoderzoo.load(f"local-dir:{tmp_path / 'o'}")


def test_frozen_base_keeps_batch_norm_statistics(effnet_tiny):
    model = AdaptedEncoder(encoderzoo.load(effnet_tiny), "full", {}, 2)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items() if "running" in k}
    model.train()
    model.classify(torch.randn(4, 3, 64, 64)).sum().backward()
    after = model.encoder.state_dict()
    assert before and all(torch.equal(before[k], after[k]) for k in before)
    assert any(p.grad is not None for p in model.encoder.parameters())


def test_methods_train_only_their_parameters(vit_base):
    head = AdaptedEncoder(encoderzoo.load(vit_base), "head", {}, 3)
    trainable = [n for n, p in head.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]
    head.train()
    assert head.head.training and not any(m.training for m in head.encoder.modules())  # frozen base: eval mode
    lora = AdaptedEncoder(encoderzoo.load(vit_base), "lora", {"r": 2, "dropout": 0.1}, 3).train()
    dropouts = [m for n, m in lora.encoder.named_modules() if n.endswith("lora_dropout")]
    assert dropouts and all(m.training for m in dropouts)
    assert not any(m.training for n, m in lora.encoder.named_modules() if "lora_" not in n)
    full = AdaptedEncoder(encoderzoo.load(vit_base), "full", {}, 3)
    assert all(p.requires_grad for p in full.parameters())
    with pytest.raises(AdapterError, match="choose from"):
        AdaptedEncoder(encoderzoo.load(vit_base), "qlora", {}, 3)
    with pytest.raises(AdapterError, match="unknown adaptation method 'qlora'"):  # before fetching dinov2-small
        adapt("dinov2-small", SAMPLE, "qlora", Path("unused"))


def test_losses_match_hand_computations():
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5], [-0.2, 0.1]])
    labels = np.array([[1.0, np.nan], [0.0, 1.0], [np.nan, np.nan]], dtype=np.float32)
    loss = make_loss("multi-label", labels, False)(logits, torch.from_numpy(labels))
    by_hand = -(np.log(1 / (1 + np.exp(-0.3))) + np.log(1 - 1 / (1 + np.exp(-2.0))) + np.log(1 / (1 + np.exp(-0.5))))
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)

    y = np.array([0, 0, 0, 1, 2, 2])
    from sklearn.utils.class_weight import compute_class_weight

    weights = compute_class_weight("balanced", classes=np.arange(3), y=y)
    z = torch.randn(6, 3)
    got = make_loss("multi-class", y, True)(z, torch.from_numpy(y))
    per_sample = -torch.log_softmax(z, 1)[torch.arange(6), torch.from_numpy(y)] * torch.tensor(weights)[y]
    # torch's weighted CE with reduction="sum" is the weighted sum; the loop divides by the sample count
    assert got.item() == pytest.approx(per_sample.sum().item(), rel=1e-5)

    yb = np.array([0, 0, 0, 1])
    zb = torch.tensor([[0.4], [-0.3], [1.2], [0.1]])
    got_b = make_loss("binary", yb, True)(zb, torch.from_numpy(yb))
    p = torch.sigmoid(zb[:, 0])
    hand_b = -(3.0 * torch.log(p[3]) + torch.log(1 - p[:3]).sum())  # pos_weight = negatives / positives = 3
    assert got_b.item() == pytest.approx(hand_b.item(), rel=1e-5)


def test_augmentation_is_seeded_and_the_identity_crop_is_exact():
    x = torch.randn(3, 3, 16, 16)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(3, 2, 3)
    torch.testing.assert_close(augment(x, identity), x, atol=1e-5, rtol=0)
    flip = torch.tensor([[-1.0, 0, 0], [0, 1.0, 0]]).expand(3, 2, 3)
    torch.testing.assert_close(augment(x, flip), x.flip(-1), atol=1e-5, rtol=0)
    a = crop_params(8, torch.Generator().manual_seed(1))
    assert torch.equal(a, crop_params(8, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, crop_params(8, torch.Generator().manual_seed(2)))
    area = a[:, 0, 0].abs() * a[:, 1, 1]
    assert ((area > 0.6 - 1e-6) & (area <= 1.0 + 1e-6)).all()


def test_split_reader_preprocesses_mixed_sizes_and_gray_like_the_transform(vit_base, tmp_path):
    rng = np.random.default_rng(0)
    shapes = [(30, 40), (28, 28, 3), (50, 20), (28, 28)]
    rows = ["path,split,label"]
    for i, shape in enumerate(shapes):
        write_png(tmp_path / f"{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))
        rows.append(f"{i}.png,{'train' if i < 3 else 'val'},{i % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = open_dataset(f"folder:{tmp_path}")
    model = AdaptedEncoder(encoderzoo.load(vit_base), "head", {}, 1)
    reader = SplitReader(data, "train", model, np.array([2, 0, 1]))
    ((_, pixels),) = list(reader.batches([np.array([0, 1, 2])]))
    expected = torch.cat([model.transform(as_nchw(data.read("train", i, i + 1)[0][None])) for i in (2, 0, 1)])
    torch.testing.assert_close(pixels, expected, atol=0, rtol=0)
    assert reader.labels.tolist() == [0, 0, 1]


def test_stratified_subset_keeps_class_shares():
    labels = np.array([0] * 80 + [1] * 20)
    picked = stratified_subset(labels, 10, seed=0)
    assert len(picked) == 10 and np.bincount(labels[picked]).tolist() == [8, 2]
    assert not np.array_equal(picked, stratified_subset(labels, 10, seed=1))


def test_cli_adapt_then_probe_the_adapted_folder(effnet_tiny, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["adapt", "--encoder", effnet_tiny, "--dataset", SAMPLE, "--method", "head", "--out", str(out)]
    result = runner.invoke(app, [*args, "--epochs", "1", "--max-train", "64", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    assert "adapted" in result.stdout and "head, best epoch 1/1" in result.stdout
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"]["train_subset"] == {"size": 64, "stratified": True, "seed": 0, "of": 200}
    again = runner.invoke(app, [*args, "--epochs", "1"])
    assert again.exit_code == 2 and "not empty" in again.output
    probe = runner.invoke(app, ["probe", "--encoder", f"local-dir:{out}", "--probes", "linear", "-f", "json"])
    assert probe.exit_code == 0, probe.output
    probed = json.loads(probe.stdout)
    assert probed["encoder"] == f"{effnet_tiny}+head" and probed["probes"]["linear"]["accuracy"]["mean"] > 0.7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_CONFIG = TrainConfig(epochs=2, lr=1e-2, batch_size=8, augment=True, grad_clip=0.0)


def _train_full(base: str, data: str, out: Path) -> None:
    """Fine-tune every weight; save the final weights and the last step's (unclipped) gradients."""
    torch.manual_seed(0)
    model = AdaptedEncoder(encoderzoo.load(base), "full", {}, 3)
    rows_trained = []  # images per training forward on this rank: each rank must see only its share
    classify = model.classify

    def counting_classify(pixels):
        if model.training:
            rows_trained.append(len(pixels))
        return classify(pixels)

    model.classify = counting_classify
    record = training.fit(model, open_dataset(f"npz:{data}"), DDP_CONFIG, out / "ckpt", progress=False)
    grads = {f"grad.{n}": p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    out.mkdir(parents=True, exist_ok=True)
    saved = {"grads": grads, "weights": weights, "history": record["history"], "rows_trained": rows_trained}
    torch.save(saved, out / f"rank{_rank()}.pt")


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_initialized() else 0


def _ddp_worker(rank, world, port, base, data, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        _train_full(base, data, Path(out))
    finally:
        dist.destroy_process_group()


def test_ddp_with_two_gloo_processes_equals_one_process(vit_base, npz, tmp_path):
    """Each rank takes half of every global batch; gradients, weights and history equal one process's."""
    mp.spawn(_ddp_worker, args=(2, _free_port(), vit_base, str(npz), str(tmp_path / "ddp")), nprocs=2, join=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: the same summation order in every matmul
    try:
        _train_full(vit_base, str(npz), tmp_path / "one")
    finally:
        torch.set_num_threads(threads)
    one = torch.load(tmp_path / "one" / "rank0.pt", weights_only=True)
    ranks = [torch.load(tmp_path / "ddp" / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert sum(one["rows_trained"]) == 2 * 24  # 24 training images, 2 epochs
    assert [sum(r["rows_trained"]) for r in ranks] == [24, 24]  # each rank trains on its half, not on everything
    for ddp in ranks:
        for a, b in zip(one["history"], ddp["history"], strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
            assert a["val_accuracy"] == b["val_accuracy"] and a["val_auroc"] == pytest.approx(b["val_auroc"])
        assert one["grads"].keys() == ddp["grads"].keys() and len(one["grads"]) > 10
        for key in one["grads"]:
            torch.testing.assert_close(ddp["grads"][key], one["grads"][key], atol=1e-6, rtol=1e-4)
        for key in one["weights"]:
            a, b = ddp["weights"][key], one["weights"][key]
            if key.endswith("attn.qkv.bias"):  # softmax ignores a key bias: its gradient is pure rounding noise,
                d = a.shape[0] // 3  # which Adam's m / sqrt(v) turns into real steps; compare the q and v slices
                a, b = torch.cat([a[:d], a[2 * d :]]), torch.cat([b[:d], b[2 * d :]])
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=key)


def test_torchrun_cli_adapt_equals_one_process(vit_base, npz, tmp_path):
    """The README's command, ``torchrun --nproc-per-node N -m encoderzoo.cli adapt ...``, on 2 gloo processes ends
    where one process does: same loss history, validation scores and LoRA weights; only rank 0 reports."""
    args = ["adapt", "--encoder", vit_base, "--dataset", f"npz:{npz}", "--method", "lora", "--device", "cpu"]
    args += ["--epochs", "2", "--batch-size", "8", "--lr", "0.01", "--lora-dropout", "0", "-f", "json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread everywhere: the same summation order in every matmul
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port"]
    runs = {
        "ddp": [*torchrun, str(_free_port()), "-m", "encoderzoo.cli", *args, "--out", str(tmp_path / "ddp")],
        "one": [sys.executable, "-m", "encoderzoo.cli", *args, "--out", str(tmp_path / "one")],
    }
    stdout = {}
    for name, command in runs.items():
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        stdout[name] = done.stdout
    assert stdout["ddp"].count('"history"') == 1  # one report, from rank 0
    ddp, one = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("ddp", "one"))
    assert len(one["training"]["history"]) == 2 and ddp["training"]["best_epoch"] == one["training"]["best_epoch"]
    for a, b in zip(one["training"]["history"], ddp["training"]["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_accuracy"] == b["val_accuracy"] and a["val_auroc"] == pytest.approx(b["val_auroc"], abs=1e-6)
    weights = [load_file(tmp_path / name / "adapter_model.safetensors") for name in ("ddp", "one")]
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 2
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], atol=1e-5, rtol=1e-4, msg=key)
    assert any(w.abs().max() > 0 for k, w in weights[1].items() if "lora_B" in k)  # peft starts B at 0: it trained
