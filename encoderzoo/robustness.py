"""The ``robustness`` probe: probes fitted once on clean train/val, scored on the test split re-embedded under each
MedMNIST-C corruption and severity (``encoderzoo.corruptions``).

``CorruptedDataset`` wraps a dataset so that reading a batch returns it corrupted on the device; its spec and
fingerprint name the corruption, severity, preset and seed, so the embedding cache keys every corrupted test set
separately and computes it in batches like a clean one. Severity 0 (``clean``) runs the same pipeline without a
corruption (the 224-pixel canvas and uint8 rounding), which is the reference for the relative drops.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence

import numpy as np
import torch

from .corruptions import NOT_IMPLEMENTED, PRESETS, SEVERITIES, SIZE, corrupt, unavailable
from .data.base import ImageDataset
from .probes import evaluate, summarize
from .transforms import as_nchw

CORRUPTION_VERSION = 1  # bump when a corruption's pixels change: cached corrupted embeddings are then recomputed


class CorruptedDataset(ImageDataset):
    """``base`` whose images come back corrupted (uint8, 224 x 224, on ``device``) for one family and severity."""

    def __init__(
        self, base: ImageDataset, preset: str, name: str, severity: int, device: str | torch.device, seed: int = 0
    ) -> None:
        if severity != 0 and (preset not in PRESETS or name not in PRESETS[preset]):
            raise ValueError(f"no corruption {name!r} in preset {preset!r}")
        self.base, self.preset, self.name, self.severity, self.seed = base, preset, name, severity, seed
        self.device = torch.device(device)
        self.task, self.label_names, self.splits = base.task, base.label_names, base.splits
        self.spec = f"{base.spec} [{self.describe_corruption()}]"

    def describe_corruption(self) -> str:
        if self.severity == 0:
            return f"clean {SIZE}px canvas, corruption pipeline v{CORRUPTION_VERSION}"
        parameter = PRESETS[self.preset][self.name][self.severity - 1]
        return (
            f"medmnist-c {self.preset} {self.name} severity {self.severity} ({parameter}), seed {self.seed}, "
            f"v{CORRUPTION_VERSION}"
        )

    def num_samples(self, split: str) -> int:
        return self.base.num_samples(split)

    def labels(self, split: str) -> np.ndarray:
        return self.base.labels(split)

    def sample_ids(self, split: str) -> list[str]:
        return self.base.sample_ids(split)

    def read(self, split: str, start: int, stop: int):
        images = self.base.read(split, start, stop)
        if isinstance(images, list):  # images of different sizes (or undecodable ones, None): one at a time
            return [None if im is None else self._corrupt(im[None], [start + j])[0] for j, im in enumerate(images)]
        return self._corrupt(images, list(range(start, stop)))

    def _corrupt(self, images, rows: list[int]) -> torch.Tensor:
        x = as_nchw(images).to(self.device)
        if x.dtype != torch.uint8:
            raise ValueError(f"{self.base.spec}: MedMNIST-C corruptions need 8-bit images, got {x.dtype}")
        return corrupt(x, self.name, self.severity, self.preset, rows=rows, seed=self.seed)

    def fingerprint(self, split: str) -> str:
        text = f"{self.base.fingerprint(split)}|{self.describe_corruption()}"
        return hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> dict:
        return {**self.base.describe(), "spec": self.spec, "corruption": self.describe_corruption()}


def preset_for(dataset: ImageDataset, preset: str | None) -> str:
    """``preset`` checked, or read off a ``medmnist:NAME`` spec; otherwise a one-line error saying what to pass."""
    if preset is None:
        match = re.match(r"medmnist:([a-z0-9]+)", dataset.spec)
        if match and match.group(1) in PRESETS:
            return match.group(1)
        raise ValueError(
            f"robustness needs a MedMNIST-C preset for {dataset.spec}: pass corruptions=NAME (--corruptions NAME), "
            f"the MedMNIST dataset closest to its modality, one of {sorted(PRESETS)}"
        )
    if preset not in PRESETS:
        raise ValueError(f"unknown corruption preset {preset!r}; choose from {sorted(PRESETS)}")
    return preset


def check_severities(severities: Sequence[int]) -> None:
    if not severities or any(s not in SEVERITIES for s in severities):
        raise ValueError(f"severities must be among {SEVERITIES}, got {list(severities)}")


def _scores(probe, features: np.ndarray, labels: np.ndarray, names) -> tuple[np.ndarray, np.ndarray, dict]:
    y = probe.column_targets(labels)
    proba = probe.predict_proba(features)
    return y, proba, evaluate(y, proba, names)


def robustness_probe(
    embed,
    dataset: ImageDataset,
    fitted: dict,
    names,
    *,
    preset: str,
    severities: Sequence[int] = SEVERITIES,
    device: str | torch.device,
    seed: int = 0,
    trust=None,
) -> tuple[dict, dict]:
    """Score each fitted probe on every corrupted test set.

    ``embed(dataset)`` returns the test ``EmbeddingSet`` of a (corrupted) dataset through the cache; ``fitted``
    maps probe names to fitted probes. Returns ``(per_probe, summary)``: ``per_probe[name]`` is that probe's
    ``robustness`` entry (clean reference, mean accuracy/AUROC over every corruption and severity, relative
    drops, and the table per corruption and severity), ``summary`` the protocol and timings.
    """
    check_severities(severities)
    start = time.perf_counter()
    clean = embed(CorruptedDataset(dataset, preset, "none", 0, device, seed))
    per_probe: dict = {}
    for probe_name, probe in fitted.items():
        y, proba, metrics = _scores(probe, clean.features.numpy(), clean.labels, names)
        if trust is not None:
            trust.record(f"robustness/{probe_name}/clean/0", "test", clean.ids, y, proba)
        per_probe[probe_name] = {"clean": {"accuracy": metrics["accuracy"], "auroc": metrics["auroc"]}, "table": {}}
    missing = unavailable(preset)  # families needing an optional package that is not installed: recorded below
    families = [name for name in PRESETS[preset] if name not in missing]
    for name in families:
        for severity in severities:
            corrupted = embed(CorruptedDataset(dataset, preset, name, severity, device, seed))
            for probe_name, probe in fitted.items():
                y, proba, metrics = _scores(probe, corrupted.features.numpy(), corrupted.labels, names)
                if trust is not None:
                    trust.record(f"robustness/{probe_name}/{name}/{severity}", "test", corrupted.ids, y, proba)
                per_probe[probe_name]["table"].setdefault(name, {})[str(severity)] = {
                    "accuracy": metrics["accuracy"],
                    "auroc": metrics["auroc"],
                }
    out = {probe_name: _summary(entry) for probe_name, entry in per_probe.items()}
    summary = {
        "preset": preset,
        "corruptions": families,
        "not_implemented": NOT_IMPLEMENTED[preset],
        "unavailable": missing,
        "severities": list(severities),
        "seed": seed,
        "size": SIZE,
        "probes": list(fitted),
        "implementation": "torch re-implementation of medmnistc 0.1.0 (encoderzoo.corruptions), on the device",
        "seconds": round(time.perf_counter() - start, 3),
    }
    return out, summary


def _drop(clean: float, value: float) -> float:
    """Relative drop from clean, ``(clean - value) / clean`` (positive: worse under corruption)."""
    return float((clean - value) / clean) if clean else float("nan")


def _summary(entry: dict) -> dict:
    clean, table = entry["clean"], entry["table"]
    cells = [cell for by_severity in table.values() for cell in by_severity.values()]
    accuracy = float(np.mean([c["accuracy"] for c in cells]))
    auroc = float(np.nanmean([c["auroc"] for c in cells])) if cells else float("nan")
    return {
        "clean": clean,
        "robust_accuracy": summarize([accuracy]),
        "robust_auroc": summarize([auroc]),
        "relative_drop_accuracy": summarize([_drop(clean["accuracy"], accuracy)]),
        "relative_drop_auroc": summarize([_drop(clean["auroc"], auroc)]),
        "corruptions": {
            name: {
                severity: {
                    "accuracy": summarize([cell["accuracy"]]),
                    "auroc": summarize([cell["auroc"]]),
                    "relative_drop_accuracy": summarize([_drop(clean["accuracy"], cell["accuracy"])]),
                    "relative_drop_auroc": summarize([_drop(clean["auroc"], cell["auroc"])]),
                }
                for severity, cell in by_severity.items()
            }
            for name, by_severity in table.items()
        },
    }
