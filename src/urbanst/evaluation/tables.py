"""Markdown result tables with the best value of each column marked."""

from __future__ import annotations

COLUMNS = [("mae", "MAE"), ("rmse", "RMSE"), ("mape", "MAPE %"), ("wape", "WAPE %")]


def results_table(records: list[dict]) -> str:
    """One row per record; the best (lowest) of each metric in bold; baselines marked ``(b)``."""
    best = {key: min((r["metrics"][key] for r in records if r["metrics"].get(key) is not None), default=None)
            for key, _ in COLUMNS}
    header = ["model", *[label for _, label in COLUMNS], "train s", "infer s", "params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        name = r["model"] + (" (b)" if r["family"] == "baseline" else "")
        cells = [name]
        for key, _ in COLUMNS:
            value = r["metrics"].get(key)
            text = "n/a" if value is None else f"{value:.3f}"
            cells.append(f"**{text}**" if value is not None and value == best[key] else text)
        cells += [f"{r['train_seconds']:.1f}", f"{r['inference_seconds']:.1f}", f"{r['parameters']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def protocol_line(record: dict) -> str:
    return (
        f"dataset {record['dataset']}, task {record['task']}, history {record['history']}, horizon {record['horizon']}, "
        f"split {record['split']}, scaling {record['scale']}, shots {record['shots']}, seed {record['seed']}. "
        f"Metrics in original units over observed targets only (missing values are never scored); {record['metric_policy']}."
    )
