"""Deprecated name of ``encoderzoo.probe_job`` (the probe job of ``encoderzoo probe``): the old name said less
than the module holds and clashed with ``probes.evaluate``, the metrics function it imports. Importing it still
works and warns; it will be removed in a later release."""

from __future__ import annotations

import warnings

from .environment import device_name, versions
from .probe_job import KNN_KS, check_shots, knn_probe, linear_probe, results_table, run_probes

__all__ = [
    "KNN_KS",
    "check_shots",
    "device_name",
    "knn_probe",
    "linear_probe",
    "results_table",
    "run_probes",
    "versions",
]

warnings.warn(
    "encoderzoo.evaluate is deprecated: import encoderzoo.probe_job (same functions)", DeprecationWarning, stacklevel=2
)
