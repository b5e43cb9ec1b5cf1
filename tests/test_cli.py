from __future__ import annotations

import json

from typer.testing import CliRunner

from encoderzoo import list_encoders
from encoderzoo.cli import app

runner = CliRunner()


def test_list_table_shows_every_family():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for family in ("dinov2", "dinov3", "rad-dino", "medsiglip", "biomedclip", "efficientnet"):
        assert family in result.stdout
    assert len(result.stdout.strip().splitlines()) == len(list_encoders()) + 1


def test_list_json_with_pattern():
    result = runner.invoke(app, ["list", "dinov3-*", "--format", "json"])
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list_encoders("dinov3-*")
    assert {r["pooling"] for r in rows} == {"cls"}


def test_list_no_match_is_an_error():
    result = runner.invoke(app, ["list", "nothing*"])
    assert result.exit_code == 1


def test_info_json_round_trips_the_spec():
    result = runner.invoke(app, ["info", "medsiglip-448", "--format", "json"])
    data = json.loads(result.stdout)
    assert data["gated"] is True and data["source"]["repo_id"] == "google/medsiglip-448"


def test_info_unknown_name_suggests():
    result = runner.invoke(app, ["info", "biomedclp"])
    assert result.exit_code == 2
    assert "Did you mean 'biomedclip'" in result.output


def test_card_command():
    result = runner.invoke(app, ["card", "efficientnet-lite0"])
    assert result.exit_code == 0 and "# efficientnet-lite0" in result.stdout


def test_embed_command_writes_embeddings(tmp_path):
    from encoderzoo.embeddings import EmbeddingSet

    from .datasets_fixtures import write_npz

    data = write_npz(tmp_path / "d.npz", sizes=(4, 3, 2), shape=(16, 16))
    result = runner.invoke(
        app,
        [
            "embed",
            "-e",
            "efficientnet-lite0",
            "-d",
            f"npz:{data}",
            "--split",
            "val,test",
            "-o",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["split"], r["n"], r["dim"]) for r in rows] == [("val", 3, 1280), ("test", 2, 1280)]
    saved = EmbeddingSet.load(tmp_path / "out" / "val.safetensors")
    assert saved.features.shape == (3, 1280) and saved.metadata["encoder"] == "efficientnet-lite0"


def test_embed_command_reports_bad_dataset(tmp_path):
    result = runner.invoke(app, ["embed", "-e", "efficientnet-lite0", "-d", f"npz:{tmp_path / 'none.npz'}"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_probe_with_no_arguments_runs_the_bundled_sample(tmp_path):
    result = runner.invoke(app, ["probe", "--device", "cpu", "--out", str(tmp_path / "results.json")])
    assert result.exit_code == 0, result.output
    assert "efficientnet-lite0 on sample:pneumoniamnist" in result.stdout
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["splits"] == {"train": 200, "val": 100, "test": 200}
    # measured on CPU (README): kNN 0.795, linear 0.800 on the 200 balanced test images; chance is 0.5. The run is
    # deterministic up to BLAS summation order, so the margin is 4 images (0.02).
    for probe, measured in (("knn", 0.795), ("linear", 0.800)):
        cell = saved["probes"][probe]["accuracy"]
        assert set(cell) == {"mean", "std", "values", "ci95"} and abs(cell["mean"] - measured) <= 0.02, (probe, cell)
        assert cell["ci95"][0] < cell["mean"] < cell["ci95"][1], cell  # 200 test images: an interval, not a point
    linear = saved["probes"]["linear"]
    assert linear["converged"] and linear["selection_metric"] == "accuracy" and linear["standardize"] in (True, False)
    assert len(linear["path"]) == 26 and all(r["converged"] for r in linear["path"])  # 13 C x {raw, z-scored}
    assert {"encoder", "revision", "dataset", "protocol", "seeds", "versions", "device", "timings_s"} <= set(saved)


def test_probe_rejects_unknown_probe():
    result = runner.invoke(app, ["probe", "--probes", "knn,magic"])
    assert result.exit_code == 2 and "unknown probe" in result.output
