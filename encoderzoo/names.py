"""The encoder-name grammar, in one place: ``parse_encoder_name(name) -> EncoderRef``.

=========================  ==========  =====================================================================
name                       kind        meaning
=========================  ==========  =====================================================================
``dinov2-base``            registry    a registered entry (``encoderzoo list``)
``hf-hub:org/repo[@rev]``  hf-hub      an encoder saved by ``save_pretrained`` or ``encoderzoo adapt``, on the Hub
``local-dir:PATH``         local-dir   the same, in a local folder
``random:NAME``            random      the architecture and preprocessing of registry entry NAME, with seeded
                                       random initialisation (a control; an explicit request, never a fallback)
``pixels[@SIZE]``          pixels      no network: images resized to SIZE x SIZE (default 28), channels kept,
                                       scaled to [0, 1] and flattened (a control)
=========================  ==========  =====================================================================

Every other name with a ``:`` is refused here, with the list of prefixes, so a typo never reaches a download.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EncoderKind = Literal["registry", "hf-hub", "local-dir", "random", "pixels"]

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
RANDOM_PREFIX = "random:"
PIXELS = "pixels"
PIXELS_DEFAULT_SIZE = 28
RANDOM_SEED = 0
"""Seed of the ``random:`` control's initialisation: the same name always gives the same weights."""
PREFIXES = (HF_HUB_PREFIX, LOCAL_DIR_PREFIX, RANDOM_PREFIX)


class EncoderNameError(ValueError):
    """An encoder name that does not follow the grammar of ``encoderzoo.names``."""


@dataclass(frozen=True)
class EncoderRef:
    """A parsed encoder name.

    ``target`` is the registry name (``registry``, ``random``), the Hub repository (``hf-hub``) or the folder
    (``local-dir``); ``None`` for ``pixels``. ``revision`` is the ``@rev`` of ``hf-hub`` names (``main`` when
    absent); ``size`` the side of the ``pixels`` control; ``seed`` the initialisation seed of ``random``.
    """

    kind: EncoderKind
    name: str
    """The name as written, which is also how results and caches call this encoder."""
    target: str | None = None
    revision: str | None = None
    size: int | None = None
    seed: int | None = None

    @property
    def is_control(self) -> bool:
        """``pixels`` and ``random:``: baselines that say whether pretraining helped."""
        return self.kind in ("random", "pixels")

    @property
    def saved(self) -> bool:
        """``hf-hub:`` and ``local-dir:``: folders written by encoderzoo, which carry their own weights."""
        return self.kind in ("hf-hub", "local-dir")


def parse_encoder_name(name: str) -> EncoderRef:
    """Parse ``name`` (see the module docstring); a malformed name is an ``EncoderNameError``.

    Registry names are not looked up here (``registry.get_spec`` does that, with suggestions).
    """
    if not isinstance(name, str) or not name.strip():
        raise EncoderNameError(f"an encoder name must be a non-empty string, got {name!r}")
    if name != name.strip():
        raise EncoderNameError(f"encoder name {name!r} has leading or trailing spaces")
    if name.startswith(HF_HUB_PREFIX):
        repo, _, revision = name.removeprefix(HF_HUB_PREFIX).partition("@")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise EncoderNameError(f"{name!r}: write hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION")
        return EncoderRef("hf-hub", name, target=repo, revision=revision or "main")
    if name.startswith(LOCAL_DIR_PREFIX):
        path = name.removeprefix(LOCAL_DIR_PREFIX)
        if not path:
            raise EncoderNameError(f"{name!r}: write local-dir:PATH with the folder's path")
        return EncoderRef("local-dir", name, target=path)
    if name.startswith(RANDOM_PREFIX):
        base = name.removeprefix(RANDOM_PREFIX)
        if not base or ":" in base:
            raise EncoderNameError(f"{name!r}: random: takes a registry name (random:efficientnet-lite0), not {base!r}")
        return EncoderRef("random", name, target=base, seed=RANDOM_SEED)
    if name == PIXELS or name.startswith(PIXELS + "@"):
        return EncoderRef("pixels", name, size=_pixels_size(name))
    if ":" in name:
        prefix = name.split(":", 1)[0] + ":"
        raise EncoderNameError(
            f"unknown encoder name prefix {prefix!r} in {name!r}; names are a registry name, "
            f"{', '.join(p + '...' for p in PREFIXES)}, pixels or pixels@SIZE"
        )
    return EncoderRef("registry", name, target=name)


def _pixels_size(name: str) -> int:
    _, at, size = name.partition("@")
    if not at:
        return PIXELS_DEFAULT_SIZE
    if not size.isdigit() or int(size) < 1:
        raise EncoderNameError(f"{name!r}: write pixels@SIZE with SIZE a positive integer (pixels@28)")
    return int(size)
