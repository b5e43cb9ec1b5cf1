"""The robustness probe end to end (tiny encoder), its cache keys, and the stratified subsets used for quick runs."""

from __future__ import annotations

import numpy as np
import pytest

import encoderzoo
from encoderzoo.corruptions import PRESETS, unavailable
from encoderzoo.data import open_dataset
from encoderzoo.data.subset import SubsetDataset, stratified_rows
from encoderzoo.probe_job import run_probes
from encoderzoo.robustness import CorruptedDataset

from .datasets_fixtures import write_npz


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    encoder = encoderzoo.load(encoderzoo.get_spec("dinov2-small").tiny_variant(), pretrained=False)
    return encoderzoo.save_pretrained(encoder, tmp_path_factory.mktemp("enc") / "tiny")


@pytest.fixture(scope="module")
def rgb_npz(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("data") / "rgb.npz", sizes=(48, 30, 24), shape=(28, 28, 3), seed=2)


def test_robustness_scores_the_clean_fitted_probes_on_every_corrupted_test_set(
    tiny_encoder_dir, rgb_npz, tmp_path, monkeypatch
):
    monkeypatch.setenv("ENCODERZOO_CACHE", str(tmp_path / "cache"))
    kwargs = dict(
        probes=["knn", "linear", "robustness"],
        corruptions="bloodmnist",
        severities=(1, 5),
        device="cpu",
        progress=False,
        save_predictions=tmp_path / "predictions.npz",
    )
    results = run_probes(f"local-dir:{tiny_encoder_dir}", f"npz:{rgb_npz}", **kwargs)
    summary = results["probes"]["robustness"]
    assert summary["preset"] == "bloodmnist" and summary["severities"] == [1, 5]
    missing = unavailable("bloodmnist")  # stain deposits need medmnistc's ink masks: recorded when absent
    assert summary["corruptions"] == [name for name in PRESETS["bloodmnist"] if name not in missing]
    assert summary["not_implemented"] == [] and summary["unavailable"] == missing
    assert "bubble" in summary["corruptions"]
    for probe in ("knn", "linear"):
        entry = results["probes"][probe]["robustness"]
        cells = [c for by_sev in entry["corruptions"].values() for c in by_sev.values()]
        assert len(cells) == 2 * len(summary["corruptions"])
        clean = entry["clean"]["accuracy"]
        mean = np.mean([c["accuracy"]["mean"] for c in cells])
        assert entry["robust_accuracy"]["mean"] == pytest.approx(mean, abs=1e-15)
        assert entry["relative_drop_accuracy"]["mean"] == pytest.approx((clean - mean) / clean, abs=1e-15)
        cell = entry["corruptions"]["pixelate"]["5"]
        drop = (clean - cell["accuracy"]["mean"]) / clean
        assert cell["relative_drop_accuracy"]["mean"] == pytest.approx(drop, abs=1e-15)
    saved = np.load(tmp_path / "predictions.npz")
    clean_proba = saved["robustness/knn/clean/0/test/proba"]  # the linear probe may be constant on random features
    worst = saved["robustness/knn/pixelate/5/test/proba"]
    assert clean_proba.shape == worst.shape == (24, 3) and not np.array_equal(clean_proba, worst)
    # one cache entry per corrupted test set (+ the clean canvas), next to train/val/test
    keys = {p.parent.name for p in (tmp_path / "cache" / "embeddings").glob("*/test.safetensors")}
    assert len(keys) == 1 + 1 + 2 * len(summary["corruptions"])
    again = run_probes(f"local-dir:{tiny_encoder_dir}", f"npz:{rgb_npz}", **{**kwargs, "save_predictions": None})
    assert again["probes"]["linear"]["robustness"] == results["probes"]["linear"]["robustness"]  # from the cache
    assert {p.parent.name for p in (tmp_path / "cache" / "embeddings").glob("*/test.safetensors")} == keys


def test_corrupted_datasets_have_their_own_fingerprints(rgb_npz):
    base = open_dataset(f"npz:{rgb_npz}")
    prints = {
        CorruptedDataset(base, "bloodmnist", name, severity, "cpu").fingerprint("test")
        for name, severity in [("none", 0), ("pixelate", 1), ("pixelate", 2), ("saturate", 1)]
    }
    assert len(prints) == 4 and base.fingerprint("test") not in prints
    batch = CorruptedDataset(base, "bloodmnist", "pixelate", 3, "cpu").read("test", 0, 5)
    assert tuple(batch.shape) == (5, 3, 224, 224)


def test_robustness_refuses_what_it_cannot_do(tiny_encoder_dir, rgb_npz):
    spec = f"npz:{rgb_npz}"
    with pytest.raises(ValueError, match="add knn and/or linear"):
        run_probes(f"local-dir:{tiny_encoder_dir}", spec, probes=["fewshot", "robustness"], device="cpu")
    with pytest.raises(ValueError, match="needs a MedMNIST-C preset"):
        run_probes(f"local-dir:{tiny_encoder_dir}", spec, probes=["linear", "robustness"], device="cpu")
    with pytest.raises(ValueError, match="unknown corruption preset"):
        run_probes(
            f"local-dir:{tiny_encoder_dir}", spec, probes=["linear", "robustness"], corruptions="x", device="cpu"
        )
    with pytest.raises(ValueError, match="severities must be among"):
        run_probes(
            f"local-dir:{tiny_encoder_dir}",
            spec,
            probes=["linear", "robustness"],
            corruptions="bloodmnist",
            severities=(0,),
            device="cpu",
            progress=False,
        )


def test_stratified_rows_keep_class_shares():
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    rows = stratified_rows(labels, 100, seed=0)
    assert len(rows) == 100 and np.array_equal(np.bincount(labels[rows]), [60, 30, 10])
    assert np.array_equal(rows, np.sort(rows)) and len(np.unique(rows)) == 100
    rare = np.repeat([0, 1], [999, 1])
    assert np.bincount(rare[stratified_rows(rare, 10, seed=1)], minlength=2)[1] == 1  # every class kept
    assert np.array_equal(stratified_rows(labels, 5000, seed=0), np.arange(1000))


def test_subset_reads_the_chosen_rows(rgb_npz):
    base = open_dataset(f"npz:{rgb_npz}")
    subset = SubsetDataset(base, {"train": 12, "test": 6}, seed=3)
    rows = subset.rows["train"]
    assert subset.num_samples("train") == 12 and subset.num_samples("val") == base.num_samples("val")
    assert np.array_equal(subset.read("train", 2, 7), base.read("train", 0, 48)[rows[2:7]])
    assert subset.sample_ids("train") == [base.sample_ids("train")[i] for i in rows]
    assert np.array_equal(subset.labels("train"), base.labels("train")[rows])
    assert subset.fingerprint("train") != base.fingerprint("train")
    assert subset.fingerprint("val") == base.fingerprint("val")
    assert subset.describe()["subset"]["rows"] == {"train": 12, "test": 6}
    with pytest.raises(ValueError, match="positive integer"):
        SubsetDataset(base, {"train": 0})
