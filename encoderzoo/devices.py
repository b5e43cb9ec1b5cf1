"""One rule for ``device="auto"`` and one check that a named device exists, before any work is done."""

from __future__ import annotations

import torch

from .errors import EncoderZooError


class DeviceError(EncoderZooError, ValueError):
    """The requested device does not exist on this machine."""


def resolve_device(device: str | torch.device | None = "auto") -> str:
    """``auto`` (or ``None``) -> ``cuda`` when a GPU is visible, else ``cpu``; any other name is checked.

    ``cuda`` / ``cuda:N`` without that GPU, ``mps`` without Metal, or a string torch cannot parse is a
    ``DeviceError`` that says which devices this machine has.
    """
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from err
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {str(device)!r} asked for, but this machine has no CUDA GPU: use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise DeviceError(f"device {str(device)!r} asked for, but this machine has {count} GPU(s): cuda:0 .. "
                              f"cuda:{count - 1}")
    elif parsed.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DeviceError(f"device {str(device)!r} asked for, but Metal (mps) is not available here: use cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device type {parsed.type!r} is not supported: use auto, cpu, cuda or cuda:N")
    return str(device)
