"""Exceptions raised by encoderzoo. Every message says what went wrong and what to do next."""

from __future__ import annotations


class EncoderZooError(Exception):
    """Base class for all encoderzoo errors."""


class UnknownEncoderError(EncoderZooError, KeyError):
    """A registry name that does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class WeightsError(EncoderZooError):
    """Base class for problems with weight files."""


class WeightsNotFoundError(WeightsError):
    """The weights are neither cached locally nor reachable (offline mode, no network, missing file)."""


class PinNotFoundError(WeightsNotFoundError):
    """The Hub answered, and the pinned repository, revision or file does not exist there (not offline, not
    gated): the message names the pin and how to load another revision."""


class GatedWeightsError(WeightsError):
    """The weights live in a gated repository the current user has no access to."""


class CorruptWeightsError(WeightsError):
    """The weight file exists but cannot be read: truncated, corrupt, or a git-LFS pointer."""


class StateDictMismatchError(WeightsError):
    """Converted weights do not fit the architecture: missing or unexpected keys, or wrong shapes."""


class AttentionBackendError(EncoderZooError):
    """The requested attention backend cannot run here."""


class InputError(EncoderZooError, ValueError):
    """Images given to an encoder have the wrong shape, channels or dtype."""


class UnsupportedAdapterError(EncoderZooError):
    """The encoder cannot take this adaptation method; the message lists the methods it does support."""


class DatasetFormatError(EncoderZooError, ValueError):
    """A dataset's labels or split table break a rule (unknown split name, a label that is not a class, a path
    listed twice); the message names the file, the rows and the rule."""
