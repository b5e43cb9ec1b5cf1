"""Errors of the text side: every message says what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import EncoderZooError

if TYPE_CHECKING:
    from ..spec import EncoderSpec


class NoTextTowerError(EncoderZooError):
    """The encoder has no text tower: an image-only entry, or an image-text entry loaded without ``text=True``."""

    @classmethod
    def image_only(cls, name: str, why: str = "") -> NoTextTowerError:
        """The one message for an image-only entry asked for text (``why``: what needed it), naming the registered
        image-text entries to use instead."""
        from ..registry import get_spec, list_encoders

        with_text = ", ".join(n for n in list_encoders() if get_spec(n).text is not None)
        return cls(f"{name} is an image-only encoder: it has no text tower{why}. Image-text entries: {with_text}.")

    @classmethod
    def for_encoder(cls, spec: EncoderSpec) -> NoTextTowerError:
        """Why an encoder of ``spec`` has no text tower to use: an image-only entry, or an image-text entry
        loaded without ``text=True``."""
        if spec.text is None:
            return cls.image_only(spec.name, " (zero-shot classification and text embeddings need one)")
        return cls(
            f"{spec.name} was loaded without its text tower: load it with encoderzoo.load({spec.name!r}, text=True)"
        )


class TokenizerError(EncoderZooError):
    """The tokenizer files are missing, unreadable, need a library that is not installed, or do not fit the tower."""
