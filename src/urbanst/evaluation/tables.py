"""Markdown result tables with the best value of each column marked."""

from __future__ import annotations

# (key, label, higher is better)
REGRESSION = [("mae", "MAE", False), ("rmse", "RMSE", False), ("mape", "MAPE %", False), ("wape", "WAPE %", False)]
CLASSIFICATION = [("recall", "recall", True), ("precision", "precision", True), ("macro_f1", "macro-F1", True),
                  ("auroc", "AUROC", True)]


def metric_columns(record: dict) -> list[tuple[str, str, bool]]:
    return CLASSIFICATION if "macro_f1" in record["metrics"] else REGRESSION


def results_table(records: list[dict]) -> str:
    """One row per record; the best of each metric in bold; baselines marked ``(b)``, test-time adaptation ``+TTA K``."""
    columns = metric_columns(records[0])
    best = {}
    for key, _, higher in columns:
        values = [r["metrics"][key] for r in records if r["metrics"].get(key) is not None]
        best[key] = (max if higher else min)(values) if values else None
    shots = any(r["shots"] != "full" for r in records)
    header = ["model", *(["shots"] if shots else []), *[label for _, label, _ in columns], "train s", "infer s", "params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        name = r["model"] + (" (b)" if r["family"] == "baseline" else "") + (f" +TTA {r['tta_steps']}" if r.get("tta_steps") else "")
        cells = [name] + ([_shot_text(r)] if shots else [])
        for key, _, _ in columns:
            value = r["metrics"].get(key)
            text = "n/a" if value is None else f"{value:.3f}"
            cells.append(f"**{text}**" if value is not None and value == best[key] else text)
        cells += [f"{r['train_seconds']:.1f}", f"{r['inference_seconds']:.1f}", f"{r['parameters']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def channel_table(records: list[dict]) -> str:
    """The headline metric (MAE, or macro-F1 for events) of every channel (named by the records'
    ``channels``), one row per record, best marked; empty for single-channel data."""
    key, label, higher = metric_columns(records[0])[0]
    channels = records[0].get("channels", [])
    rows = [r for r in records if key in r.get("per_channel", {})]
    if len(channels) < 2 or not rows:
        return ""
    pick = max if higher else min
    best = [pick(r["per_channel"][key][c] for r in rows) for c in range(len(channels))]
    lines = [f"{label} per channel:", "", "| model | " + " | ".join(channels) + " |", "|" + "---|" * (len(channels) + 1)]
    for r in rows:
        cells = [f"**{v:.3f}**" if v == best[c] else f"{v:.3f}" for c, v in enumerate(r["per_channel"][key])]
        lines.append(f"| {r['model']}{' (b)' if r['family'] == 'baseline' else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _shot_text(record: dict) -> str:
    if record["shots"] == "zero":
        return "zero from " + "+".join(record["sources"])
    return record["shots"]


def protocol_line(record: dict) -> str:
    return (
        f"dataset {record['dataset']}, task {record['task']}, history {record['history']}, horizon {record['horizon']}, "
        f"split {record['split']}, scaling {record['scale']}, shots {record['shots']}, seed {record['seed']}. "
        f"Metrics in original units over observed targets only (missing values are never scored); {record['metric_policy']}."
    )
