"""Where a number was measured, described one way everywhere: the device label and library versions that
results.json, adapted folders, embedding caches, ``encoderzoo speed`` and the benchmark scripts record.

- ``device_name``: the GPU's name for a CUDA device, else the CPU's model name (``/proc/cpuinfo`` on Linux,
  ``platform.processor()`` elsewhere, the machine type as a last resort). Thread counts are recorded apart
  (``environment``), so one CPU has one label whatever the run's threads.
- ``versions``: the libraries that decide a result.
- ``environment``: both, plus Python, machine, threads and the load average (timings need it).
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from typing import Any

RESULT_PACKAGES = ("encoderzoo", "torch", "timm", "peft", "scikit-learn", "numpy")
"""Libraries whose versions results.json records."""


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (``Intel(R) Xeon(R) Processor``), or the machine type where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: Any) -> str:
    """The GPU's name for a CUDA device (``torch.device`` or a string such as ``cuda:1``), the CPU's for the CPU,
    else the device's own name (``mps``)."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_name() if str(device).startswith("cpu") else str(device)  # mps, xpu ...: their type


def package_version(package: str) -> str:
    """An installed package's version, or ``"not installed"``."""
    if package == "encoderzoo":
        from . import __version__

        return __version__
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions(packages: tuple[str, ...] = RESULT_PACKAGES) -> dict[str, str]:
    """``{package: version}`` for the libraries that decide a result."""
    return {p: package_version(p) for p in packages}


def environment(device: Any) -> dict[str, Any]:
    """The measuring environment: versions, Python, machine, device, CUDA, threads and the load average."""
    import torch

    return {
        **versions(("encoderzoo", "torch", "timm")),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": device_name(device),
        "cuda": torch.version.cuda if str(device).startswith("cuda") else None,
        "threads": torch.get_num_threads(),
        "load_average_1_5_15min": [round(v, 1) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
