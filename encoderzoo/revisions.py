"""Another revision of a registry entry's files: the way out when a pinned revision is wrong or gone.

``at_revision(spec, "main")`` is the same entry read at another commit, branch or tag of its Hub repository. The
revision reaches everything keyed by the spec (the embedding cache, results.json, adapted folders), and the
licence follows it where the licence changed over the repository's history (RAD-DINO: MIT at
``RAD_DINO_MIT_REVISION``, the Microsoft Research License Agreement after it).
"""

from __future__ import annotations

import dataclasses

from .spec import EncoderSpec
from .zoo import RAD_DINO_MIT_REVISION


def at_revision(spec: EncoderSpec, revision: str | None) -> EncoderSpec:
    """``spec`` with its weights read at ``revision`` (``None`` or the pinned revision: ``spec`` itself).

    A checksum recorded for the pinned file does not apply to another revision and is dropped; so is the date
    the pinned facts were verified. Raises ``ValueError`` for an entry whose weights do not live on the Hub.
    """
    if revision is None or revision == spec.source.revision:
        return spec
    if not revision.strip() or any(c.isspace() for c in revision):
        raise ValueError(f"revision must be a commit, branch or tag name, got {revision!r}")
    source = spec.source
    if not source.repo_id:
        where = f"the PyPI package {source.package}" if source.package else f"a file at {source.url}"
        raise ValueError(f"{spec.name} loads from {where}, which has no Hub revisions: revision= does not apply")
    changed = dataclasses.replace(source, revision=revision, sha256=None, verified=None)
    licence, licence_url = spec.licence, spec.licence_url
    if source.repo_id == "microsoft/rad-dino" and revision != RAD_DINO_MIT_REVISION:
        licence = f"Microsoft Research License Agreement (MSRLA) (revision {revision})"
        licence_url = f"https://huggingface.co/microsoft/rad-dino/blob/{revision}/LICENSE"
    return dataclasses.replace(spec, source=changed, licence=licence, licence_url=licence_url)
