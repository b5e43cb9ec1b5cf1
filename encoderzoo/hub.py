"""``push``: put an adapted folder (``encoderzoo adapt --out DIR``) on the Hugging Face Hub, honestly.

What goes up: ``encoderzoo.json``, ``results.json``, the head, the method's adapter files and a model card
generated from those files (plus, for bases whose terms ask for it, the licence copy and notice). Nothing
else: never the base weights (the folder only names its base), never ``checkpoints/``.

Before anything is sent, the folder is checked (written by ``encoderzoo adapt``, every file present and
readable, results matching the adapter), the repository id is checked, and the base's licence is checked
against what the push would do (``base_terms``; the README's "Sharing adapted encoders" section has the rules).

The token comes from ``HF_TOKEN`` or the stored login (``hf auth login``); it is handed to huggingface_hub
and never printed, logged, written to a file or put in a message. Pushing the same folder twice makes no
second commit: local and remote files are compared by hash first. An interrupted upload leaves the local
folder as it was; running the same push again completes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EncoderZooError
from .spec import EncoderSpec
from .zoo import RAD_DINO_MIT_REVISION

SPEC_FILE = "encoderzoo.json"
RESULTS_FILE = "results.json"
HEAD_FILE = "head.safetensors"
ADAPTER_FILE = "adapter.safetensors"
PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
CARD_FILE = "README.md"
LICENCE_FILE = "LICENSE"
NOTICE_FILE = "NOTICE"
CHECKPOINT_DIR = "checkpoints"

METHOD_FILES: Mapping[str, tuple[str, ...]] = {
    "head": (),
    "lora": (PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE),
    "vpt": (ADAPTER_FILE,),
    "vpt-deep": (ADAPTER_FILE,),
    "ace-hgnn": (ADAPTER_FILE,),
    "full": (ADAPTER_FILE,),
    "coop": (ADAPTER_FILE,),
    "ace-lora": (ADAPTER_FILE,),
}
"""Adapter files each method writes next to ``encoderzoo.json``, ``results.json`` and the head."""
MANAGED_FILES = frozenset(
    {SPEC_FILE, RESULTS_FILE, HEAD_FILE, ADAPTER_FILE, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, CARD_FILE, NOTICE_FILE}
)
"""Files a push owns in the repository: one of them left over from an earlier push of another method is deleted."""
TASKS = {"binary": "binary", "multi-class": "multi-class", "multiclass": "multi-class",
         "multi-label": "multi-label", "multilabel": "multi-label"}


class InvalidAdaptedFolderError(EncoderZooError, ValueError):
    """The folder is not a complete, consistent adapted folder written by ``encoderzoo adapt``."""


class LicenceRestrictionError(EncoderZooError):
    """The base model's licence or terms do not allow the push as asked; the message names the terms."""


class NotShareableError(EncoderZooError, ValueError):
    """The adapter names a base that only exists on this machine, so nobody could load it from the Hub."""


class HubPushError(EncoderZooError):
    """The Hub refused the push or the connection failed; nothing was changed locally."""


class HubAuthError(HubPushError):
    """No token, or the Hub rejected it (401) or it lacks write access (403)."""


# --------------------------------------------------------------------------------------------------------------
# The adapted folder
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdaptedFolder:
    """A checked adapted folder: its metadata, results and the files a push uploads."""

    path: Path
    meta: dict[str, Any]
    results: dict[str, Any]
    spec: EncoderSpec
    files: tuple[str, ...]
    """Files uploaded from the folder as they are (the card and notice are generated)."""

    @property
    def method(self) -> str:
        return self.meta["method"]

    @property
    def base(self) -> dict[str, Any]:
        return self.meta["base"]

    @property
    def base_revision(self) -> str:
        return str(self.base.get("revision") or self.spec.source.revision)


def read_adapted_folder(folder: str | os.PathLike[str]) -> AdaptedFolder:
    """Check ``folder`` and return it; ``InvalidAdaptedFolderError`` says what is wrong and what to do."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InvalidAdaptedFolderError(f"{path} is not a folder; give the --out folder of `encoderzoo adapt`")
    meta = _read_json(path / SPEC_FILE, what="adapted-folder metadata")
    if meta.get("kind") != "adapted":
        raise InvalidAdaptedFolderError(
            f"{path / SPEC_FILE} does not describe an adapted encoder (kind={meta.get('kind')!r}, expected "
            "'adapted'): only folders written by `encoderzoo adapt` can be pushed"
        )
    if meta.get("format_version") != 1:
        raise InvalidAdaptedFolderError(
            f"{path / SPEC_FILE} has format_version {meta.get('format_version')!r}; this encoderzoo reads 1"
        )
    missing = [k for k in ("base", "method", "task", "label_names", "dataset") if k not in meta]
    if missing or not isinstance(meta.get("base"), dict) or "spec" not in meta["base"]:
        raise InvalidAdaptedFolderError(
            f"{path / SPEC_FILE} lacks {missing or ['base.spec']}; re-run `encoderzoo adapt`"
        )
    method = meta["method"]
    if method not in METHOD_FILES:
        raise InvalidAdaptedFolderError(f"{path / SPEC_FILE}: unknown method {method!r}; expected one of "
                                        f"{sorted(METHOD_FILES)}")
    if meta["task"] not in TASKS:
        raise InvalidAdaptedFolderError(f"{path / SPEC_FILE}: unknown task {meta['task']!r}")
    try:
        spec = EncoderSpec.from_dict({**meta["base"]["spec"], "tiny": {}})
    except (TypeError, ValueError, KeyError) as err:
        raise InvalidAdaptedFolderError(f"{path / SPEC_FILE}: the base spec cannot be read ({err})") from err

    files = [SPEC_FILE, RESULTS_FILE, HEAD_FILE, *METHOD_FILES[method]]
    absent = [f for f in files if not (path / f).is_file()]
    if absent:
        raise InvalidAdaptedFolderError(
            f"{path} lacks {absent}, which a {method!r} adapter needs; the folder is incomplete: re-run "
            "`encoderzoo adapt` (with --resume if it was interrupted)"
        )
    head = _read_safetensors(path / HEAD_FILE)
    _check_head(path, head, meta)
    if method == "lora":
        _check_lora(path, meta)
    elif method != "head":
        if not _read_safetensors(path / ADAPTER_FILE):
            raise InvalidAdaptedFolderError(f"{path / ADAPTER_FILE} holds no tensors; the adapter is missing")
    results = _read_json(path / RESULTS_FILE, what="results")
    _check_results(path, results, meta, spec)
    if (path / LICENCE_FILE).is_file():
        files.append(LICENCE_FILE)
    return AdaptedFolder(path, meta, results, spec, tuple(files))


def _read_json(path: Path, *, what: str) -> dict[str, Any]:
    if not path.is_file():
        hint = "it was not written by `encoderzoo adapt`" if path.name == SPEC_FILE else "the folder is incomplete"
        raise InvalidAdaptedFolderError(f"{path.parent} has no {path.name} ({what}): {hint}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidAdaptedFolderError(f"{path} is not valid JSON ({err}); the file is damaged") from err
    if not isinstance(data, dict):
        raise InvalidAdaptedFolderError(f"{path} should hold a JSON object")
    return data


def _read_safetensors(path: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises several types for truncated or damaged files
        raise InvalidAdaptedFolderError(
            f"{path} cannot be read ({type(err).__name__}: {err}); the file is damaged: re-run `encoderzoo adapt`"
        ) from err
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InvalidAdaptedFolderError(f"{path} holds NaN/inf values in {bad[:5]}; the adapter diverged or is damaged")
    return tensors


def _check_head(path: Path, head: dict[str, Any], meta: dict[str, Any]) -> None:
    weight, bias = head.get("weight"), head.get("bias")
    if weight is None or bias is None or weight.ndim != 2 or bias.shape != weight.shape[:1]:
        raise InvalidAdaptedFolderError(
            f"{path / HEAD_FILE} should hold a linear head (weight (outputs, dim), bias (outputs,)); "
            f"found {sorted(head)}"
        )
    labels = len(meta["label_names"])
    expected = 1 if TASKS[meta["task"]] == "binary" else labels
    if weight.shape[0] != meta.get("num_outputs", expected) or weight.shape[0] != expected:
        raise InvalidAdaptedFolderError(
            f"{path / HEAD_FILE} has {weight.shape[0]} outputs, but the task is {meta['task']} with {labels} "
            f"label(s) ({expected} expected): the head does not belong to this folder's metadata"
        )


def _check_lora(path: Path, meta: dict[str, Any]) -> None:
    config = _read_json(path / PEFT_CONFIG_FILE, what="peft LoRA config")
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise InvalidAdaptedFolderError(f"{path / PEFT_CONFIG_FILE} is not a LoRA config (peft_type "
                                        f"{config.get('peft_type')!r})")
    wanted = meta.get("method_config") or {}
    differ = [k for k in ("r", "lora_alpha") if k in config and k in wanted and config[k] != wanted[k]]
    if "alpha" in wanted and "lora_alpha" in config and config["lora_alpha"] != wanted["alpha"]:
        differ.append("alpha")
    if differ:
        raise InvalidAdaptedFolderError(
            f"{path / PEFT_CONFIG_FILE} disagrees with method_config in {SPEC_FILE} on {differ}: the adapter "
            "files come from another run"
        )
    tensors = _read_safetensors(path / PEFT_WEIGHTS_FILE)
    if not any("lora_" in k for k in tensors):
        raise InvalidAdaptedFolderError(f"{path / PEFT_WEIGHTS_FILE} holds no LoRA tensors")


def _check_results(path: Path, results: dict[str, Any], meta: dict[str, Any], spec: EncoderSpec) -> None:
    """results.json must describe this adapter: same base, method, dataset, task and parameter count."""
    where = path / RESULTS_FILE
    training = results.get("training")
    if not isinstance(training, dict) or "trainable_params" not in training:
        raise InvalidAdaptedFolderError(f"{where} has no training record: it is not the results of `encoderzoo adapt`")
    protocol = results.get("protocol") if isinstance(results.get("protocol"), dict) else {}
    checks = [
        ("method", protocol.get("method", results.get("method")), meta["method"]),
        ("base encoder", results.get("base_encoder"), spec.name),
        ("encoder", results.get("encoder"), f"{spec.name}+{meta['method']}"),
        ("base revision", results.get("revision"), meta["base"].get("revision")),
        ("dataset", results.get("dataset"), meta["dataset"]),
        ("task", TASKS.get(results.get("task"), results.get("task")), TASKS[meta["task"]]),
        ("trainable parameters", training.get("trainable_params"), meta.get("trainable_params")),
    ]
    differ = [f"{name}: results.json says {got!r}, {SPEC_FILE} says {want!r}" for name, got, want in checks
              if got is not None and want is not None and got != want]
    if differ:
        raise InvalidAdaptedFolderError(
            f"{where} does not match the adapter in {path}: " + "; ".join(differ)
            + ". The results come from another run: re-run `encoderzoo adapt` or copy the matching results.json"
        )


# --------------------------------------------------------------------------------------------------------------
# Licences of the bases
# --------------------------------------------------------------------------------------------------------------
HAI_DEF_URL = "https://developers.google.com/health-ai-developer-foundations/terms"
HAI_DEF_NOTICE = (
    "HAI-DEF is provided under and subject to the Health AI Developer Foundations Terms of Use found at "
    f"{HAI_DEF_URL}\n"
)


@dataclass(frozen=True)
class BaseTerms:
    """What the base's licence means for a push: card metadata, conditions to state, and what is refused."""

    name: str
    link: str
    spdx: str | None
    """Hub licence id (SPDX where one exists); ``None`` -> ``license: other`` + ``license_name``/``license_link``."""
    hub_name: str | None = None
    """``license_name`` for ``license: other`` (lowercase, dashes)."""
    conditions: tuple[str, ...] = ()
    """Sentences the card states under "Licence"."""
    needs_licence_copy: bool = False
    """The terms ask that a copy travel with derivatives: the folder must hold ``LICENSE`` (the terms' text)."""
    needs_private: bool = False
    """Derivatives may only go to people bound by the terms: public pushes are refused."""
    notice: str | None = None
    """Text of a ``NOTICE`` file the terms require with every distribution."""
    refusal: str | None = None
    """Set when no push is allowed; the message of the refusal."""
    gate_prompt: str | None = None
    """``extra_gated_prompt`` for the card (shown when gating is switched on for the repository)."""

    def card_metadata(self) -> dict[str, str]:
        if self.spdx:
            return {"license": self.spdx}
        return {"license": "other", "license_name": self.hub_name or "other", "license_link": self.link}


_PERMISSIVE = {
    "Apache-2.0": ("apache-2.0", "Apache License 2.0. The base weights are not redistributed here: the adapter and "
                   "head are new weights trained on top of the unmodified base. Whoever redistributes the base "
                   "with them keeps its licence and NOTICE."),
    "MIT": ("mit", "MIT licence. The base weights are not redistributed here; whoever redistributes the base with "
            "this adapter keeps its copyright and permission notice."),
}


def base_terms(meta: Mapping[str, Any]) -> BaseTerms:
    """The terms of the base model named in an adapted folder's ``encoderzoo.json``, decided per licence."""
    base = meta["base"]
    spec = base["spec"]
    source = spec.get("source", {})
    family, licence = spec.get("family", ""), str(spec.get("licence", ""))
    revision = str(base.get("revision") or source.get("revision", ""))
    link = str(spec.get("licence_url", ""))
    if family == "rad-dino" or source.get("repo_id") == "microsoft/rad-dino":
        if revision != RAD_DINO_MIT_REVISION:
            return BaseTerms(
                name="Microsoft Research License Agreement (MSRLA)",
                link=f"https://huggingface.co/microsoft/rad-dino/blob/{revision}/LICENSE",
                spdx=None,
                refusal=(
                    f"the base is microsoft/rad-dino at revision {revision!r}, not the MIT revision "
                    f"{RAD_DINO_MIT_REVISION[:7]}: later revisions are under the Microsoft Research License "
                    "Agreement (MSRLA), which licenses non-commercial research use and does not grant the right "
                    "to publish derived weights on the Hub. encoderzoo refuses the push. Adapt the MIT revision "
                    "(the registry's `rad-dino`) instead, or obtain permission from Microsoft."
                ),
            )
        return BaseTerms(
            name="MIT (microsoft/rad-dino at the MIT revision c3736a6)",
            link=link,
            spdx="mit",
            conditions=(
                _PERMISSIVE["MIT"][1],
                f"The base is pinned to revision {RAD_DINO_MIT_REVISION}, released under MIT; later revisions of "
                "microsoft/rad-dino moved to the MSRLA and are not covered by this card.",
                "RAD-DINO's model card restricts it to research use, not clinical use.",
            ),
        )
    if family == "medsiglip" or licence.startswith("Health AI Developer Foundations"):
        return BaseTerms(
            name="Health AI Developer Foundations terms of use",
            link=HAI_DEF_URL,
            spdx=None,
            hub_name="health-ai-developer-foundations",
            conditions=(
                "This adapter is a Model Derivative of HAI-DEF (MedSigLIP) and is distributed under and subject to "
                f"the Health AI Developer Foundations Terms of Use ({HAI_DEF_URL}). A copy of the terms is in "
                "`LICENSE` and the required notice in `NOTICE`.",
                "Use restrictions: the HAI-DEF Prohibited Use Policy applies to every use of this adapter; by "
                "using it you agree to those restrictions. Clinical use (diagnosis or treatment of patients) "
                "requires the health regulatory authorizations the terms describe.",
                "This repository is private so that only people bound by the terms receive it; share it only "
                "with people who accepted the HAI-DEF terms (or enable gating: the card carries the prompt).",
                "The files in this repository were modified from HAI-DEF by fine-tuning (they are new weights "
                "trained on top of the frozen base).",
            ),
            needs_licence_copy=True,
            needs_private=True,
            notice=HAI_DEF_NOTICE,
            gate_prompt=(
                "This adapter is a Model Derivative of MedSigLIP and is subject to the Health AI Developer "
                f"Foundations Terms of Use ({HAI_DEF_URL}) and its Prohibited Use Policy. Review and agree to "
                "them to access it."
            ),
        )
    if family == "dinov3" or licence.startswith("DINOv3"):
        return BaseTerms(
            name="DINOv3 License",
            link=link or "https://ai.meta.com/resources/models-and-libraries/dinov3-license/",
            spdx=None,
            hub_name="dinov3-license",
            conditions=(
                "This adapter is a derivative work of the DINOv3 Materials and is distributed only under the terms "
                "of the DINOv3 License, a copy of which is in `LICENSE`.",
                "Publications of research using it must acknowledge the use of DINOv3.",
                "The DINOv3 License's use restrictions and trade-control terms apply to every use of this adapter.",
            ),
            needs_licence_copy=True,
        )
    key = licence.split(" (")[0]
    if key in _PERMISSIVE and not spec.get("gated", False):
        spdx, condition = _PERMISSIVE[key]
        return BaseTerms(name=licence, link=link, spdx=spdx, conditions=(condition,))
    return BaseTerms(
        name=licence or "unknown",
        link=link,
        spdx=None,
        refusal=(
            f"the base {spec.get('name')!r} is under {licence or 'an unknown licence'!s}"
            + (" and gated" if spec.get("gated") else "")
            + ", whose terms encoderzoo has no rule for, so it cannot tell whether publishing derived weights is "
            "allowed. encoderzoo refuses the push; read the terms and upload by hand if they allow it."
        ),
    )


def check_terms(terms: BaseTerms, folder: AdaptedFolder, *, private: bool) -> None:
    """Refuse, before anything is uploaded, what the base's terms forbid."""
    if terms.refusal:
        raise LicenceRestrictionError(f"{terms.name}: {terms.refusal}")
    if terms.needs_private and not private:
        raise LicenceRestrictionError(
            f"the base is under the {terms.name} ({terms.link}): derivatives may only be distributed to people "
            "bound by those terms, so encoderzoo refuses a public repository. Push with --private and share it "
            "with people who accepted the terms (the card states the conditions)."
        )
    if terms.needs_licence_copy and not (folder.path / LICENCE_FILE).is_file():
        raise LicenceRestrictionError(
            f"the base is under the {terms.name}, which requires a copy of the terms with every distributed "
            f"derivative: save the text of {terms.link} as {folder.path / LICENCE_FILE} and push again."
        )


# --------------------------------------------------------------------------------------------------------------
# Push
# --------------------------------------------------------------------------------------------------------------
@dataclass
class PushResult:
    """What a push did."""

    repo_id: str
    revision: str
    commit: str | None
    """The head commit of ``revision`` after the push."""
    url: str
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    created_repo: bool = False
    warnings: list[str] = field(default_factory=list)
    """Things the user should know about what was published (local paths in the uploaded JSON files)."""

    @property
    def changed(self) -> bool:
        return bool(self.uploaded or self.deleted)


def check_repo_id(repo_id: str) -> None:
    """``ORG/NAME`` as the Hub accepts it; ``ValueError`` otherwise (before anything is sent)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repository id {repo_id!r} should be ORG/NAME (your user name or an organization, a slash, "
                         "the model name)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"invalid repository id {repo_id!r}: {err}") from None


def check_shareable(folder: AdaptedFolder) -> None:
    """Refuse an adapter whose base was loaded from a folder on this machine: others could not rebuild it."""
    name = str(folder.base.get("name", ""))
    if name.startswith("local-dir:"):
        raise NotShareableError(
            f"the adapter's base was loaded from {name!r}, a folder on this machine, so nobody could load this "
            "adapter from the Hub. Push the base first (its save_pretrained folder, e.g. with `hf upload`) and "
            "adapt `hf-hub:ORG/BASE`, or adapt a registry encoder."
        )


def local_path_warnings(folder: AdaptedFolder) -> list[str]:
    """Local paths that the uploaded encoderzoo.json / results.json would publish (the card hides them)."""
    dataset = str(folder.meta.get("dataset", ""))
    kind, _, rest = dataset.partition(":")
    if kind in ("npz", "folder", "nih", "chexpert") and ("/" in rest or "\\" in rest):
        return [
            f"encoderzoo.json and results.json name the dataset {dataset!r}, a path on this machine; they are "
            "uploaded as they are (the card shows only the file name)"
        ]
    return []


def upload_contents(
    folder: AdaptedFolder, terms: BaseTerms, repo_id: str | None = None
) -> dict[str, Path | bytes]:
    """Path in the repository -> what to upload: the folder's files (as paths: large adapters are streamed,
    never read whole into memory) plus the generated card and notice (as bytes)."""
    from .adapted_card import adapted_card

    contents: dict[str, Path | bytes] = {name: folder.path / name for name in folder.files}
    contents[CARD_FILE] = str(adapted_card(folder.path, repo_id)).encode()
    if terms.notice:
        contents[NOTICE_FILE] = terms.notice.encode()
    return contents


def push(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str = "main",
    message: str | None = None,
    endpoint: str | None = None,
) -> PushResult:
    """Push the adapted ``folder`` to the Hub model repository ``repo_id`` (created when absent, reused when it
    exists) on branch ``revision`` (created from ``main`` when absent).

    Raises ``ValueError`` for a bad repository id, ``InvalidAdaptedFolderError`` for a folder that is not a
    complete adapted folder, ``LicenceRestrictionError`` for what the base's terms forbid (all before any
    request), ``HubAuthError`` for a missing or rejected token and ``HubPushError`` for other failures.
    """
    check_repo_id(repo_id)
    if not _valid_branch(revision):
        raise ValueError(f"branch name {revision!r} is not a valid git branch name")
    adapted = read_adapted_folder(folder)
    terms = base_terms(adapted.meta)
    check_terms(terms, adapted, private=private)
    check_shareable(adapted)
    contents = upload_contents(adapted, terms, repo_id)

    from huggingface_hub import HfApi, constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise HubPushError(
            "offline mode is on (HF_HUB_OFFLINE=1), and a push needs the Hub: unset HF_HUB_OFFLINE (or set it to 0) "
            "in this shell and push again. Nothing was uploaded."
        )
    token = get_token()
    if not token:
        raise HubAuthError("no Hugging Face token: log in with `hf auth login` or set HF_TOKEN to a token with "
                           "write access, then push again")
    from . import __version__

    api = HfApi(endpoint=endpoint, token=token, library_name="encoderzoo", library_version=__version__)
    try:
        return _push(api, adapted, contents, repo_id, private, revision, message)
    except EncoderZooError:
        raise
    except Exception as err:
        raise _explain(err, api.endpoint, repo_id, token) from err


def _push(api: Any, adapted: AdaptedFolder, contents: dict[str, Path | bytes], repo_id: str, private: bool,
          revision: str, message: str | None) -> PushResult:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.errors import HfHubHTTPError

    created = True
    try:
        url = str(api.create_repo(repo_id, private=private, exist_ok=False))
    except HfHubHTTPError as err:
        if err.response is None or err.response.status_code != 409:
            raise
        created, url = False, f"{api.endpoint}/{repo_id}"  # 409: the repository exists; reuse it
    if not created and private and not api.repo_info(repo_id).private:
        raise HubPushError(
            f"{repo_id} already exists and is public, but --private was asked (and the base's terms may "
            "require it): nothing was uploaded. Make the repository private on the Hub, or choose another "
            "name, then push again."
        )
    if revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    remote = {f.path: f for f in api.list_repo_tree(repo_id, revision=revision, recursive=True)
              if hasattr(f, "blob_id")}
    uploaded, unchanged = [], []
    for name, data in sorted(contents.items()):
        (unchanged if name in remote and _same(remote[name], data) else uploaded).append(name)
    deleted = sorted(p for p in remote if p in MANAGED_FILES and p not in contents)
    result = PushResult(repo_id, revision, None, url, uploaded, deleted, unchanged, created,
                        local_path_warnings(adapted))
    if not result.changed:
        result.commit = api.repo_info(repo_id, revision=revision).sha
        return result
    operations = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=_payload(contents[n])) for n in uploaded]
    operations += [CommitOperationDelete(path_in_repo=n) for n in deleted]
    summary = message or (
        f"Upload {adapted.spec.name} adapted by {adapted.method} on {_public_dataset(adapted.meta['dataset'])} "
        "(encoderzoo push)"
    )
    info = api.create_commit(repo_id, operations, commit_message=summary, revision=revision)
    result.commit = info.oid
    return result


def _valid_branch(name: str) -> bool:
    """git's ref-name rules, the ones a branch typed on the command line can break."""
    return bool(name) and not (
        any(c in name for c in " ~^:?*[\\")
        or any(part in name for part in ("..", "@{", "//"))
        or name.startswith(("/", "-"))
        or name.endswith(("/", ".", ".lock"))
    )


def _same(remote: Any, item: Path | bytes) -> bool:
    """Whether a remote file (``RepoFile``) holds exactly ``item``: LFS files by sha256, others by git blob id."""
    size = item.stat().st_size if isinstance(item, Path) else len(item)
    if remote.size != size:
        return False
    if getattr(remote, "lfs", None) is not None:
        return remote.lfs.sha256 == _digest(hashlib.sha256(), item)
    return remote.blob_id == _digest(hashlib.sha1(b"blob %d\0" % size), item)  # git's blob id


def _digest(hasher: Any, item: Path | bytes) -> str:
    if isinstance(item, bytes):
        hasher.update(item)
    else:
        with item.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                hasher.update(chunk)
    return hasher.hexdigest()


def _payload(item: Path | bytes) -> str | bytes:
    return str(item) if isinstance(item, Path) else item


def _explain(err: Exception, endpoint: str, repo_id: str, token: str) -> HubPushError:
    """A clear, token-free error for a failure while talking to the Hub."""
    from huggingface_hub.errors import HfHubHTTPError

    status = getattr(getattr(err, "response", None), "status_code", None)
    detail = _scrub(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__, token)
    untouched = "The local folder was not changed."
    if isinstance(err, HfHubHTTPError) and status == 401:
        return HubAuthError(
            f"the Hub at {endpoint} rejected the token (401 Unauthorized): it is invalid, expired or revoked. "
            f"Log in again with `hf auth login` or set HF_TOKEN to a valid token with write access. {untouched}"
        )
    if isinstance(err, HfHubHTTPError) and status == 403:
        return HubAuthError(
            f"the token has no write access to {repo_id} (403 Forbidden): use a token with write permission for "
            f"{repo_id.split('/')[0]}. {untouched}"
        )
    if isinstance(err, HfHubHTTPError):
        return HubPushError(f"the Hub refused the push to {repo_id} ({detail}). {untouched}")
    if isinstance(err, ValueError) and "metadata in README.md" in str(err):  # the Hub's validate-yaml said no
        reasons = "; ".join(line.strip("- ") for line in str(err).splitlines()[1:] if line.strip())
        return HubPushError(
            f"the Hub rejected the model card's metadata ({_scrub(reasons, token) or detail}); nothing was "
            f"uploaded to {repo_id}. {untouched} Please report this as an encoderzoo bug."
        )
    return HubPushError(
        f"the upload to {endpoint} was interrupted ({type(err).__name__}: {detail}); nothing was committed to "
        f"{repo_id}, or only files that are already complete. {untouched} Run the same push again to finish it: "
        "files already on the Hub are not sent twice."
    )


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _public_dataset(dataset: str) -> str:
    """A dataset spec without local paths or query options (``npz:/home/me/x.npz`` -> ``npz:x.npz``)."""
    kind, sep, rest = str(dataset).partition(":")
    if not sep:
        return Path(kind).name
    rest = rest.split("?")[0]
    if kind in ("npz", "folder", "nih", "chexpert", "local-dir"):
        rest = Path(rest.rstrip("/")).name
    return f"{kind}:{rest}"
