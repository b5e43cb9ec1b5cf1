"""A paper's published figures beside ours (``published = ...`` in a suite): the shipped MedMNIST+ DINO figures,
their parsing and checks, the comparison rows, and the table in leaderboard.md and report.html on a real run."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.benchmark import published
from encoderzoo.benchmark.suite import SuiteError, expand, read_suite
from encoderzoo.cli import app

from .datasets_fixtures import write_npz

SHIPPED = "medmnist_plus_dino_vitb16.json"


def test_the_shipped_medmnist_plus_figures_cover_every_preset_dataset_and_size():
    figures = published.read(SHIPPED)
    raw, source = read_suite("medmnist+")
    suite = expand(raw, source)
    assert suite.published == SHIPPED and figures["encoder"] in suite.encoders
    specs = {d["spec"] for d in suite.datasets}
    expected = {figures["dataset"].format(dataset=d, size=s) for d in figures["figures"] for s in figures["figures"][d]}
    assert expected == specs  # 12 datasets x 4 sizes, each a cell of the preset
    assert len(specs) == 48
    # the columns name probe entries the preset's probes write
    assert {(c["probe"], c["metric"]) for c in figures["columns"].values()} == {
        ("linear-medmnist+", "accuracy"),
        ("linear-medmnist+", "auroc"),
        ("knn/medmnist_plus", "accuracy"),
    }
    assert set(raw["probes"]) >= {"knn", "linear-medmnist+"}
    # spot checks read off the paper's images (assets/benchmark_results_<dataset>.png at b67b772)
    blood, path, retina = (figures["figures"][d] for d in ("bloodmnist", "pathmnist", "retinamnist"))
    assert blood["28"] == {"linear probing ACC": "88.79±0.04", "linear probing AUC": "98.81±0.00", "k-NN ACC": "85.24"}
    assert path["224"]["linear probing ACC"] == "96.14±0.05" and retina["224"]["k-NN ACC"] == "59.00"
    assert figures["figures"]["chestmnist"]["224"]["linear probing AUC"] == "78.88±0.05"


@pytest.mark.parametrize(
    "text, expected", [("88.79±0.04", (88.79, 0.04)), ("85.24", (85.24, None)), (" 91.56 ± 0.27 ", (91.56, 0.27))]
)
def test_figures_parse_as_written(text, expected):
    assert published.parse_figure(text) == expected


@pytest.mark.parametrize("text", ["-", "n/a", "88.79±", "88,79"])
def test_a_figure_that_is_not_one_is_refused(text):
    with pytest.raises(SuiteError, match="is not a figure"):
        published.parse_figure(text, "x")


def _figures(tmp_path, **changes):
    data = {
        "title": "t",
        "citation": "c",
        "source": {"repository": "r", "commit": "0123456789", "files": "f", "rows": "w", "how": "h"},
        "unit": "percent",
        "encoder": "enc",
        "dataset": "medmnist:{dataset}@{size}",
        "columns": {"ACC": {"probe": "linear-medmnist+", "metric": "accuracy"}},
        "figures": {"bloodmnist": {"28": {"ACC": "88.79±0.04"}, "224": {"ACC": "98.70±0.01"}}},
        **changes,
    }
    path = tmp_path / "figures.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"unit": "permille"}, "unit 'permille'"),
        ({"columns": {}}, "columns \\['ACC'\\] not in columns"),
        ({"figures": {"bloodmnist": {"28": {"ACC": "high"}}}}, "bloodmnist@28 ACC: 'high' is not a figure"),
    ],
)
def test_a_bad_figures_file_is_refused(tmp_path, changes, message):
    with pytest.raises(SuiteError, match=message):
        published.read(str(_figures(tmp_path, **changes)))


def test_a_missing_field_or_file_is_refused(tmp_path):
    path = _figures(tmp_path)
    data = json.loads(path.read_text())
    del data["citation"]
    path.write_text(json.dumps(data))
    with pytest.raises(SuiteError, match="lack \\['citation'\\]"):
        published.read(str(path))
    with pytest.raises(SuiteError, match="neither a shipped file"):
        published.read(str(tmp_path / "absent.json"))


def _metric(encoder, dataset, mean, ci):
    return {
        "encoder": encoder,
        "dataset": dataset,
        "probe": "linear-medmnist+",
        "metric": "accuracy",
        "mean": mean,
        "std": 0.0,
        "ci95": ci,
        "values": [mean],
    }


def test_compare_pairs_each_figure_with_our_entry_as_fractions(tmp_path):
    figures = published.read(str(_figures(tmp_path)))
    cells = [
        {"encoder": "enc", "dataset": "medmnist:bloodmnist@28", "status": "done"},
        {"encoder": "enc", "dataset": "medmnist:bloodmnist@224", "status": "pending"},
        {"encoder": "other", "dataset": "medmnist:bloodmnist@28", "status": "done"},
    ]
    metrics = [
        _metric("enc", "medmnist:bloodmnist@28", 0.9, [0.88, 0.92]),
        _metric("other", "medmnist:bloodmnist@28", 0.5, [0.4, 0.6]),  # another encoder: never compared
    ]
    section = published.compare(figures, cells, metrics)
    done, pending = section["rows"]
    assert done["dataset"] == "medmnist:bloodmnist@28" and done["status"] == "done"
    assert done["paper"] == pytest.approx(0.8879) and done["paper_std"] == pytest.approx(0.0004)
    assert done["ours"] == 0.9 and done["difference"] == pytest.approx(0.9 - 0.8879)
    assert done["paper_inside_ci"] is True
    assert pending["status"] == "pending" and pending["ours"] is None
    metrics[0]["ci95"] = [0.89, 0.92]  # the paper's 0.8879 is now below our interval
    assert published.compare(figures, cells, metrics)["rows"][0]["paper_inside_ci"] is False
    md = published.markdown(published.compare(figures, cells, metrics))
    assert "| `medmnist:bloodmnist@28` | ACC | 0.8879 ± 0.0004 | 0.9000 [0.8900, 0.9200] | +0.0121 | no |" in md
    assert "| `medmnist:bloodmnist@224` | ACC | 0.9870 ± 0.0001 | pending | – | – |" in md
    # a run without the paper's encoder says so instead of an empty table
    other_only = published.compare(figures, cells[2:], metrics[1:])
    assert other_only["rows"] == [] and "which this run does not include" in published.markdown(other_only)


def test_a_suite_file_shows_its_published_figures_beside_ours(tmp_path, monkeypatch):
    """End to end on a stand-in: a suite file whose figures name the run's encoder; the leaderboard's table holds
    our mean and interval exactly as the cell's results.json has them, and report.html shows the same table."""
    from medmnist import INFO

    from encoderzoo.data.npz import file_md5

    tiny = dataclasses.replace(encoderzoo.get_spec("dinov2-small").tiny_variant(), name="pub-tiny")
    encoderzoo.register(tiny, overwrite=True)
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "mm"))
    (tmp_path / "mm").mkdir()
    npz = write_npz(tmp_path / "mm" / "bloodmnist.npz", sizes=(30, 16, 16), shape=(28, 28, 3), classes=2)
    monkeypatch.setitem(INFO["bloodmnist"], "MD5", file_md5(npz))
    folder = tmp_path / "suite"
    folder.mkdir()
    _figures(folder, encoder="random:pub-tiny", figures={"bloodmnist": {"28": {"ACC": "88.79±0.04"}}})
    (folder / "mine.toml").write_text(
        'name = "mine"\nencoders = ["random:pub-tiny"]\nprobes = ["linear-medmnist+"]\nfit = "pad"\n'
        'image_size = 56\npublished = "figures.json"\n[[datasets]]\nspec = "medmnist:bloodmnist@28"\n'
    )
    out = tmp_path / "run"
    try:
        result = CliRunner().invoke(
            app, ["benchmark", "--device", "cpu", "--suite", str(folder / "mine.toml"), "--out", str(out)]
        )
    finally:
        encoderzoo.unregister("pub-tiny")
    assert result.exit_code == 0, result.output
    board = json.loads((out / "leaderboard.json").read_text())
    cell = board["cells"][0]
    entry = json.loads((out / cell["results"]).read_text())["probes"]["linear-medmnist+"]["accuracy"]
    (row,) = board["published"]["rows"]
    assert row["ours"] == entry["mean"] and row["ours_ci95"] == entry["ci95"]
    assert row["difference"] == pytest.approx(entry["mean"] - 0.8879)
    md = (out / "leaderboard.md").read_text()
    assert "## Paper vs ours: t" in md and f"| {entry['mean']:.4f} [{entry['ci95'][0]:.4f}," in md
    assert "## Paper vs ours: t" in result.output
    page = (out / "report.html").read_text()
    assert "Paper vs ours" in page and f"<td>{entry['mean'] - 0.8879:+.4f}</td>" in page


def test_a_bad_published_field_is_a_usage_error_before_any_work(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(
        'encoders = ["pixels"]\npublished = "nowhere.json"\n[[datasets]]\nspec = "sample:pneumoniamnist"\n'
    )
    result = CliRunner().invoke(app, ["benchmark", "--suite", str(suite), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "neither a shipped file" in result.output
    assert not (tmp_path / "o").exists()
