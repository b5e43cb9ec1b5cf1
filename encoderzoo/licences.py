"""What a base model's licence means for what encoderzoo may do with an adapter trained on it.

One rule per licence family, as data (``BaseTerms``): the Hub licence id for the card, the conditions the card
states, whether a copy of the terms and a notice must travel with the adapter, whether only private repositories
are allowed, a gating prompt, or a refusal. ``push`` and the adapted model card read them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .adapted_folder import LICENCE_FILE, AdaptedFolder
from .errors import EncoderZooError
from .zoo import RAD_DINO_MIT_REVISION


class LicenceRestrictionError(EncoderZooError):
    """The base model's licence or terms do not allow the push as asked; the message names the terms."""



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


HUB_LICENCE_IDS = {"Apache-2.0": "apache-2.0", "MIT": "mit"}
"""Registry licence names -> the Hub's licence ids (what a model card's ``license:`` takes)."""

_PERMISSIVE = {
    "Apache-2.0": (
        HUB_LICENCE_IDS["Apache-2.0"],
        "Apache License 2.0. The base weights are not redistributed here: the adapter and head are new weights "
        "trained on top of the unmodified base. Whoever redistributes the base with them keeps its licence and "
        "NOTICE.",
    ),
    "MIT": (
        HUB_LICENCE_IDS["MIT"],
        "MIT licence. The base weights are not redistributed here; whoever redistributes the base with this adapter "
        "keeps its copyright and permission notice.",
    ),
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
