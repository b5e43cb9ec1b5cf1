"""run_probes with saved predictions, calibration and conformal entries; every figure recomputed from the .npz."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.cli import app
from encoderzoo.probe_job import run_probes
from encoderzoo.probes import evaluate
from encoderzoo.probes.calibration import calibration_metrics

from .datasets_fixtures import write_npz

netcal = pytest.importorskip("netcal.metrics", reason="netcal is the reference (pip install 'encoderzoo[dev]')")


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    encoder = encoderzoo.load(encoderzoo.get_spec("dinov2-small").tiny_variant(), pretrained=False)
    return encoderzoo.save_pretrained(encoder, tmp_path_factory.mktemp("enc") / "tiny")


@pytest.fixture(scope="module")
def run(tiny_encoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    data = write_npz(folder / "three.npz", sizes=(60, 40, 45), classes=3, seed=3)
    results = run_probes(
        f"local-dir:{tiny_encoder_dir}",
        f"npz:{data}",
        probes=["knn", "linear", "fewshot"],
        shots=(2,),
        seeds=2,
        device="cpu",
        progress=False,
        save_predictions=folder / "predictions.npz",
    )
    return results, np.load(folder / "predictions.npz")


def test_predictions_hold_every_scored_split(run):
    results, saved = run
    keys = sorted({k.rsplit("/", 1)[0] for k in saved.files})
    expected = ["knn/test", "knn/val", "linear/test", "linear/val"]
    expected += [
        f"fewshot/{c}/2-shot/seed{s}/{split}"
        for c in ("knn", "linear", "prototype")
        for s in (0, 1)
        for split in ("test", "val")
    ]
    assert keys == sorted(expected)
    for key in ("knn/test", "linear/val"):
        split = key.split("/")[1]
        assert saved[f"{key}/proba"].dtype == np.float32 and saved[f"{key}/proba"].shape == (
            results["splits"][split],
            3,
        )
        assert saved[f"{key}/labels"].dtype == np.int64
        assert len(saved[f"{key}/ids"]) == results["splits"][split] and saved[f"{key}/ids"].dtype.kind == "U"
    assert results["predictions"].endswith("predictions.npz")


def test_results_recompute_from_the_saved_predictions(run):
    results, saved = run
    for probe in ("knn", "linear"):
        y, p = saved[f"{probe}/test/labels"], saved[f"{probe}/test/proba"].astype(np.float64)
        entry = results["probes"][probe]
        assert entry["accuracy"]["mean"] == evaluate(y, p)["accuracy"]
        # the file keeps float32: each probability moves by at most 2^-24 (relative, values <= 1), which moves a
        # mean of |accuracy - confidence| or of log p by at most ~6e-8 (linear probabilities are float64 in memory)
        f32 = 1e-7
        assert entry["calibration"]["ece"]["mean"] == pytest.approx(netcal.ECE(15).measure(p, y), abs=f32)
        assert entry["calibration"]["nll"]["mean"] == pytest.approx(calibration_metrics(y, p)["nll"], abs=f32)
        yv, pv = saved[f"{probe}/val/labels"], saved[f"{probe}/val/proba"].astype(np.float64)
        conformal = entry["conformal"]
        threshold = np.sort(1 - pv[np.arange(len(yv)), yv])[int(np.ceil((len(yv) + 1) * 0.9)) - 1]
        covered = (1 - p[np.arange(len(y)), y]) <= threshold  # LAC by hand from the saved arrays
        assert conformal["score"] == "lac" and conformal["coverage"]["mean"] == covered.mean()
        assert conformal["threshold"]["mean"] == pytest.approx(threshold, abs=f32)
        assert set(conformal["aps"]) >= {"coverage", "set_size", "empty", "singleton", "per_class"}
        scaled = entry["calibration"]["temperature_scaled"]
        assert scaled["accuracy_after"]["mean"] == scaled["accuracy_before"]["mean"] == entry["accuracy"]["mean"]


def test_fewshot_calibration_is_summarized_over_seeds(run):
    results, _ = run
    cell = results["probes"]["fewshot"]["results"]["linear"][2]
    assert len(cell["calibration"]["ece"]["values"]) == 2 and len(cell["conformal"]["coverage"]["values"]) == 2
    assert cell["conformal"]["target"] == 0.9  # a setting, not summarized


def test_cli_writes_predictions_and_plots_beside_results(tiny_encoder_dir, tmp_path):
    pytest.importorskip("matplotlib")
    data = write_npz(tmp_path / "three.npz", sizes=(40, 30, 30), classes=3, seed=4)
    out = tmp_path / "run" / "results.json"
    args = ["probe", "-e", f"local-dir:{tiny_encoder_dir}", "-d", f"npz:{data}", "--device", "cpu", "-o", str(out)]
    result = CliRunner().invoke(
        app, [*args, "--save-predictions", "--plots", "--coverage", "0.8", "--conformal", "aps"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert (out.parent / "predictions.npz").is_file()
    assert sorted(p.rsplit("/", 1)[1] for p in saved["plots"]) == ["reliability_knn.png", "reliability_linear.png"]
    assert (out.parent / "reliability_linear.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["probes"]["linear"]["conformal"]["score"] == "aps"
    assert saved["probes"]["linear"]["conformal"]["target"] == 0.8
    assert "coverage" in result.output and "ECE" in result.output


def test_cli_refuses_predictions_without_out():
    result = CliRunner().invoke(app, ["probe", "--save-predictions"])
    assert result.exit_code == 2 and "give --out" in result.output


@pytest.mark.parametrize("bad", [["--coverage", "1.5"], ["--conformal", "magic"]])
def test_cli_refuses_bad_trust_options(bad):
    result = CliRunner().invoke(app, ["probe", *bad])
    assert result.exit_code == 2 and ("coverage must be" in result.output or "unknown conformal" in result.output)
