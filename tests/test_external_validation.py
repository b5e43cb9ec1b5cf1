"""Per-label AUROC in every probe's results, and external validation: fit on one replica, score another's test."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.cli import app
from encoderzoo.data.vocabulary import NoCommonLabelsError
from encoderzoo.per_label import per_label, per_label_table
from encoderzoo.probe_job import run_probes

from .cxr_fixtures import write_covidx, write_mimic, write_rsna, write_siim
from .datasets_fixtures import write_nih

runner = CliRunner()


@pytest.fixture(scope="module")
def effnet_tiny():
    """efficientnet-lite0 with its real ImageNet weights at 64 px: cheap, and its features tell patterns apart."""
    spec = encoderzoo.get_spec("efficientnet-lite0").tiny_variant()
    encoderzoo.register(spec)
    yield spec.name
    encoderzoo.unregister(spec.name)


def _pattern(positive: bool, rng: np.random.Generator) -> np.ndarray:
    """Fine stripes for positives, a smooth blob for negatives, both with noise: a probe on real features can
    learn the difference on one replica and find it on the other."""
    y, x = np.mgrid[0:48, 0:48]
    base = 127 + 120 * np.sign(np.sin(x * 1.6)) if positive else 200 * np.exp(-((x - 24) ** 2 + (y - 24) ** 2) / 300)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def test_per_label_counts_and_undefined_auroc():
    y = np.array([[1, 0], [0, 0], [np.nan, 0], [1, 0]], np.float32)
    metrics = {"auroc_per_label": {"Effusion": 0.75, "Edema": float("nan")}}
    out = per_label(y, metrics)
    assert out["auroc_per_label"] == {"Effusion": 0.75, "Edema": None}  # null in JSON, never 0.5
    assert out["test_label_counts"] == {
        "Effusion": {"positives": 2, "negatives": 1, "unknown": 1},
        "Edema": {"positives": 0, "negatives": 4, "unknown": 0},
    }
    assert per_label(np.array([0, 1]), {"auroc": 0.5}) == {}  # single-label: nothing per label
    table = per_label_table({"probes": {"linear": out}})
    assert table.splitlines()[1].split() == ["label", "positives", "negatives", "linear"]
    assert table.splitlines()[2].split() == ["Effusion", "2", "1", "0.750"]
    assert table.splitlines()[3].split() == ["Edema", "0", "4", "—"]


def test_every_multilabel_probe_records_auroc_per_label(effnet_tiny, tmp_path, one_thread):
    root = write_nih(tmp_path)
    results = run_probes(
        effnet_tiny,
        f"nih:{root}",
        probes=["knn", "linear", "curation"],
        seeds=2,
        fractions=(0.5,),
        device="cpu",
        progress=False,
    )
    from encoderzoo.data import open_dataset

    test_labels = open_dataset(f"nih:{root}").labels("test")
    for name in ("knn", "linear"):
        probe = results["probes"][name]
        counts = probe["test_label_counts"]
        assert list(counts) == results["dataset_info"]["label_names"]
        for j, label in enumerate(counts):
            assert counts[label]["positives"] == int(test_labels[:, j].sum())
            assert counts[label]["negatives"] == len(test_labels) - int(test_labels[:, j].sum())
            defined = 0 < counts[label]["positives"] < len(test_labels)
            assert (probe["auroc_per_label"][label] is not None) == defined
        scored = [v for v in probe["auroc_per_label"].values() if v is not None]
        assert probe["auroc"]["mean"] == pytest.approx(np.mean(scored), abs=1e-12)  # the macro mean of these
    curation = results["probes"]["curation"]
    assert curation["test_label_counts"] == results["probes"]["knn"]["test_label_counts"]
    for kind in ("curated", "random"):
        per_label_runs = curation["budgets"]["0.5"][kind]["auroc_per_label"]
        for label, value in per_label_runs.items():
            assert (value is None) == (results["probes"]["knn"]["auroc_per_label"][label] is None)
        seeds = len(curation["budgets"]["0.5"][kind]["auroc"]["values"])
        assert all(len(v["values"]) == seeds for v in per_label_runs.values() if v is not None)
    json.dumps(results, allow_nan=False)  # per-label values are plain JSON (null, not NaN)


def test_external_validation_rsna_to_mimic_over_shared_labels(effnet_tiny, tmp_path, one_thread):
    rng = np.random.default_rng(0)
    ids = [f"{i:04d}{'p' if i % 2 else 'n'}" for i in range(40)]  # 'p' ids are positive in write_rsna
    rsna = write_rsna(tmp_path / "rsna", dicom=False, images={i: _pattern(i.endswith("p"), rng) for i in ids})
    mimic = write_mimic(tmp_path / "mimic", subjects=10, test_subjects=4, image=lambda pos: _pattern(pos, rng))
    results = run_probes(
        effnet_tiny,
        f"rsna-pneumonia:{rsna}",
        test_dataset=f"mimic-cxr:{mimic}",
        probes=["knn", "linear"],
        device="cpu",
        progress=False,
    )
    ext = results["external_validation"]
    assert results["dataset"] == f"rsna-pneumonia:{rsna}" and results["test_dataset"] == f"mimic-cxr:{mimic}"
    assert ext["labels_scored"] == ["Pneumonia", "Lung Opacity"]  # the two RSNA has; MIMIC has both too
    assert "Atelectasis" in ext["labels_only_in_test_dataset"]
    assert results["splits"] == {"train": 28, "val": 6, "test": 8}  # MIMIC's 4 test subjects x 2 frontal images
    for name in ("knn", "linear"):
        probe = results["probes"][name]
        assert probe["test_label_counts"] == {
            "Pneumonia": {"positives": 4, "negatives": 4, "unknown": 0},  # study 1 positive, study 2 "No Finding"
            "Lung Opacity": {"positives": 0, "negatives": 8, "unknown": 0},  # blank in every MIMIC row
        }
        assert probe["auroc_per_label"]["Lung Opacity"] is None and probe["auroc_skipped"] == ["Lung Opacity"]
        assert probe["auroc_per_label"]["Pneumonia"] == 1.0  # the pattern learnt on RSNA is found on MIMIC


def test_single_shared_label_is_a_binary_task_and_none_shared_is_refused(effnet_tiny, tmp_path, one_thread):
    siim, nih = write_siim(tmp_path / "siim"), write_nih(tmp_path / "nih")
    results = run_probes(
        effnet_tiny,
        f"siim-pneumothorax:{siim}",
        test_dataset=f"nih:{nih}",
        probes=["knn"],
        device="cpu",
        progress=False,
    )
    assert results["task"] == "binary" and results["external_validation"]["labels_scored"] == ["Pneumothorax"]
    assert results["splits"]["test"] == 4  # NIH's test images, none unknown for Pneumothorax
    with pytest.raises(NoCommonLabelsError, match="share none of the common labels"):
        run_probes(
            effnet_tiny,
            f"siim-pneumothorax:{siim}",
            test_dataset=f"rsna-pneumonia:{write_rsna(tmp_path / 'rsna')}",
            device="cpu",
            progress=False,
        )


def test_cli_test_dataset_and_per_label(effnet_tiny, tmp_path, one_thread):
    rsna, mimic = write_rsna(tmp_path / "rsna"), write_mimic(tmp_path / "mimic", subjects=8, test_subjects=2)
    out = tmp_path / "results.json"
    args = ["probe", "-e", effnet_tiny, "-d", f"rsna-pneumonia:{rsna}", "--test-dataset", f"mimic-cxr:{mimic}"]
    result = runner.invoke(app, [*args, "-p", "knn", "--device", "cpu", "--per-label", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"scored on mimic-cxr:{mimic} test" in result.stdout
    assert "AUROC per label on test" in result.stdout and "Lung Opacity" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["external_validation"]["test_dataset"] == f"mimic-cxr:{mimic}"
    covidx = write_covidx(tmp_path / "covidx")
    bad = runner.invoke(app, [*args[:5], "--test-dataset", f"covidx:{covidx}"])
    assert bad.exit_code == 2 and "share none of the common labels" in bad.output


def test_adapt_scores_the_test_dataset(effnet_tiny, tmp_path, one_thread):
    from encoderzoo.adapters import TrainConfig, adapt

    rsna, mimic = write_rsna(tmp_path / "rsna"), write_mimic(tmp_path / "mimic", subjects=10, test_subjects=4)
    results = adapt(
        effnet_tiny,
        f"rsna-pneumonia:{rsna}",
        "head",
        tmp_path / "out",
        config=TrainConfig(epochs=1, batch_size=16),
        test_dataset=f"mimic-cxr:{mimic}",
        progress=False,
    )
    assert results["test_dataset"] == f"mimic-cxr:{mimic}" and results["task"] == "multi-label"
    assert results["external_validation"]["labels_scored"] == ["Pneumonia", "Lung Opacity"]
    assert results["splits"] == {"train": 28, "val": 6, "test": 8}
    adapted = results["probes"]["adapted"]
    assert adapted["test_label_counts"]["Pneumonia"] == {"positives": 4, "negatives": 4, "unknown": 0}
    assert adapted["auroc_per_label"]["Lung Opacity"] is None
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["external_validation"]["test_dataset"] == f"mimic-cxr:{mimic}"


def test_readme_external_validation_output_is_the_committed_run():
    """The README's pasted output is what the code prints for the committed results.json of that run."""
    import re
    from pathlib import Path

    from encoderzoo.probe_job import results_table

    root = Path(__file__).resolve().parents[1]
    results = json.loads((root / "benchmarks" / "results" / "external_validation_kermany_cpu.json").read_text())
    text = (root / "README.md").read_text()
    block = re.search(
        r"<!-- external-validation:start -->\n```\n(.*?)\n```\n<!-- external-validation:end -->", text, re.S
    )
    assert block and block.group(1) == results_table(results) + "\n" + per_label_table(results)
    assert results["external_validation"]["labels_scored"] == ["Pneumonia", "Lung Opacity"]
    internal = json.loads((root / "benchmarks" / "results" / "internal_rsna_kermany_cpu.json").read_text())
    stated = re.search(r"reach AUROC ([\d.]+) \(kNN\) and\s+([\d.]+) \(linear\)", text)
    assert stated and [float(v) for v in stated.groups()] == [
        round(internal["probes"][p]["auroc"]["mean"], 3) for p in ("knn", "linear")
    ]


def test_relabelled_dataset_reads_the_chosen_rows(tmp_path):
    from encoderzoo.data import open_dataset
    from encoderzoo.data.relabel import RelabelledDataset

    from .datasets_fixtures import write_npz

    base = open_dataset(f"npz:{write_npz(tmp_path / 'x.npz', sizes=(12, 5, 7))}")
    rows = {"train": np.array([0, 1, 2, 5, 9, 10]), "test": np.array([3])}
    labels = {"train": np.arange(6) % 2, "test": np.array([1])}
    view = RelabelledDataset(base, rows, labels, "binary", ["a", "b"])
    assert view.splits == ("train", "test") and view.num_samples("train") == 6
    expected = base.read("train", 0, 12)[rows["train"]]
    assert np.array_equal(view.read("train", 0, 6), expected)
    assert np.array_equal(view.read("train", 2, 5), expected[2:5])  # a window across two runs
    assert view.sample_ids("train") == [base.sample_ids("train")[i] for i in rows["train"]]
    other = RelabelledDataset(base, rows, {"train": 1 - labels["train"], "test": labels["test"]}, "binary", ["a", "b"])
    assert other.fingerprint("train") != view.fingerprint("train")  # new labels: never the same cache entry


def test_any_dataset_with_mappable_labels_validates_externally(effnet_tiny, tmp_path, one_thread):
    """The bundled PneumoniaMNIST sample (an npz, classes normal / pneumonia) fitted, scored on an RSNA replica."""
    rsna = write_rsna(tmp_path / "rsna")
    results = run_probes(
        effnet_tiny,
        "sample:pneumoniamnist",
        test_dataset=f"rsna-pneumonia:{rsna}",
        probes=["knn"],
        device="cpu",
        progress=False,
    )
    assert results["task"] == "binary" and results["external_validation"]["labels_scored"] == ["Pneumonia"]
    assert results["external_validation"]["labels_only_in_test_dataset"] == ["Lung Opacity"]
    assert results["splits"]["test"] == 6 and results["dataset_info"]["label_names"] == ["no Pneumonia", "Pneumonia"]


def test_align_labels_common_spec_and_unknown_rows_dropped_for_one_label(tmp_path):
    from encoderzoo.data import open_dataset
    from encoderzoo.external import align

    from .datasets_fixtures import write_png

    nih = open_dataset(f"nih:{write_nih(tmp_path / 'nih')}?labels=common")
    rsna = open_dataset(f"rsna-pneumonia:{write_rsna(tmp_path / 'rsna')}")
    aligned = align(nih, rsna)
    assert aligned.labels == ["Pneumonia"] and aligned.train.task == "binary"  # NIH lacks Lung Opacity
    assert np.array_equal(aligned.test.labels("test"), rsna.labels("test"))
    native = open_dataset(f"nih:{tmp_path / 'nih'}")
    column = native.label_names.index("Pneumonia")
    assert np.array_equal(aligned.train.labels("train"), native.labels("train")[:, column].astype(np.int64))

    folder = tmp_path / "folder"  # a multi-label folder whose Pneumothorax is unknown (-1) for two images
    lines = ["path,split,Pneumothorax,Edema"]
    for i, (split, value) in enumerate([("train", "1"), ("train", "-1"), ("train", "0"), ("val", "0"), ("test", "-1")]):
        write_png(folder / f"{i}.png", np.full((8, 8), i, np.uint8))
        lines.append(f"{i}.png,{split},{value},0")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    aligned = align(open_dataset(f"folder:{folder}"), open_dataset(f"siim-pneumothorax:{write_siim(tmp_path / 's')}"))
    assert aligned.labels == ["Pneumothorax"]
    assert aligned.train.labels("train").tolist() == [1, 0] and aligned.train.sample_ids("train") == ["0.png", "2.png"]
    assert aligned.info["unknown_label_images_dropped"]["train_dataset"] == {"train": 1, "val": 0}
    assert np.array_equal(aligned.train.read("train", 0, 2)[:, 0, 0], [0, 2])  # the images of the kept rows
