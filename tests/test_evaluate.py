"""run_probes end to end on a multi-label dataset (the CLI's sample test covers the binary case)."""

from __future__ import annotations

import numpy as np
import pytest

import encoderzoo
from encoderzoo.probe_job import results_table, run_probes

from .datasets_fixtures import write_npz


@pytest.fixture
def tiny_encoder_dir(tmp_path):
    encoder = encoderzoo.load(encoderzoo.get_spec("dinov2-small").tiny_variant(), pretrained=False)
    return encoderzoo.save_pretrained(encoder, tmp_path / "tiny")


def test_multilabel_run_covers_every_probe(tiny_encoder_dir, tmp_path):
    data = write_npz(tmp_path / "chest.npz", sizes=(60, 30, 30), multilabel=3, seed=1)
    results = run_probes(
        f"local-dir:{tiny_encoder_dir}",
        f"npz:{data}",
        probes=["knn", "linear", "fewshot", "curation"],
        seeds=2,
        fractions=(0.5,),
        device="cpu",
        progress=False,
    )
    probes = results["probes"]
    assert results["task"] == "multi-label" and results["splits"] == {"train": 60, "val": 30, "test": 30}
    for name in ("knn", "linear"):
        assert 0.0 <= probes[name]["auroc"]["mean"] <= 1.0
    assert probes["fewshot"] == {"skipped": "few-shot episodes need single-label tasks"}
    budget = probes["curation"]["budgets"]["0.5"]
    assert budget["size"] == 30 and len(budget["random"]["auroc"]["values"]) == 2
    assert "near_duplicates" in probes["curation"]
    assert "knn" in results_table(results)
    # the MedMNIST+ kNN on multi-label data, as the paper's knn_majority_vote + get_ACC_kNN compute it:
    # each label's mean over the 11 Euclidean neighbours > 0.5, accuracy averaged over labels
    from sklearn.neighbors import NearestNeighbors

    from encoderzoo.data import open_dataset
    from encoderzoo.engine import embed_dataset

    encoder, dataset = encoderzoo.load(f"local-dir:{tiny_encoder_dir}"), open_dataset(f"npz:{data}")
    train, test = (embed_dataset(encoder, dataset, s, use_cache=False, progress=False) for s in ("train", "test"))
    _, index = NearestNeighbors(n_neighbors=11).fit(train.features.numpy()).kneighbors(test.features.numpy())
    predicted = train.labels[index].mean(axis=1) > 0.5
    paper_acc = np.mean([(predicted[:, j] == test.labels[:, j]).mean() for j in range(test.labels.shape[1])])
    assert probes["knn"]["medmnist_plus"]["accuracy"]["mean"] == pytest.approx(paper_acc, abs=1e-12)


def test_probes_refuse_a_dataset_without_val(tiny_encoder_dir, tmp_path):
    path = tmp_path / "noval.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        train_images=rng.integers(0, 255, (10, 28, 28), np.uint8),
        train_labels=np.arange(10) % 2,
        test_images=rng.integers(0, 255, (6, 28, 28), np.uint8),
        test_labels=np.arange(6) % 2,
    )
    with pytest.raises(ValueError, match=r"lacks split\(s\) \['val'\]"):
        run_probes(f"local-dir:{tiny_encoder_dir}", f"npz:{path}", device="cpu", progress=False)
