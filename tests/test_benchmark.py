"""``encoderzoo benchmark``: a cell is the probe job, resume, refusal of another suite, failed cells, usage errors,
shards and --report, presets (sample, medmnist+ and cxr on stand-ins), and the leaderboard's ranks and marks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import encoderzoo
from encoderzoo.benchmark import leaderboard
from encoderzoo.benchmark.runner import cell_dir, read_suite_json, slug
from encoderzoo.benchmark.suite import Cell, SuiteError, expand, read_suite
from encoderzoo.cli import app

from .datasets_fixtures import write_nih, write_npz

TINY = "bm-tiny"


@pytest.fixture(autouse=True)
def tiny_entry():
    """A registered tiny ViT, so ``random:bm-tiny`` names a real architecture that embeds in milliseconds."""
    spec = dataclasses.replace(encoderzoo.get_spec("dinov2-small").tiny_variant(), name=TINY)
    encoderzoo.register(spec, overwrite=True)
    yield spec
    encoderzoo.unregister(TINY)


@pytest.fixture
def data(tmp_path):
    return [
        write_npz(tmp_path / "a.npz", sizes=(40, 20, 24), shape=(28, 28), seed=1),
        write_npz(tmp_path / "b.npz", sizes=(40, 20, 24), shape=(28, 28, 3), seed=2),
    ]


def _bench(args, **kwargs):
    return CliRunner().invoke(app, ["benchmark", "--device", "cpu", *args], **kwargs)


def _adhoc(encoders, datasets, out, probes="knn,linear"):
    args = [a for e in encoders for a in ("--encoder", e)] + [a for d in datasets for a in ("--dataset", f"npz:{d}")]
    return [*args, "--probes", probes, "--out", str(out)]


def _cell(out, encoder, dataset):
    return cell_dir(out, Cell(encoder, dataset, {}))


def test_a_cell_is_the_probe_job_and_models_load_once(data, tmp_path, monkeypatch):
    import encoderzoo.engine as engine
    import encoderzoo.loading as loading

    loads, hashes = [], []
    real_load, real_hash = loading.load, engine.weights_fingerprint
    monkeypatch.setattr(loading, "load", lambda name, **kw: loads.append(name) or real_load(name, **kw))
    monkeypatch.setattr(engine, "weights_fingerprint", lambda m: hashes.append(1) or real_hash(m))
    out = tmp_path / "run"
    result = _bench(_adhoc(["pixels", f"random:{TINY}"], data, out))
    assert result.exit_code == 0, result.output
    assert loads == ["pixels", f"random:{TINY}"] and len(hashes) == 2  # once per encoder, not per cell
    monkeypatch.setattr(loading, "load", real_load)
    for encoder in ("pixels", f"random:{TINY}"):
        single = tmp_path / f"{slug(encoder)}.json"
        probe = CliRunner().invoke(
            app, ["probe", "-e", encoder, "-d", f"npz:{data[1]}", "-p", "knn,linear", "--device", "cpu", "-o", single]
        )
        assert probe.exit_code == 0, probe.output
        expected = json.loads(single.read_text())
        cell = json.loads((_cell(out, encoder, f"npz:{data[1]}") / "results.json").read_text())
        expected.pop("timings_s"), cell.pop("timings_s")
        assert cell == expected
    board = json.loads((out / "leaderboard.json").read_text())
    assert {c["status"] for c in board["cells"]} == {"done"} and len(board["cells"]) == 4
    assert "| `pixels` |" in result.stdout and "mean rank" in result.stdout
    page = (out / "report.html").read_text()
    assert "<script" not in page.lower() and "http" not in page.replace("http-equiv", "")
    if (out / "leaderboard.png").is_file():  # with the plots extra
        assert "data:image/png;base64," in page


def test_rerun_skips_finished_cells_and_another_suite_is_refused(data, tmp_path, monkeypatch):
    import encoderzoo.probe_job as evaluate

    out = tmp_path / "run"
    assert _bench(_adhoc(["pixels"], data, out, "knn")).exit_code == 0
    stamp = (_cell(out, "pixels", f"npz:{data[0]}") / "results.json").stat().st_mtime_ns
    monkeypatch.setattr(evaluate, "run_probes", lambda *a, **k: pytest.fail("a finished cell ran again"))
    again = _bench(_adhoc(["pixels"], data, out, "knn"))
    assert again.exit_code == 0 and "2 of 2 cell(s) already finished" in again.stderr
    assert (_cell(out, "pixels", f"npz:{data[0]}") / "results.json").stat().st_mtime_ns == stamp
    other = _bench(_adhoc(["pixels", "pixels@8"], data, out, "knn"))
    assert other.exit_code == 2
    assert "holds another suite" in other.stderr and "encoders +pixels@8" in other.stderr
    probes = _bench(_adhoc(["pixels"], data, out, "knn,linear"))
    assert probes.exit_code == 2 and "probes ['knn'] -> ['knn', 'linear']" in probes.stderr


def test_a_failed_cell_is_recorded_and_the_others_finish(data, tmp_path):
    out = tmp_path / "run"
    missing = tmp_path / "missing.npz"
    args = _adhoc(["pixels", f"local-dir:{tmp_path / 'nowhere'}"], [data[0], missing], out, "knn")
    result = _bench(args)
    assert result.exit_code == 1, result.output
    board = json.loads((out / "leaderboard.json").read_text())
    status = {(c["encoder"], c["dataset"]): c for c in board["cells"]}
    assert status[("pixels", f"npz:{data[0]}")]["status"] == "done"
    bad_data = status[("pixels", f"npz:{missing}")]
    assert bad_data["status"] == "failed" and "missing.npz" in bad_data["error"]
    bad_model = status[(f"local-dir:{tmp_path / 'nowhere'}", f"npz:{data[0]}")]
    assert bad_model["status"] == "failed" and "WeightsNotFoundError" in bad_model["error"]
    assert "Failed cells:" in (out / "leaderboard.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--probes", "knn,bogus"], "unknown probe"),
        (["--suite", "medmnist"], "Did you mean 'medmnist+'"),
        (["--shard", "3/2"], "--shard '3/2'"),
        (["--encoder", "efficientnet-lite"], "Did you mean"),
        (["--encoder", "pixels@x"], "pixels@SIZE"),
        (["--rank-by", "linear:f1"], "PROBE:METRIC"),
        (["--sizes", "28"], "--sizes applies to suites with sizes"),
        (["--suite", "cxr"], "--data-root"),
        (["--report"], "pass its --out"),
    ],
)
def test_usage_errors_exit_2_before_any_work(args, message, tmp_path):
    result = _bench([*args, "--out", str(tmp_path / "run")] if "--report" not in args else args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_shards_cover_the_suite_and_report_assembles_them(data, tmp_path):
    out = tmp_path / "run"
    encoders = ["pixels", "pixels@8", "pixels@14"]
    first = _bench([*_adhoc(encoders, data, out, "knn"), "--shard", "1/2"])
    assert first.exit_code == 0, first.output
    board = json.loads((out / "leaderboard.json").read_text())
    assert [c["status"] for c in board["cells"]] == ["done", "pending"] * 3  # cells 1, 3, 5 of 6
    assert "3 cell(s) not run yet" in (out / "leaderboard.md").read_text()
    assert _bench([*_adhoc(encoders, data, out, "knn"), "--shard", "2/2"]).exit_code == 0
    report = CliRunner().invoke(app, ["benchmark", "--out", str(out), "--report", "--rank-by", "knn:accuracy"])
    assert report.exit_code == 0, report.output
    board = json.loads((out / "leaderboard.json").read_text())
    assert {c["status"] for c in board["cells"]} == {"done"} and board["rank_by"] == "knn:accuracy"
    assert board["ranking"]["probe"] == "knn" and len(board["ranking"]["encoders"]) == 3


def test_without_matplotlib_the_rest_is_written(data, tmp_path, monkeypatch):
    from encoderzoo.benchmark import plots

    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "run"
    result = _bench(_adhoc(["pixels"], data[:1], out, "knn"))
    assert result.exit_code == 0 and "pip install 'encoderzoo[plots]'" in result.stderr
    assert {p.name for p in out.iterdir()} >= {"leaderboard.json", "leaderboard.md", "leaderboard.csv", "report.html"}
    assert not (out / "leaderboard.png").exists()


def test_list_suites_and_the_presets_expand():
    listing = CliRunner().invoke(app, ["benchmark", "--list-suites"])
    assert listing.exit_code == 0
    for name in ("sample", "medmnist+", "cxr"):
        assert f"{name}: " in listing.stdout
    sample = expand(*read_suite("sample"))
    assert sample.encoders == ["efficientnet-lite0", "random:efficientnet-lite0", "pixels"]
    assert [d["spec"] for d in sample.datasets] == ["sample:pneumoniamnist"]
    raw, source = read_suite("medmnist+")
    full = expand(raw, source)
    assert len(full.datasets) == 48 and all(d["fit"] == "pad" and d["image_size"] == 224 for d in full.datasets)
    assert "medmnist:bloodmnist@28" in [d["spec"] for d in full.datasets]
    assert len(expand(raw, source, sizes=[28, 224]).datasets) == 24
    assert full.hash != expand(raw, source, sizes=[28]).hash


def test_medmnist_plus_runs_on_stand_ins(tmp_path, monkeypatch):
    """Two stand-in files under their official names (md5s registered as official), the rest absent (offline):
    the absent ones fail, the stand-ins run under the preset's protocol (pad into the canvas)."""
    from medmnist import INFO

    from encoderzoo.data.npz import file_md5

    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "mm"))
    (tmp_path / "mm").mkdir()
    for name, shape in (("bloodmnist", (28, 28, 3)), ("breastmnist", (28, 28))):
        path = write_npz(tmp_path / "mm" / f"{name}.npz", sizes=(30, 16, 16), shape=shape, classes=2)
        monkeypatch.setitem(INFO[name], "MD5", file_md5(path))
    out = tmp_path / "run"
    args = ["--suite", "medmnist+", "--sizes", "28", "--encoder", f"random:{TINY}", "--image-size", "56"]
    result = _bench([*args, "--out", str(out)])  # the preset's probes: knn, linear, linear-medmnist+
    assert result.exit_code == 1, result.output  # 10 of 12 datasets are not here
    board = json.loads((out / "leaderboard.json").read_text())
    done = [c for c in board["cells"] if c["status"] == "done"]
    assert sorted(c["dataset"] for c in done) == ["medmnist:bloodmnist@28", "medmnist:breastmnist@28"]
    results = json.loads((out / done[0]["results"]).read_text())
    assert results["protocol"]["preprocessing"]["fit"] == "pad" and results["image_size"] == 56
    assert "medmnist_plus" in results["probes"]["knn"] and "linear" in results["probes"]
    assert results["probes"]["linear-medmnist+"]["seeds"] == [9930641, 115149041, 252139603]
    assert board["rank_by"] == "linear-medmnist+:accuracy" and board["ranking"]["encoders"][0]["datasets"] == 2


def test_cxr_uses_the_datasets_found_under_data_root(tmp_path):
    root = tmp_path / "cxr"
    write_nih(root / "nih")
    raw, source = read_suite("cxr")
    suite = expand(raw, source, data_root=root)
    assert [d["spec"] for d in suite.datasets] == [f"nih:{root}/nih"]
    assert suite.left_out == [f"chexpert:{root}/chexpert"]
    with pytest.raises(SuiteError, match="none of its datasets was found"):
        expand(raw, source, data_root=tmp_path / "empty")


def test_average_ranks_share_ties():
    assert leaderboard.average_ranks([0.9, 0.8, 0.9, 0.7]) == [1.5, 3.0, 1.5, 4.0]
    assert leaderboard.average_ranks([0.5, 0.5, 0.5]) == [2.0, 2.0, 2.0]


def _fake_run(tmp_path, values):
    """An --out with hand-written cells: ``values[(encoder, dataset)] = (mean, ci)`` for linear auroc."""
    datasets = [{"spec": d} for d in sorted({d for _, d in values})]
    raw = {"encoders": sorted({e for e, _ in values}), "datasets": datasets}
    suite = expand(raw, "test")
    out = tmp_path / "fake"
    for (encoder, dataset), (mean, ci) in values.items():
        folder = cell_dir(out, Cell(encoder, dataset, {}))
        folder.mkdir(parents=True)
        entry = {"mean": mean, "std": 0.0, "values": [mean], "ci95": ci}
        results = {"probes": {"linear": {"auroc": entry, "accuracy": entry}}, "versions": {"torch": "x"}}
        (folder / "results.json").write_text(json.dumps(results))
    return suite, out


def test_ranking_means_and_interval_marks(tmp_path):
    values = {
        ("a", "npz:one"): (0.90, [0.85, 0.95]),
        ("b", "npz:one"): (0.88, [0.84, 0.92]),  # overlaps a's interval
        ("c", "npz:one"): (0.70, [0.60, 0.80]),  # does not
        ("a", "npz:two"): (0.60, [0.50, 0.70]),
        ("b", "npz:two"): (0.80, [0.75, 0.85]),
        ("c", "npz:two"): (0.60, [0.55, 0.65]),  # tied with a
    }
    for encoder in "abc":
        encoderzoo.register(dataclasses.replace(encoderzoo.get_spec(TINY), name=encoder), overwrite=True)
    try:
        suite, out = _fake_run(tmp_path, values)
        board = leaderboard.build(suite, out)
    finally:
        for encoder in "abc":
            encoderzoo.unregister(encoder)
    ranking = board["ranking"]
    table = ranking["table"]
    assert [table[e]["npz:one"]["rank"] for e in "abc"] == [1.0, 2.0, 3.0]
    assert [table[e]["npz:two"]["rank"] for e in "abc"] == [2.5, 1.0, 2.5]
    assert [table[e]["npz:one"]["overlaps_best"] for e in "abc"] == [True, True, False]
    assert [r["encoder"] for r in ranking["encoders"]] == ["b", "a", "c"]  # mean ranks 1.5, 1.75, 2.75
    assert [r["mean_rank"] for r in ranking["encoders"]] == [1.5, 1.75, 2.75]
    assert ranking["encoders"][0]["mean"] == pytest.approx((0.88 + 0.80) / 2)
    md = leaderboard.markdown(board)
    assert "| `b` | 0.880 ≈ | **0.800** | 0.840 | 1.50 |" in md
    assert "| `c` | 0.700 | 0.600 | 0.650 | 2.75 |" in md  # [0.55, 0.65] misses the best [0.75, 0.85]
    csv_lines = leaderboard.csv_text(board).splitlines()
    assert csv_lines[0] == "encoder,npz:one,npz:two,mean,mean_rank"
    assert csv_lines[1] == "b,0.880000,0.800000,0.840000,1.5000"
    assert len(board["metrics"]) == 12


def test_ranking_by_trust_metrics_knows_which_way_is_better(tmp_path):
    """Issue 19's metrics rank by their own entries: lower ECE / coverage gap is better, higher robust AUROC."""
    from encoderzoo.benchmark.suite import parse_rank_by

    assert parse_rank_by("linear:ece") == ("linear/calibration", "ece")
    assert parse_rank_by("linear:coverage_gap") == ("linear/conformal", "coverage_gap")
    assert parse_rank_by("knn:robust_auroc") == ("knn/robustness", "robust_auroc")
    values = {("a", "npz:one"): (0.10, 0.90), ("b", "npz:one"): (0.02, 0.80), ("c", "npz:one"): (0.05, 0.95)}
    for encoder in "abc":
        encoderzoo.register(dataclasses.replace(encoderzoo.get_spec(TINY), name=encoder), overwrite=True)
    datasets = [{"spec": "npz:one"}]
    suite = expand({"encoders": ["a", "b", "c"], "datasets": datasets}, "test")
    out = tmp_path / "fake"
    for (encoder, dataset), (ece, robust) in values.items():
        folder = cell_dir(out, Cell(encoder, dataset, {}))
        folder.mkdir(parents=True)
        leaf = lambda v: {"mean": v, "std": 0.0, "values": [v], "ci95": None}  # noqa: E731
        linear = {"calibration": {"ece": leaf(ece)}, "robustness": {"robust_auroc": leaf(robust)}}
        (folder / "results.json").write_text(json.dumps({"probes": {"linear": linear}, "versions": {}}))
    try:
        by_ece = leaderboard.build(suite, out, "linear:ece")["ranking"]
        robust_board = leaderboard.build(suite, out, "linear:robust_auroc")
        by_robust = robust_board["ranking"]
    finally:
        for encoder in "abc":
            encoderzoo.unregister(encoder)
    assert [r["encoder"] for r in by_ece["encoders"]] == ["b", "c", "a"] and by_ece["lower_is_better"]
    assert by_ece["table"]["b"]["npz:one"]["best"]
    assert [r["encoder"] for r in by_robust["encoders"]] == ["c", "a", "b"] and not by_robust["lower_is_better"]
    # robustness has no interval: the table says so instead of implying every difference is real
    assert "robust_auroc has no confidence interval here, so no ≈ is marked" in leaderboard.markdown(robust_board)


def test_slugs_are_safe_and_distinct():
    assert slug("pixels") == "pixels"
    names = ["random:x", "random_x", "npz:/a/b.npz", "npz:/a_b.npz"]
    slugs = [slug(n) for n in names]
    assert len(set(slugs)) == 4 and all("/" not in s and ":" not in s for s in slugs)
    assert Path(slugs[0]).name == slugs[0]


def test_fewshot_picture_and_ranking_by_a_nested_probe(data, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    args = [*_adhoc(["pixels", "pixels@8"], data[:1], out, "fewshot"), "--shots", "1,2", "--seeds", "2"]
    result = _bench([*args, "--rank-by", "fewshot/results/linear/2:accuracy"])
    assert result.exit_code == 0, result.output
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["ranking"]["probe"] == "fewshot/results/linear/2"
    assert all("mean" in board["ranking"]["table"][e][f"npz:{data[0]}"] for e in ("pixels", "pixels@8"))
    assert (out / "fewshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 2


def test_pixels_takes_its_size_from_its_name_not_image_size(data, tmp_path):
    out = tmp_path / "run"
    result = _bench([*_adhoc(["pixels", f"random:{TINY}"], data[:1], out, "knn"), "--image-size", "56"])
    assert result.exit_code == 0, result.output
    pixels = json.loads((_cell(out, "pixels", f"npz:{data[0]}") / "results.json").read_text())
    tiny = json.loads((_cell(out, f"random:{TINY}", f"npz:{data[0]}") / "results.json").read_text())
    assert pixels["image_size"] == 28 and tiny["image_size"] == 56


def test_suite_file_external_validation_cell(tmp_path):
    """A dataset entry's test_dataset: the cell fits on its dataset and scores the other's test split (issue 18)."""
    from .cxr_fixtures import write_rsna

    rsna = write_rsna(tmp_path / "rsna")
    suite = tmp_path / "ext.toml"
    suite.write_text(
        'name = "ext"\nencoders = ["pixels"]\nprobes = ["knn"]\n'
        f'[[datasets]]\nspec = "sample:pneumoniamnist"\ntest_dataset = "rsna-pneumonia:{rsna}"\n'
    )
    out = tmp_path / "run"
    result = _bench(["--suite", str(suite), "--out", str(out)])
    assert result.exit_code == 0, result.output
    cell = json.loads((_cell(out, "pixels", "sample:pneumoniamnist") / "results.json").read_text())
    assert cell["external_validation"]["labels_scored"] == ["Pneumonia"]
    assert cell["test_dataset"] == f"rsna-pneumonia:{rsna}"
    bad = tmp_path / "bad.toml"
    bad.write_text('encoders = ["pixels"]\n[[datasets]]\nspec = "sample:pneumoniamnist"\ntest_dataset = 3\n')
    refused = _bench(["--suite", str(bad), "--out", str(tmp_path / "r2")])
    assert refused.exit_code == 2 and "test_dataset must be a dataset spec string" in refused.output


def _torchrun_worker(rank, world, port, datasets, out, log_dir, cache):
    """One rank of a 2-process gloo run of the benchmark command, recording which splits it embedded and whether
    it ran the probe job."""
    import os

    import torch
    import torch.distributed as dist

    import encoderzoo.engine as engine
    import encoderzoo.probe_job as evaluate
    from encoderzoo.benchmark.command import run

    torch.set_num_threads(1)
    os.environ["ENCODERZOO_CACHE"] = cache
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    calls = []
    real_embed, real_probe = engine.embed_splits, evaluate.run_probes
    engine.embed_splits = lambda model, data, splits, **kw: (
        calls.append(["embed", list(splits)]) or real_embed(model, data, splits, **kw)
    )
    evaluate.run_probes = lambda *a, **kw: calls.append(["probe"]) or real_probe(*a, **kw)
    try:
        code = run(
            suite=None,
            encoders=["pixels"],
            datasets=[f"npz:{d}" for d in datasets],
            settings={"probes": ["knn", "linear"]},
            out=Path(out),
            device="cpu",
            batch_size=None,
            rank_by=None,
            sizes=None,
            data_root=None,
            shard=None,
            report_only=False,
            echo=lambda text: calls.append(["echo"]),
            warn=lambda text: None,
            progress=False,
        )
        Path(log_dir, f"rank{rank}.json").write_text(json.dumps({"code": code, "calls": calls}))
    finally:
        dist.destroy_process_group()


def test_under_torchrun_every_rank_embeds_and_rank_0_alone_probes_and_reports(data, tmp_path, one_thread):
    """One thread on both sides: the float64 probe fits then sum in the same order, so the cells are identical."""
    import torch.multiprocessing as mp

    from .test_engine import _free_port

    out = tmp_path / "ddp"
    args = (2, _free_port(), [str(d) for d in data], str(out), str(tmp_path), str(tmp_path / "cache"))
    mp.spawn(_torchrun_worker, args=args, nprocs=2, join=True)
    logs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [log["code"] for log in logs] == [0, 0]
    for log in logs:  # both ranks embedded train/val/test of both datasets together
        assert [c for c in log["calls"] if c[0] == "embed"][:2] == [["embed", ["train", "val", "test"]]] * 2
    assert [c for c in logs[0]["calls"] if c[0] != "embed"] == [["probe"], ["probe"], ["echo"]]
    assert [c for c in logs[1]["calls"] if c[0] != "embed"] == []  # no probe job, no report on rank 1
    one = tmp_path / "one"
    assert _bench(_adhoc(["pixels"], data, one)).exit_code == 0
    for dataset in data:
        cells = [json.loads((_cell(o, "pixels", f"npz:{dataset}") / "results.json").read_text()) for o in (out, one)]
        for cell in cells:
            cell.pop("timings_s")
        assert cells[0] == cells[1]


def test_without_rank_by_the_leaderboard_ranks_a_probe_that_ran(data, tmp_path):
    """--probes knn and no --rank-by: ranked by kNN AUROC, not by a linear probe no cell has; a cell without
    the ranked entry says so instead of 'done'."""
    out = tmp_path / "k"
    result = _bench(_adhoc(["pixels"], data[:1], out, probes="knn"))
    assert result.exit_code == 0, result.output
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["rank_by"] == "knn:auroc" and board["ranking"]["encoders"][0]["mean"] is not None
    by_linear = leaderboard.build(read_suite_json(out), out, "linear:auroc")
    assert by_linear["ranking"]["table"]["pixels"][f"npz:{data[0]}"] == {"status": "no linear:auroc"}
