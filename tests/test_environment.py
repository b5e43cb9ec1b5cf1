"""One description of the measuring machine: results.json, `encoderzoo speed` and the benchmark scripts label the
same CPU the same way, and the label does not change with the thread count."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from encoderzoo import bench, environment


def test_one_cpu_label_everywhere_whatever_the_threads(monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from _results import environment as script_environment
    finally:
        sys.path.pop(0)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = environment.device_name("cpu")
        torch.set_num_threads(2)
        two = environment.device_name(torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert one == two and "thread" not in one
    assert environment.device_name("mps") == "mps"  # not the CPU's name for another accelerator
    assert bench.environment(torch.device("cpu"))["device"] == one
    assert script_environment()["device"] == one and "command" in script_environment()
    from encoderzoo.probe_job import device_name

    assert device_name("cpu") == one


def test_cpu_name_reads_the_model_name(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n")
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo" else path, *a, **k)
    )
    environment.cpu_name.cache_clear()
    try:
        assert environment.cpu_name() == "AMD EPYC 7B13 64-Core Processor"
    finally:
        environment.cpu_name.cache_clear()


def test_versions_name_missing_packages():
    assert environment.versions(("numpy", "no-such-package-xyz"))["no-such-package-xyz"] == "not installed"
    assert set(environment.versions()) == set(environment.RESULT_PACKAGES)


def test_the_old_probe_job_module_name_still_works_and_warns(monkeypatch):
    import importlib

    import encoderzoo.probe_job as probe_job

    monkeypatch.delitem(sys.modules, "encoderzoo.evaluate", raising=False)
    with pytest.warns(DeprecationWarning, match="import encoderzoo.probe_job"):
        old = importlib.import_module("encoderzoo.evaluate")
    assert old.run_probes is probe_job.run_probes and old.results_table is probe_job.results_table


def test_the_old_module_still_exports_what_adapt_imported_from_it(monkeypatch):
    import importlib

    monkeypatch.delitem(sys.modules, "encoderzoo.evaluate", raising=False)
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("encoderzoo.evaluate")
    assert old.device_name is environment.device_name and old.versions is environment.versions
