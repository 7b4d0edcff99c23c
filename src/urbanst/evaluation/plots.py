"""PNG plots of results: error (or macro-F1) per horizon step, forecasts against truth, event probabilities
against observed events."""

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
    label = metric.upper() if metric in ("mae", "rmse", "mape", "wape") else metric.replace("_", "-")
    ax.set_xlabel("horizon step")
    ax.set_ylabel(f"test {label}")
    ax.set_title(f"{records[0]['dataset']}: {label} per horizon step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_forecasts(samples: dict[str, dict], dataset: str, channel_names: list[str], path: Path,
                   timestamps=None) -> Path:
    """One panel per plotted unit: truth and each model's one-step-ahead forecast (first channel).
    Imputation samples (``kind == "impute"``) are drawn by :func:`plot_imputations`."""
    first = next(iter(samples.values()))
    if first.get("kind") == "impute":
        return plot_imputations(samples, dataset, channel_names, path, timestamps)
    units = first["units"]
    fig, axes = _unit_panels(len(units))
    x = first["origin"] if timestamps is None else timestamps[first["origin"]]
    for row in range(len(units)):
        ax = axes[row, 0]
        ax.plot(x, first["true"][:, row, 0], color="black", lw=1.5, label="truth")
        for name, sample in samples.items():
            ax.plot(x, sample["pred"][:, row, 0], lw=1, label=name)
    return _finish_unit_panels(fig, axes, units, channel_names[0],
                               f"{dataset}: one-step-ahead test forecasts", path)


def plot_events(samples: dict[str, dict], dataset: str, channel_names: list[str], path: Path, timestamps=None) -> Path:
    """One panel per plotted unit: each model's one-step-ahead event probability (first channel) and the
    observed events (dots at 1, crosses at 0)."""
    first = next(iter(samples.values()))
    units = first["units"]
    fig, axes = _unit_panels(len(units))
    x = first["origin"] if timestamps is None else timestamps[first["origin"]]
    for row in range(len(units)):
        ax = axes[row, 0]
        truth = first["true"][:, row, 0]
        for value, marker in ((1.0, "o"), (0.0, "x")):
            hit = truth == value
            ax.scatter(np.asarray(x)[hit], truth[hit], s=10, marker=marker, color="black",
                       label="event" if value else "no event")
        for name, sample in samples.items():
            ax.plot(x, sample["pred"][:, row, 0], lw=1, label=name)
        ax.set_ylim(-0.05, 1.05)
    return _finish_unit_panels(fig, axes, units, channel_names[0],
                               f"{dataset}: one-step-ahead event probabilities on test", path)


def plot_imputations(samples: dict[str, dict], dataset: str, channel_names: list[str], path: Path,
                     timestamps=None) -> Path:
    """One panel per plotted unit: the observed truth (line) and each model's imputations at the scored
    (hidden) entries (markers), first channel."""
    first = next(iter(samples.values()))
    units = first["units"]
    fig, axes = _unit_panels(len(units))
    x = np.asarray(first["origin"] if timestamps is None else timestamps[first["origin"]])
    for row in range(len(units)):
        ax = axes[row, 0]
        ax.plot(x, first["true"][:, row, 0], color="black", lw=1.2, label="truth (observed)")
        for name, sample in samples.items():
            ax.plot(x, sample["pred"][:, row, 0], ls="none", marker="o", ms=3, label=name)
    return _finish_unit_panels(fig, axes, units, channel_names[0],
                               f"{dataset}: imputed test entries (markers) against the truth", path)


def plot_transfer(records: list[dict], path: Path, metric: str = "mae") -> Path:
    """One bar per (dataset, model, shot setting): transfer rows beside the target's own baselines."""
    labels = [f"{r['dataset']}\n{r['model']} ({'zero from ' + '+'.join(r['sources']) if r['shots'] == 'zero' else r['shots']})"
              for r in records]
    values = [np.nan if r["metrics"].get(metric) is None else r["metrics"][metric] for r in records]
    colors = ["#999999" if r["family"] == "baseline" else ("#1f77b4" if r["shots"] == "full" else "#d62728") for r in records]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(records)), 4.5))
    ax.bar(np.arange(len(records)), values, color=colors)
    ax.set_xticks(np.arange(len(records)), labels, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel(f"test {metric.upper()} (original units)" if metric in ("mae", "rmse") else f"test {metric}")
    ax.set_title("transfer (red) beside the target's own baselines (grey) and full-shot models (blue)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_ablation(records: list[dict], path: Path, metric: str = "mae") -> Path:
    """Per language-model preset, one bar each for its pretrained, random and absent LM, beside dashed lines at
    the best baseline and at stid."""
    from urbanst.evaluation.tables import LM_FORMS, lm_form

    forms = ("pretrained", *LM_FORMS)
    names = list(dict.fromkeys(r["model"] for r in records if lm_form(r) in LM_FORMS))
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(names) + 2), 4))
    width = 0.8 / len(forms)
    for k, form in enumerate(forms):
        values = [next((r["metrics"].get(metric, np.nan) for r in records if r["model"] == name and lm_form(r) == form),
                       np.nan) for name in names]
        ax.bar(np.arange(len(names)) + (k - 1) * width, values, width, label=f"{form} LM" if form != "none" else "no LM")
    baselines = [r for r in records if r["family"] == "baseline" and r["metrics"].get(metric) is not None]
    references = [min(baselines, key=lambda r: r["metrics"][metric])] if baselines else []
    references += [r for r in records if r["model"] == "stid"]
    for r, style in zip(references, ("--", ":")):
        ax.axhline(r["metrics"][metric], color="black", ls=style, lw=1, label=f"{r['model']} (reference)")
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel(f"test {metric.upper()} (original units)")
    ax.set_title(f"{records[0]['dataset']}: does the pretrained language model help?", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_training_curves(curves: dict[str, "pandas.DataFrame"], path: Path) -> Path:  # noqa: F821
    """Training loss and validation score per epoch, one line per run (read from Lightning's metrics.csv)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, frame in curves.items():
        for ax, column in zip(axes, ("train_loss", "val_score")):
            if column in frame:
                series = frame.dropna(subset=[column])
                ax.plot(np.arange(1, len(series) + 1), series[column].to_numpy(), marker="o", ms=3, label=name)
    axes[0].set_title("training loss (scaled units)")
    axes[1].set_title("validation score (MAE in original units, or loss)")
    for ax in axes:
        ax.set_xlabel("epoch / validation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _unit_panels(count: int):
    return plt.subplots(count, 1, figsize=(9, 2.4 * count), sharex=True, squeeze=False)


def _finish_unit_panels(fig, axes, units, channel: str, title: str, path: Path) -> Path:
    """Label each unit's panel, add the legend and the title, and save."""
    for row, unit in enumerate(units):
        axes[row, 0].set_ylabel(f"unit {unit}\n{channel}", fontsize=8)
        axes[row, 0].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=4)
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
