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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapted_folder import (  # noqa: F401  (re-exported: the folder's names were defined here before)
    ADAPTER_FILE,
    CARD_FILE,
    CHECKPOINT_DIR,
    HEAD_FILE,
    LICENCE_FILE,
    METHOD_FILES,
    NOTICE_FILE,
    PEFT_CONFIG_FILE,
    PEFT_WEIGHTS_FILE,
    RESULTS_FILE,
    SPEC_FILE,
    TASKS,
    AdaptedFolder,
    InvalidAdaptedFolderError,
    public_dataset,
    read_adapted_folder,
)
from .errors import EncoderZooError
from .licences import (  # noqa: F401  (re-exported)
    HAI_DEF_NOTICE,
    HAI_DEF_URL,
    BaseTerms,
    LicenceRestrictionError,
    base_terms,
    check_terms,
)
from .names import parse_encoder_name

MANAGED_FILES = frozenset(
    {SPEC_FILE, RESULTS_FILE, HEAD_FILE, ADAPTER_FILE, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, CARD_FILE, NOTICE_FILE}
)
"""Files a push owns in the repository: one of them left over from an earlier push of another method is deleted."""


class NotShareableError(EncoderZooError, ValueError):
    """The adapter names a base that only exists on this machine, so nobody could load it from the Hub."""


class HubPushError(EncoderZooError):
    """The Hub refused the push or the connection failed; nothing was changed locally."""


class HubAuthError(HubPushError):
    """No token, or the Hub rejected it (401) or it lacks write access (403)."""



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
    if name and parse_encoder_name(name).kind == "local-dir":
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
    contents[CARD_FILE] = str(adapted_card(folder, repo_id, terms)).encode()
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
        f"Upload {adapted.spec.name} adapted by {adapted.method} on {public_dataset(adapted.meta['dataset'])} "
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
