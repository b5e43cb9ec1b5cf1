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


def world() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed_from_env(device: str) -> str:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1) with no process group yet, start one (NCCL on CUDA, gloo on CPU) and
    give each rank its own GPU; returns the device this rank works on."""
    import os

    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or not dist.is_available() or dist.is_initialized():
        return device
    on_cuda = device.startswith("cuda")
    dist.init_process_group("nccl" if on_cuda else "gloo")
    if on_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return device
