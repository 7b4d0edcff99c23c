"""PNG plots of results: error per horizon step, and forecasts against truth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_error_per_step(records: list[dict], path: Path, metric: str = "mae") -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in records:
        values = [np.nan if v is None else v for v in r["per_step"][metric]]
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=r["model"],
                linestyle="--" if r["family"] == "baseline" else "-")
    ax.set_xlabel("horizon step")
    ax.set_ylabel(f"test {metric.upper()}")
    ax.set_title(f"{records[0]['dataset']}: {metric.upper()} per horizon step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_forecasts(samples: dict[str, dict], dataset: str, channel_names: list[str], path: Path,
                   timestamps=None) -> Path:
    """One panel per plotted unit: truth and each model's one-step-ahead forecast (first channel)."""
    first = next(iter(samples.values()))
    units = first["units"]
    fig, axes = plt.subplots(len(units), 1, figsize=(9, 2.4 * len(units)), sharex=True, squeeze=False)
    x = first["origin"] if timestamps is None else timestamps[first["origin"]]
    for row, unit in enumerate(units):
        ax = axes[row, 0]
        ax.plot(x, first["true"][:, row, 0], color="black", lw=1.5, label="truth")
        for name, sample in samples.items():
            ax.plot(x, sample["pred"][:, row, 0], lw=1, label=name)
        ax.set_ylabel(f"unit {unit}\n{channel_names[0]}", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=4)
    axes[0, 0].set_title(f"{dataset}: one-step-ahead test forecasts")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
