"""The MedMNIST+ protocol pieces: the DINO ViT-B/16 entry against timm's own ``vit_base_patch16_224.dino``, and
the paper's linear probing (AdamW head, cosine schedule, early stopping on validation loss, its seeds)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

import encoderzoo
from encoderzoo.probes.medmnist_plus import PAPER_SEEDS, MedMNISTPlusLinearProbe, paper_linear_results

from .helpers import randomize_


def test_dino_entry_matches_timms_dino_model(tmp_path):
    """Our tiny DINO ViT-B/16 loaded from a timm checkpoint = timm's tagged model's pooled output (its head input)."""
    spec = encoderzoo.get_spec("dino-vitb16").tiny_variant()
    reference = timm.create_model("vit_base_patch16_224.dino", pretrained=False, num_classes=0, **spec.arch_kwargs)
    randomize_(reference)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "model.safetensors"))
    encoder = encoderzoo.load(spec, weights=tmp_path / "model.safetensors")
    x = torch.randn(3, 3, spec.input_size, spec.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x)  # global_pool='token', head Identity: the class token after the final norm
        ours = encoder.embed(x)
    assert reference.pretrained_cfg["tag"] == "dino" and reference.pretrained_cfg["mean"] == spec.mean
    assert (ours - expected).abs().max().item() <= 5e-6  # float32, two layers of width 32: rounding only


def test_schedule_is_timms_cosine_stepped_after_each_epoch():
    from timm.scheduler import CosineLRScheduler

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    scheduler = CosineLRScheduler(optimizer, t_initial=100, cycle_limit=1, t_in_epochs=True)
    probe = MedMNISTPlusLinearProbe()
    for epoch in range(100):  # the paper's loop: train the epoch, then scheduler.step(epoch=epoch)
        assert probe.lr_at(epoch) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12, abs=1e-18), epoch
        scheduler.step(epoch=epoch)


def _blobs(n, seed, noise=1.0, classes=3, dim=8):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(0, 3, (classes, dim))
    y = np.arange(n) % classes
    return (centres[y] + rng.normal(0, noise, (n, dim))).astype(np.float32), y


def test_keeps_the_lowest_validation_loss_and_stops_after_five_stale_epochs():
    X, y = _blobs(90, 1)
    Xv, _ = _blobs(30, 2)
    yv = np.random.default_rng(3).integers(0, 3, 30)  # random validation labels: val loss soon rises
    probe = MedMNISTPlusLinearProbe(lr=1e-2, device="cpu").fit(X, y, Xv, yv)
    losses = [h["val_loss"] for h in probe.history_]
    assert probe.best_epoch_ == int(np.argmin(losses)) and probe.best_val_loss_ == min(losses)
    assert probe.epochs_run_ == probe.best_epoch_ + 6 < 100  # stale epochs best+1 .. best+5, then stop
    head_loss = probe._val_loss(probe.head_, torch.from_numpy(Xv), torch.from_numpy(yv))
    assert head_loss == pytest.approx(probe.best_val_loss_, rel=1e-6)  # the kept head is the best one, not the last


def test_learns_separable_data_and_is_seeded():
    X, y = _blobs(120, 1, noise=0.5)
    Xv, yv = _blobs(60, 2, noise=0.5)
    a = MedMNISTPlusLinearProbe(seed=PAPER_SEEDS[0], lr=1e-2, device="cpu").fit(X, y, Xv, yv)
    b = MedMNISTPlusLinearProbe(seed=PAPER_SEEDS[0], lr=1e-2, device="cpu").fit(X, y, Xv, yv)
    c = MedMNISTPlusLinearProbe(seed=PAPER_SEEDS[1], lr=1e-2, device="cpu").fit(X, y, Xv, yv)
    assert np.array_equal(a.predict_proba(Xv), b.predict_proba(Xv))
    assert not np.array_equal(a.predict_proba(Xv), c.predict_proba(Xv))
    assert (a.predict(Xv) == yv).mean() > 0.95


def test_results_entry_has_the_three_paper_seeds_and_intervals():
    X, y = _blobs(60, 1)
    Xv, yv = _blobs(30, 2)
    Xt, yt = _blobs(45, 3)
    entry = paper_linear_results(X, y, Xv, yv, Xt, yt, device="cpu")
    assert entry["seeds"] == [9930641, 115149041, 252139603]
    assert len(entry["accuracy"]["values"]) == 3 and len(entry["epochs_run"]) == 3
    for metric in ("accuracy", "balanced_accuracy", "auroc"):
        low, high = entry[metric]["ci95"]
        assert low <= entry[metric]["mean"] <= high
