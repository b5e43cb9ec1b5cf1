"""PNG figures of a probe run (matplotlib, the ``plots`` extra): reliability diagrams before and after temperature
scaling, and accuracy against corruption severity for the robustness probe."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import EncoderZooError
from .predictions import Predictions
from .probes.calibration import reliability, scale

RELIABILITY_PROBES = ("knn", "linear", "zeroshot")


class PlotsUnavailableError(EncoderZooError):
    """matplotlib is not installed."""


def require_matplotlib():
    """The pyplot module with the file-only Agg backend, or a one-line error saying what to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise PlotsUnavailableError("plots need matplotlib: pip install 'encoderzoo[plots]'") from err
    return plt


def _save(fig, path: Path) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")

    atomic_write(path, write)
    return path


def _diagram(ax, table: dict, title: str) -> None:
    bins = table["bins"]
    lower = np.array([b["lower"] for b in bins])
    width = np.array([b["upper"] - b["lower"] for b in bins])
    accuracy = np.array([b["accuracy"] for b in bins])
    confidence = np.array([b["confidence"] for b in bins])
    ax.bar(lower, accuracy, width=width, align="edge", edgecolor="black", color="#4c72b0", label="accuracy")
    ax.bar(
        lower,
        np.abs(confidence - accuracy),
        bottom=np.minimum(confidence, accuracy),
        width=width,
        align="edge",
        color="#c44e52",
        alpha=0.35,
        hatch="//",
        edgecolor="#c44e52",
        label="gap to mean confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"{title}\nECE {table['ece']:.3f}")
    ax.legend(loc="upper left", fontsize=8)


def reliability_figure(probe: str, results: dict, store: Predictions, folder: Path) -> Path | None:
    """``reliability_<probe>.png``: test reliability before and after the temperature fitted on val."""
    key = f"{probe}/test"
    calibration = results["probes"].get(probe, {}).get("calibration", {})
    temperature = calibration.get("temperature_scaled", {}).get("temperature")
    if f"{key}/proba" not in store.arrays or temperature is None:
        return None
    plt = require_matplotlib()
    y, proba = store.arrays[f"{key}/labels"], store.arrays[f"{key}/proba"]
    n_bins = calibration.get("n_bins", 15)
    t = temperature["mean"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    _diagram(axes[0], reliability(y, proba, n_bins), f"{probe}: before")
    _diagram(axes[1], reliability(y, scale(proba, t, y.ndim == 2), n_bins), f"{probe}: temperature T = {t:.3g}")
    fig.suptitle(f"{results['encoder']} on {results['dataset']} (test)", fontsize=9, y=1.06)
    try:
        return _save(fig, folder / f"reliability_{probe}.png")
    finally:
        plt.close(fig)


def robustness_figure(probe: str, results: dict, folder: Path) -> Path | None:
    """``robustness_<probe>.png``: test accuracy against severity (0 = clean), one line per corruption."""
    robust = results["probes"].get(probe, {}).get("robustness")
    if not robust:
        return None
    plt = require_matplotlib()
    clean = results["probes"][probe]["robustness"]["clean"]["accuracy"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, by_severity in robust["corruptions"].items():
        levels = sorted(int(s) for s in by_severity)
        accuracy = [clean] + [by_severity[str(s)]["accuracy"]["mean"] for s in levels]
        ax.plot([0, *levels], accuracy, marker="o", label=name)
    ax.set(
        xlabel="severity (0 = clean)",
        ylabel="test accuracy",
        title=f"{results['encoder']} on {results['dataset']}: {probe}",
    )
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    try:
        return _save(fig, folder / f"robustness_{probe}.png")
    finally:
        plt.close(fig)


def write_plots(results: dict, store: Predictions, folder: str | os.PathLike[str]) -> list[Path]:
    """Every figure the run supports, written atomically into ``folder``."""
    folder = Path(folder)
    paths = [reliability_figure(p, results, store, folder) for p in RELIABILITY_PROBES]
    paths += [robustness_figure(p, results, folder) for p in ("knn", "linear")]
    return [p for p in paths if p is not None]


def main(argv: list[str] | None = None) -> None:
    """``python -m encoderzoo.plots RESULTS_JSON``: redraw the figures of a run from its results.json and the
    predictions.npz beside it (written with ``--save-predictions``)."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m encoderzoo.plots path/to/results.json")
    results_path = Path(args[0])
    results = json.loads(results_path.read_text())
    store = Predictions.load(results_path.parent / "predictions.npz")
    for path in write_plots(results, store, results_path.parent):
        print(path)


if __name__ == "__main__":
    main()
