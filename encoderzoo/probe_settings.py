"""The probe job's settings and their checks: plain Python, so the CLI refuses a bad setting before importing torch
or touching any data."""

from __future__ import annotations

from collections.abc import Sequence

PROBES = ("knn", "linear", "fewshot", "curation", "zeroshot", "robustness", "linear-medmnist+")


def check_probe_settings(
    probes: Sequence[str], shots: Sequence[int], seeds: int, batch_size: int | None
) -> None:
    """Every setting checked before any download or embedding: a bad one fails in a second, not an hour in."""
    if not probes:
        raise ValueError(f"no probe given; choose one or more of {PROBES}")
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; choose from {PROBES}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}: each seed is one few-shot episode / random baseline")
    if "fewshot" in probes:
        if not shots:
            raise ValueError("fewshot needs at least one shot count, e.g. shots=1,5,10")
        bad = [n for n in shots if n < 1]
        if bad:
            raise ValueError(f"shots must be >= 1 images per class, got {bad}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
