"""The two reference methods, each nothing but a record: ``head`` (a linear head on the frozen encoder, the
baseline) and ``full`` (every encoder weight trains: what the cheap methods are measured against)."""

from __future__ import annotations

from pathlib import Path

from ..adapted_folder import ADAPTER_FILE
from ..adapted_methods import MethodFacts
from ..encoder import Encoder
from .methods import Method, register


class NoSettings:
    """The settings of a method that has none. Its ``method_config`` is ``{}``; anything else in it is ignored, as
    it always was for these two methods."""

    takes_no_settings = True
    """Read by ``methods.setting_fields``: a user has nothing to set."""

    def __init__(self, **ignored: object) -> None:
        pass


def no_module(encoder: Encoder, settings: NoSettings, folder: Path | None) -> None:
    """Nothing to add: the head (and, for ``full``, the encoder itself) is what trains."""
    return None


register(
    Method(
        name="head",
        settings=NoSettings,
        build=no_module,
        frozen_base=True,
        facts=MethodFacts(
            files=(),
            card_text="linear head on the frozen encoder",
            citation="linear probing of frozen features (no method paper).",
        ),
    )
)
register(
    Method(
        name="full",
        settings=NoSettings,
        build=no_module,
        trains_encoder=True,
        facts=MethodFacts(
            files=(ADAPTER_FILE,),
            card_text="full fine-tuning: every encoder weight trained, plus a linear head (`adapter.safetensors` is "
            "a complete fine-tuned copy of the encoder, a derivative of the base weights)",
            citation="full fine-tuning (no method paper).",
        ),
    )
)
