"""Errors of the text side: every message says what to do."""

from __future__ import annotations

from ..errors import EncoderZooError


class NoTextTowerError(EncoderZooError):
    """The encoder has no text tower: an image-only entry, or an image-text entry loaded without ``text=True``."""


class TokenizerError(EncoderZooError):
    """The tokenizer files are missing, unreadable, need a library that is not installed, or do not fit the tower."""
