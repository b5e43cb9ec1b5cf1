"""Leaderboard pictures (optional extra ``plots``: matplotlib): ``leaderboard.png``, a heatmap of the ranked
metric with the values written in the cells, and ``fewshot.png``, the metric against shots per class, one line
per encoder, the seeds' range as a band."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from .leaderboard import _short

PLOTS_HINT = "pictures need matplotlib: pip install 'encoderzoo[plots]'"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def heatmap(board: dict, path: Path) -> Path:
    """Encoders (ranked) x datasets of the ranked metric, then their mean; values written in the cells."""
    plt = _pyplot()
    ranking = board["ranking"]
    encoders = [r["encoder"] for r in ranking["encoders"]]
    datasets = ranking["datasets"]
    grid = np.full((len(encoders), len(datasets) + 1), np.nan)
    for i, row in enumerate(ranking["encoders"]):
        for j, dataset in enumerate(datasets):
            entry = ranking["table"][row["encoder"]][dataset]
            grid[i, j] = entry.get("mean", np.nan)
        grid[i, -1] = row["mean"] if row["mean"] is not None else np.nan
    width = max(6.0, 3.2 + 1.3 * (len(datasets) + 1))
    fig, ax = plt.subplots(figsize=(width, max(2.8, 1.6 + 0.5 * len(encoders))), dpi=110)
    image = ax.imshow(
        np.ma.masked_invalid(grid),
        cmap="viridis",
        aspect="auto",
        vmin=np.nanmin(grid) if np.isfinite(grid).any() else 0,
        vmax=np.nanmax(grid) if np.isfinite(grid).any() else 1,
    )
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            entry = ranking["table"][encoders[i]][datasets[j]] if j < len(datasets) else {}
            text = f"{grid[i, j]:.3f}" if np.isfinite(grid[i, j]) else entry.get("status", "–")
            if entry.get("best"):
                text += " *"
            elif entry.get("overlaps_best"):
                text += " ≈"
            ax.text(
                j, i, text, ha="center", va="center", fontsize=8, color="white" if _dark(image, grid[i, j]) else "black"
            )
    ax.set_xticks(
        range(len(datasets) + 1), [*(_short(d) for d in datasets), "mean"], rotation=30, ha="right", fontsize=8
    )
    ax.set_yticks(
        range(len(encoders)),
        [
            f"{e} ({r['mean_rank']:.2f})" if r["mean_rank"] is not None else e
            for e, r in zip(encoders, ranking["encoders"], strict=True)
        ],
        fontsize=8,
    )
    ax.set_title(
        f"{board['suite']['name']}: {ranking['probe']} {ranking['metric']}\n"
        "* best, ≈ 95% interval overlaps the best; (mean rank)",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return _save(fig, plt, path)


def fewshot(board: dict, path: Path, classifier: str = "linear") -> Path | None:
    """Metric against shots per class for ``classifier``, one panel per dataset, one line per encoder; the band
    spans the seeds' lowest and highest value. ``None`` when no cell ran few-shot."""
    metric = board["ranking"]["metric"]
    prefix = f"fewshot/results/{classifier}/"
    rows = [m for m in board["metrics"] if m["probe"].startswith(prefix) and m["metric"] == metric]
    if not rows:
        return None
    plt = _pyplot()
    from matplotlib.ticker import ScalarFormatter

    datasets = [d for d in board["ranking"]["datasets"] if any(r["dataset"] == d for r in rows)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), dpi=110, squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for encoder in board["suite"]["encoders"]:
            points = sorted(
                (int(r["probe"].removeprefix(prefix)), r)
                for r in rows
                if r["dataset"] == dataset and r["encoder"] == encoder
            )
            if not points:
                continue
            shots = [s for s, _ in points]
            line = ax.plot(shots, [r["mean"] for _, r in points], marker="o", label=encoder)[0]
            ax.fill_between(
                shots,
                [min(r["values"]) for _, r in points],
                [max(r["values"]) for _, r in points],
                color=line.get_color(),
                alpha=0.2,
            )
        ax.set_xscale("log")
        ax.set_xticks(sorted({s for r in rows for s in [int(r["probe"].removeprefix(prefix))]}))
        ax.get_xaxis().set_major_formatter(ScalarFormatter())
        ax.set_xlabel("shots per class")
        ax.set_ylabel(f"test {metric}")
        ax.set_title(_short(dataset), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"few-shot {classifier} probe (band: range over seeds)", fontsize=9)
    fig.tight_layout()
    return _save(fig, plt, path)


def _dark(image, value: float) -> bool:
    if not np.isfinite(value):
        return False
    r, g, b, _ = image.cmap(image.norm(value))
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


def _save(fig, plt, path: Path) -> Path:
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    finally:
        plt.close(fig)
    return path
