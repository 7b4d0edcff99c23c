"""PNG plots of results: error (or macro-F1) per horizon step, forecasts against truth, event probabilities
against observed events, the error of each unit on the city's layout, and the waterfall of an explanation."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_error_per_step(records: list[dict], path: Path, metric: str = "mae", units: str = "original units") -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in records:
        values = [np.nan if v is None else v for v in r["per_step"][metric]]
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=r["model"],
                linestyle="--" if r["family"] == "baseline" else "-")
    label = metric.upper() if metric in ("mae", "rmse", "mape", "wape") else metric.replace("_", "-")
    ax.set_xlabel("horizon step")
    ax.set_ylabel(f"test {label}" + (f" ({units})" if metric in ("mae", "rmse") else ""))
    ax.set_title(f"{records[0]['dataset']}: {label} per horizon step, all units and channels")
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


def chart_top(curves: dict[str, dict[float, float]], reach: float = 2.5) -> float | None:
    """The top of a chart whose lowest value is ``v``: ``reach * v`` when a value lies above it (one far-off
    model would flatten every other line), else None (nothing to cut)."""
    finite = [v for points in curves.values() for v in points.values() if v is not None and np.isfinite(v)]
    return reach * min(finite) if finite and max(finite) > reach * min(finite) else None


def plot_few_shot(curves: dict[str, dict[float, float]], dataset: str, path: Path, metric: str = "mae") -> Path:
    """One line per model: the test metric against the share of the target's training windows it was given
    (1.0 = all of them); baselines (labels with "(b)") dashed."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for model, points in curves.items():
        ratios = sorted(points)
        values = [np.nan if points[r] is None else points[r] for r in ratios]
        ax.plot([100 * r for r in ratios], values, marker="o", ms=4, label=model,
                linestyle="--" if "(b)" in model else "-")
    top = chart_top(curves)
    if top is not None:
        ax.set_ylim(0, top)
    ax.set_xscale("log")
    ax.set_xlabel("share of the target's training windows (%)")
    ax.set_ylabel(f"test {metric.upper()} (original units)" if metric in ("mae", "rmse") else f"test {metric}")
    ax.set_title(f"{dataset}: few-shot {metric.upper()} against the share of training windows"
                 + (f"\n(values above {top:.3g} are off the chart; the table has them)" if top is not None else ""),
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3, which="both")
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
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_error_map(errors: dict[str, list], data, channel: int, path: Path) -> Path:
    """The test MAE of each unit for ``channel``, one panel per model (``errors``: panel title -> MAE per unit,
    None where nothing was scored), on the city's layout: a heat map over a grid, the units at their
    coordinates (coloured and sized by error), or, where the data have neither, a ranked bar chart. The panels
    share one colour scale, from the smallest to the largest error of any panel."""
    values = {name: np.array([np.nan if v is None else v for v in e], dtype=float) for name, e in errors.items()}
    scored = np.concatenate([v[np.isfinite(v)] for v in values.values()])
    scale = (float(scored.min()), float(scored.max())) if len(scored) else (0.0, 1.0)
    draw = _grid_panel if data.grid_shape else _coords_panel if data.coords is not None else _ranked_panel
    columns = min(3, len(values))
    rows = -(-len(values) // columns)
    width, height = (4.2, 3.6) if draw is not _ranked_panel else (4.6, 6.0)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns + 1, height * rows + 0.8), squeeze=False,
                             layout="constrained")
    label = f"test MAE, {data.attributes[channel]} ({data.units[channel]})"
    shown = None
    for ax, (name, v) in zip(axes.flat, values.items()):
        shown = draw(ax, v, data, scale, label)
        ax.set_title(name, fontsize=9)
    for ax in axes.flat[len(values):]:
        ax.axis("off")
    if shown is not None:
        fig.colorbar(shown, ax=axes, label=label, shrink=0.8)
    fig.suptitle(f"{data.name} ({data.city}): {label} per unit, all horizon steps", fontsize=10)
    return _save(fig, path)


def _grid_panel(ax, values: np.ndarray, data, scale: tuple[float, float], label: str):
    height, width = data.grid_shape
    cells = np.arange(len(values)) if data.grid_cells is None else np.asarray(data.grid_cells)
    grid = np.full(height * width, np.nan)
    grid[cells] = values
    ax.set_xlabel("grid column (west to east)")
    ax.set_ylabel("grid row")
    return ax.imshow(grid.reshape(height, width), cmap="magma_r", vmin=scale[0], vmax=scale[1], origin="upper")


def _coords_panel(ax, values: np.ndarray, data, scale: tuple[float, float], label: str):
    north, east = data.coords[:, 0], data.coords[:, 1]
    known = np.isfinite(values)
    ax.scatter(east[~known], north[~known], s=30, facecolors="none", edgecolors="grey", label="not scored")
    share = (values[known] - scale[0]) / max(scale[1] - scale[0], 1e-12)
    dots = ax.scatter(east[known], north[known], c=values[known], s=40 + 260 * share, cmap="magma_r", vmin=scale[0],
                      vmax=scale[1], edgecolors="black", linewidths=0.5)
    if len(values) <= 40:
        for name, x, y in zip(data.unit_names or map(str, range(len(values))), east, north):
            ax.annotate(name, (x, y), fontsize=7, xytext=(5, 5), textcoords="offset points")
    if data.coord_system == "latlon":
        ax.set_aspect(1 / np.cos(np.deg2rad(north.mean())))
        ax.set_xlabel("longitude (degrees east)")
        ax.set_ylabel("latitude (degrees north)")
    else:
        ax.set_aspect("equal")
        ax.set_xlabel("east (m)")
        ax.set_ylabel("north (m)")
    ax.margins(0.12)
    return dots


def _ranked_panel(ax, values: np.ndarray, data, scale: tuple[float, float], label: str, most: int = 30):
    names = np.array(data.unit_names or [str(i) for i in range(len(values))])
    order = np.argsort(np.where(np.isfinite(values), -values, np.inf))[:most]
    ax.barh(np.arange(len(order)), values[order], color="#c44e52")
    ax.set_yticks(np.arange(len(order)), names[order], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, scale[1] * 1.05)
    ax.set_xlabel(label)
    ax.set_ylabel(f"unit ({len(order)} largest errors of {len(values)})")
    ax.grid(axis="x", alpha=0.3)
    return None


def plot_waterfall(explanation: dict, path: Path, most: int = 12) -> Path:
    """From the reference forecast (every factor removed) through each factor's contribution to the forecast, in
    original units, mean over the horizon; factors beyond the ``most`` largest are summed in one bar."""
    task, factors = explanation["task"], explanation["factors"]
    steps = [(f["factor"], f["mean"]) for f in factors[:most]]
    rest = factors[most:]
    if rest:
        steps.append((f"{len(rest)} other factors", sum(f["mean"] for f in rest)))
    steps.append((f"residual ({explanation['residual_meaning']})", explanation["residual"]["mean"]))
    reference, forecast = explanation["reference"]["mean"], explanation["conclusion"]["mean"]
    levels = np.cumsum([reference] + [change for _, change in steps])
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(steps) + 2.4))
    for row, ((name, change), level) in enumerate(zip(steps, levels), 1):
        ax.barh(row, change, left=level, color="#4c72b0" if change >= 0 else "#dd8452")
        ax.text(max(level, level + change), row, f" {change:+.2f}", va="center", fontsize=7)
    for row, (value, color) in ((0, (reference, "#8c8c8c")), (len(steps) + 1, (forecast, "black"))):
        ax.plot(value, row, marker="D", color=color)
        ax.axvline(value, color=color, lw=0.8, ls=":")
        ax.text(value, row, f"  {value:.2f}", va="center", fontsize=8)
    low, high = min(levels.min(), forecast), max(levels.max(), forecast)
    pad = 0.15 * (high - low) or 1.0
    ax.set_xlim(low - pad, high + pad)
    labels = ["reference (every factor removed)", *[name for name, _ in steps], "forecast"]
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{task['channel']} ({task['units']}), mean over the {task['horizon']} forecast steps")
    ax.set_title(f"{task['model']}: {task['channel']} at {task['unit']}, {task['forecast_from']} .. {task['forecast_to']}"
                 f"\nby {explanation['method_label']} (blue raises the forecast, orange lowers it)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
