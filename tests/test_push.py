"""``encoderzoo push`` against a Hub-protocol server on loopback, with the real huggingface_hub client.

huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE once at import (conftest switched it offline), so the
``hub`` fixture points ``huggingface_hub.constants`` at the loopback server for one test. Xet is disabled so
LFS files travel through the git-LFS batch API the server implements.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from encoderzoo.hub import (
    HAI_DEF_NOTICE,
    HubAuthError,
    HubPushError,
    InvalidAdaptedFolderError,
    LicenceRestrictionError,
    NotShareableError,
    push,
)
from tests.hub_server import HubServer
from tests.test_adapted_card import make_adapted_folder

GOOD_TOKEN = "hf_test_sentinel_6f1c0a9e5b7d4c3a8e2f"
BAD_TOKEN = "hf_bad_sentinel_93c1e07d55a24b8f9d61"
PUSHED = {"encoderzoo.json", "results.json", "head.safetensors", "README.md"}
LORA_FILES = {"adapter_config.json", "adapter_model.safetensors"}


@pytest.fixture
def hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    with HubServer(tokens={GOOD_TOKEN}) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        template = server.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.delenv("ENCODERZOO_OFFLINE", raising=False)
        monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
        yield server


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _lora_folder(tmp_path: Path) -> Path:
    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="lora")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.pt").write_bytes(b"training state")
    (folder / "model.safetensors").write_bytes(b"pretend base weights")  # never pushed
    (folder / "notes.txt").write_text("private notes")
    return folder


def test_push_uploads_exactly_the_adapter_files_byte_for_byte(hub, tmp_path):
    from encoderzoo.adapted_card import adapted_card

    folder = _lora_folder(tmp_path)
    before = _tree_digest(folder)
    result = push(folder, "org/lora-demo")
    arrived = hub.state.files("org/lora-demo")
    assert set(arrived) == PUSHED | LORA_FILES | {".gitattributes"}
    for name in LORA_FILES | {"encoderzoo.json", "results.json", "head.safetensors"}:
        assert arrived[name] == (folder / name).read_bytes(), name
    assert arrived["README.md"].decode() == str(adapted_card(folder, "org/lora-demo"))
    repo = hub.state.repos["org/lora-demo"]
    assert hashlib.sha256(arrived["adapter_model.safetensors"]).hexdigest() in repo.lfs_objects  # went through LFS
    assert result.created_repo and result.changed and result.commit == repo.branches["main"]
    assert _tree_digest(folder) == before  # the push writes nothing locally


def test_repush_makes_no_empty_commit_and_a_change_makes_one(hub, tmp_path):
    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="lora")
    first = push(folder, "org/idem")
    commits = len(hub.state.commits_on("org/idem"))
    again = push(folder, "org/idem")
    assert not again.changed and again.commit == first.commit
    assert len(hub.state.commits_on("org/idem")) == commits
    posts = [p for m, p in hub.state.requests if m == "POST" and p.endswith("/commit/main")]
    assert len(posts) == 1
    results = json.loads((folder / "results.json").read_text())
    results["device"] = "a different machine"
    (folder / "results.json").write_text(json.dumps(results))
    third = push(folder, "org/idem")
    assert third.uploaded == ["README.md", "results.json"]  # the card shows the device
    assert len(hub.state.commits_on("org/idem")) == commits + 1
    # same sizes, other bytes: a regular file (git blob id) and an LFS file (sha256)
    text = (folder / "results.json").read_text()
    (folder / "results.json").write_text(text.replace('"epochs_run": 3', '"epochs_run": 4'))
    head_size = (folder / "head.safetensors").stat().st_size
    save_file({"weight": torch.ones(1, 32), "bias": torch.ones(1)}, str(folder / "head.safetensors"))
    assert (folder / "head.safetensors").stat().st_size == head_size
    fourth = push(folder, "org/idem")
    assert fourth.uploaded == ["README.md", "head.safetensors", "results.json"]
    assert hub.state.files("org/idem")["head.safetensors"] == (folder / "head.safetensors").read_bytes()


def test_existing_repository_is_reused_and_foreign_files_kept(hub, tmp_path):
    hub.create_repo("org/existing", files={"notes.md": b"kept", "adapter.safetensors": b"stale vpt adapter"})
    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="lora")
    result = push(folder, "org/existing")
    assert not result.created_repo
    arrived = hub.state.files("org/existing")
    assert arrived["notes.md"] == b"kept"
    assert "adapter.safetensors" not in arrived and result.deleted == ["adapter.safetensors"]  # from another method
    assert arrived["adapter_model.safetensors"] == (folder / "adapter_model.safetensors").read_bytes()


def test_push_to_a_branch_leaves_main_alone(hub, tmp_path):
    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="head")
    push(folder, "org/branchy")
    main_before = hub.state.repos["org/branchy"].branches["main"]
    results = json.loads((folder / "results.json").read_text())
    results["seeds"] = [1]
    (folder / "results.json").write_text(json.dumps(results))
    result = push(folder, "org/branchy", revision="experiment", message="try seed 1")
    repo = hub.state.repos["org/branchy"]
    assert repo.branches["main"] == main_before
    assert repo.commits[repo.branches["experiment"]].message == "try seed 1" == repo.commits[result.commit].message
    assert hub.state.files("org/branchy", "experiment")["results.json"] == (folder / "results.json").read_bytes()


def test_private_flag_creates_a_private_repository(hub, tmp_path):
    push(make_adapted_folder(tmp_path, method="head"), "org/secret", private=True)
    assert hub.state.repos["org/secret"].private


def test_private_push_into_an_existing_public_repository_is_refused(hub, tmp_path):
    hub.create_repo("org/public", private=False)
    folder = make_adapted_folder(tmp_path, base="medsiglip-448", method="head")
    (folder / "LICENSE").write_text("HAI-DEF terms text")
    with pytest.raises(HubPushError, match="already exists and is public"):
        push(folder, "org/public", private=True)
    assert set(hub.state.files("org/public")) == {".gitattributes"}
    assert not any("preupload" in p or "/commit/" in p for _, p in hub.state.requests)


def test_card_metadata_rejected_by_the_hub_is_a_clear_error(hub, tmp_path, monkeypatch):
    from tests import hub_server

    monkeypatch.setattr(hub_server, "KNOWN_LICENSES", {"mit", "other"})  # a Hub that no longer knows apache-2.0
    with pytest.raises(HubPushError, match="rejected the model card's metadata") as info:
        push(make_adapted_folder(tmp_path, method="head"), "org/card")
    assert "apache-2.0" in str(info.value)
    assert not any("preupload" in p or "/commit/" in p for _, p in hub.state.requests)


def test_bad_token_gives_a_clear_401_error_without_the_token(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", BAD_TOKEN)
    folder = make_adapted_folder(tmp_path, method="head")
    with pytest.raises(HubAuthError) as info:
        push(folder, "org/nope")
    message = str(info.value)
    assert "401" in message and "hf auth login" in message and BAD_TOKEN not in message
    assert "org/nope" not in hub.state.repos


def test_read_only_token_gives_a_clear_403_error(hub, tmp_path, monkeypatch):
    hub.state.read_only_tokens.add(BAD_TOKEN)
    monkeypatch.setenv("HF_TOKEN", BAD_TOKEN)
    with pytest.raises(HubAuthError, match="no write access to org/nope") as info:
        push(make_adapted_folder(tmp_path, method="head"), "org/nope")
    assert "403" in str(info.value) and BAD_TOKEN not in str(info.value)


@pytest.mark.parametrize("branch", ["", "bad branch", "a~1", "a..b", "/abs", "x:y", "dev.lock", "-dash"])
def test_invalid_branch_is_refused_before_any_request(hub, tmp_path, branch):
    with pytest.raises(ValueError, match="branch"):
        push(make_adapted_folder(tmp_path, method="head"), "org/x", revision=branch)
    assert hub.state.requests == []


def test_missing_token_is_refused_before_any_request(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubAuthError, match="no Hugging Face token"):
        push(make_adapted_folder(tmp_path, method="head"), "org/nope")
    assert hub.state.requests == []


def test_connection_dropped_mid_commit_then_rerun_completes(hub, tmp_path):
    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="lora")
    before = _tree_digest(folder)
    hub.drop_next("POST", r"/commit/main$")
    with pytest.raises(HubPushError, match="interrupted") as info:
        push(folder, "org/flaky")
    assert "Run the same push again" in str(info.value) and GOOD_TOKEN not in str(info.value)
    assert _tree_digest(folder) == before
    assert set(hub.state.files("org/flaky")) == {".gitattributes"}  # nothing committed
    lfs_puts = sum(1 for m, p in hub.state.requests if m == "PUT")
    result = push(folder, "org/flaky")
    assert result.changed
    assert sum(1 for m, p in hub.state.requests if m == "PUT") == lfs_puts  # LFS objects were not sent again
    arrived = hub.state.files("org/flaky")
    assert all(arrived[n] == (folder / n).read_bytes() for n in LORA_FILES | {"head.safetensors"})


def test_connection_dropped_during_an_lfs_upload_is_retried_by_the_client(hub, tmp_path):
    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="lora")
    hub.drop_next("PUT", r"^/_lfs/")
    push(folder, "org/retry")
    arrived = hub.state.files("org/retry")["adapter_model.safetensors"]
    assert arrived == (folder / "adapter_model.safetensors").read_bytes()


# --- bad input: refused before any request ------------------------------------------------------------------
def _break_not_adapted(folder: Path) -> None:
    meta = json.loads((folder / "encoderzoo.json").read_text())
    (folder / "encoderzoo.json").write_text(json.dumps({"format_version": 1, "spec": meta["base"]["spec"]}))


def _break_missing_adapter(folder: Path) -> None:
    (folder / "adapter_model.safetensors").unlink()


def _break_corrupt_adapter(folder: Path) -> None:
    data = (folder / "adapter_model.safetensors").read_bytes()
    (folder / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])


def _break_corrupt_head(folder: Path) -> None:
    (folder / "head.safetensors").write_bytes(b"\x00" * 64)


def _break_results_method(folder: Path) -> None:
    results = json.loads((folder / "results.json").read_text())
    results["protocol"]["method"] = "vpt"
    (folder / "results.json").write_text(json.dumps(results))


def _break_results_base(folder: Path) -> None:
    results = json.loads((folder / "results.json").read_text())
    results["base_encoder"] = "rad-dino"
    (folder / "results.json").write_text(json.dumps(results))


def _break_lora_rank(folder: Path) -> None:
    config = json.loads((folder / "adapter_config.json").read_text())
    config["r"] = 16
    (folder / "adapter_config.json").write_text(json.dumps(config))


def _break_head_outputs(folder: Path) -> None:
    save_file({"weight": torch.zeros(3, 32), "bias": torch.zeros(3)}, str(folder / "head.safetensors"))


def _break_no_metadata(folder: Path) -> None:
    (folder / "encoderzoo.json").unlink()


@pytest.mark.parametrize(
    ("breakage", "phrase"),
    [
        (_break_not_adapted, "does not describe an adapted encoder"),
        (_break_no_metadata, "not written by `encoderzoo adapt`"),
        (_break_missing_adapter, "lacks ['adapter_model.safetensors']"),
        (_break_corrupt_adapter, "adapter_model.safetensors cannot be read"),
        (_break_corrupt_head, "head.safetensors cannot be read"),
        (_break_results_method, "method: results.json says 'vpt'"),
        (_break_results_base, "base encoder: results.json says 'rad-dino'"),
        (_break_lora_rank, "disagrees with method_config"),
        (_break_head_outputs, "head.safetensors has 3 outputs, but the task is binary"),
    ],
)
def test_bad_folder_is_refused_before_anything_is_uploaded(hub, tmp_path, breakage, phrase):
    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="lora")
    breakage(folder)
    with pytest.raises(InvalidAdaptedFolderError) as info:
        push(folder, "org/bad")
    assert phrase in str(info.value)
    assert hub.state.requests == []


@pytest.mark.parametrize("repo_id", ["no-slash", "a/b/c", "org/bad name", "org/-dash", "/name", ""])
def test_invalid_repo_id_is_refused_before_anything_is_uploaded(hub, tmp_path, repo_id):
    with pytest.raises(ValueError, match="repository id"):
        push(make_adapted_folder(tmp_path, method="head"), repo_id)
    assert hub.state.requests == []


def test_adapter_of_a_local_base_is_not_shareable(hub, tmp_path):
    folder = make_adapted_folder(tmp_path, method="head")
    meta = json.loads((folder / "encoderzoo.json").read_text())
    meta["base"]["name"] = "local-dir:/home/alice/my-encoder"
    (folder / "encoderzoo.json").write_text(json.dumps(meta))
    with pytest.raises(NotShareableError, match="a folder on this machine"):
        push(folder, "org/x")
    assert hub.state.requests == []


def test_local_dataset_paths_are_reported_by_the_cli(hub, tmp_path):
    from typer.testing import CliRunner

    from encoderzoo.cli import app

    folder = make_adapted_folder(tmp_path, method="head", dataset="npz:/home/alice/study.npz")
    plain = make_adapted_folder(tmp_path / "plain", method="head")
    assert push(plain, "org/plain").warnings == []
    result = CliRunner().invoke(app, ["push", str(folder), "--repo", "org/paths"])
    assert result.exit_code == 0, result.output
    assert "warning: encoderzoo.json and results.json name the dataset 'npz:/home/alice/study.npz'" in result.output
    assert b"/home/alice" not in hub.state.files("org/paths")["README.md"]


# --- licence and gating guard --------------------------------------------------------------------------------
def test_dinov3_base_needs_a_copy_of_its_licence(hub, tmp_path):
    folder = make_adapted_folder(tmp_path, base="dinov3-small", method="head")
    with pytest.raises(LicenceRestrictionError, match="DINOv3 License") as info:
        push(folder, "org/d3")
    assert "LICENSE" in str(info.value)
    assert hub.state.requests == []
    (folder / "LICENSE").write_text("DINOv3 License text")
    push(folder, "org/d3")
    assert hub.state.files("org/d3")["LICENSE"] == b"DINOv3 License text"


def test_medsiglip_base_is_refused_public_and_pushed_private_with_notice(hub, tmp_path):
    folder = make_adapted_folder(tmp_path, base="medsiglip-448", method="head")
    (folder / "LICENSE").write_text("HAI-DEF terms text")
    with pytest.raises(LicenceRestrictionError, match="Health AI Developer Foundations terms of use"):
        push(folder, "org/msl")
    assert hub.state.requests == []
    push(folder, "org/msl", private=True)
    arrived = hub.state.files("org/msl")
    assert (
        arrived["NOTICE"].decode()
        == (
            "HAI-DEF is provided under and subject to the Health AI Developer Foundations Terms of Use found at "
            "https://developers.google.com/health-ai-developer-foundations/terms\n"
        )
        == HAI_DEF_NOTICE
    )
    assert hub.state.repos["org/msl"].private


def test_medsiglip_without_the_terms_copy_is_refused(hub, tmp_path):
    folder = make_adapted_folder(tmp_path, base="medsiglip-448", method="head")
    with pytest.raises(LicenceRestrictionError, match="copy of the terms"):
        push(folder, "org/msl", private=True)
    assert hub.state.requests == []


def test_rad_dino_only_at_its_mit_revision(hub, tmp_path):
    other = make_adapted_folder(tmp_path / "a", base="rad-dino", method="head", revision="f" * 40)
    with pytest.raises(LicenceRestrictionError, match="MSRLA"):
        push(other, "org/rd")
    assert hub.state.requests == []
    pinned = make_adapted_folder(tmp_path / "b", base="rad-dino", method="head")
    push(pinned, "org/rd")
    assert "license: mit" in hub.state.files("org/rd")["README.md"].decode()


def test_unknown_licence_is_refused(hub, tmp_path):
    folder = make_adapted_folder(tmp_path, base="dinov2-small", method="head")
    meta = json.loads((folder / "encoderzoo.json").read_text())
    meta["base"]["spec"]["licence"] = "CC-BY-NC-ND-4.0"
    (folder / "encoderzoo.json").write_text(json.dumps(meta))
    with pytest.raises(LicenceRestrictionError, match="CC-BY-NC-ND-4.0"):
        push(folder, "org/x")
    assert hub.state.requests == []


# --- the token never leaks ---------------------------------------------------------------------------------------
def test_token_never_printed_logged_or_written(hub, tmp_path, monkeypatch, capfd, caplog):
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from encoderzoo.cli import app

    hf_logger = logging.getLogger("huggingface_hub")
    monkeypatch.setattr(hf_logger, "propagate", True)  # huggingface_hub keeps its logs to itself by default
    monkeypatch.setattr(constants, "HF_DEBUG", True)  # it then logs every request as a curl command
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    folder = _lora_folder(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["push", str(folder), "--repo", "org/tok"])
    assert ok.exit_code == 0, ok.output
    hub.drop_next("POST", r"/commit/main$")
    (folder / "results.json").write_text((folder / "results.json").read_text().replace('"seeds": [', '"seeds": [7, '))
    dropped = runner.invoke(app, ["push", str(folder), "--repo", "org/tok"])
    assert dropped.exit_code == 2 and "interrupted" in dropped.output
    monkeypatch.setenv("HF_TOKEN", BAD_TOKEN)  # a revoked token: the 401 must not echo it
    rejected = runner.invoke(app, ["push", str(folder), "--repo", "org/tok"])
    assert rejected.exit_code == 2 and "401" in rejected.output
    streams = ok.output + dropped.output + rejected.output + "".join(capfd.readouterr()) + caplog.text
    assert "org/tok" in streams and "curl -X POST" in streams  # the streams, debug logs included, were captured
    for token in (GOOD_TOKEN, BAD_TOKEN):
        assert token not in streams
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path
        assert all(token.encode() not in content for content in hub.state.files("org/tok").values())


# --- round trip: push, load back, same embeddings -----------------------------------------------------------
def _efficientnet_folder(tmp_path: Path) -> Path:
    """efficientnet-lite0 (its real weights ship with encoderzoo) at 64 px, with a random head."""
    from encoderzoo import load
    from encoderzoo.engine import weights_fingerprint
    from encoderzoo.registry import get_spec

    base = load(get_spec("efficientnet-lite0").tiny_variant())
    head = torch.nn.Linear(base.spec.output_dim, 1)
    return make_adapted_folder(
        tmp_path, base="efficientnet-lite0", method="head", fingerprint=weights_fingerprint(base), head=head
    )


@pytest.mark.slow
def test_round_trip_push_then_load_gives_identical_embeddings(hub, tmp_path):
    pytest.importorskip("encoderzoo.adapters.folder", reason="the adapted-folder loader (issue 8) is not here yet")
    import encoderzoo

    folder = _efficientnet_folder(tmp_path)
    result = push(folder, "org/lite0-head")
    assert set(hub.state.files("org/lite0-head")) == PUSHED | {".gitattributes"}
    local = encoderzoo.load(f"local-dir:{folder}")
    remote = encoderzoo.load(f"hf-hub:org/lite0-head@{result.commit}")
    pixels = local.transform(torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8))
    with torch.no_grad():
        embeddings = local.embed(pixels)
        assert torch.equal(embeddings, remote.embed(pixels))
        assert torch.equal(local.head(embeddings), remote.head(embeddings))
    shutil.rmtree(folder)  # the Hub copy stands alone
    again = encoderzoo.load("hf-hub:org/lite0-head")
    head = torch.nn.Linear(local.spec.output_dim, 1)
    assert all(
        torch.equal(a, b)
        for a, b in zip(again.head.state_dict().values(), remote.head.state_dict().values(), strict=True)
    )
    assert not torch.equal(head.weight, again.head.weight)  # a fresh head differs: the comparison can fail


@pytest.mark.slow
def test_cli_pushes_the_output_of_encoderzoo_adapt_and_it_loads_back(hub, tmp_path):
    """Done-when of issue 9: `encoderzoo adapt` -> `encoderzoo push` -> the card parses -> same embeddings."""
    adapters = pytest.importorskip("encoderzoo.adapters", reason="`encoderzoo adapt` (issue 8) is not here yet")
    import dataclasses

    from huggingface_hub import ModelCard
    from typer.testing import CliRunner

    import encoderzoo
    from encoderzoo.cli import app
    from encoderzoo.registry import get_spec, register, unregister

    # efficientnet-lite0 with its real weights, at 64 px to keep the CPU run short
    register(dataclasses.replace(get_spec("efficientnet-lite0"), name="efficientnet-lite0-64px", input_size=64))
    try:
        out = tmp_path / "adapted"
        adapters.adapt(
            "efficientnet-lite0-64px",
            "sample:pneumoniamnist",
            "head",
            out,
            device="cpu",
            max_train=40,
            config=adapters.TrainConfig(epochs=1, patience=1),
            progress=False,
        )
        assert (out / "checkpoints").is_dir()
        pushed = CliRunner().invoke(app, ["push", str(out), "--repo", "org/lite0-pneumonia"])
        assert pushed.exit_code == 0, pushed.output
        arrived = hub.state.files("org/lite0-pneumonia")
        assert set(arrived) == PUSHED | {".gitattributes"}
        assert all(arrived[n] == (out / n).read_bytes() for n in PUSHED - {"README.md"})
        card = ModelCard(arrived["README.md"].decode()).data
        assert (card.license, card.library_name) == ("apache-2.0", "encoderzoo")
        results = json.loads((out / "results.json").read_text())
        assert {r.metric_type: r.metric_value for r in card.eval_results} == {
            {"auroc": "roc_auc"}.get(m, m): round(results["probes"]["adapted"][m]["mean"], 6)
            for m in ("accuracy", "balanced_accuracy", "auroc")
        }
        local = encoderzoo.load(f"local-dir:{out}")
        remote = encoderzoo.load("hf-hub:org/lite0-pneumonia")
        pixels = local.transform(torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8))
        with torch.no_grad():
            assert torch.equal(local.classify(pixels), remote.classify(pixels))
    finally:
        unregister("efficientnet-lite0-64px")
